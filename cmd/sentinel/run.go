package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/common/promslog"
	promversion "github.com/prometheus/common/version"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/traces"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// commonFlags are the flags run and demo share.
type commonFlags struct {
	webAddress   string
	externalURL  string
	alertmanager stringList
	logLevel     string
	logFormat    string
	traces       traces.Options
}

func (c *commonFlags) register(fs *flag.FlagSet, webDefault string) {
	fs.StringVar(&c.webAddress, "web.listen-address", webDefault, "address for the HTTP API, /metrics and the status page")
	fs.StringVar(&c.externalURL, "web.external-url", "", "URL under which sentinel is reached, for generatorURL (default: http://<hostname><listen port>)")
	fs.Var(&c.alertmanager, "alertmanager.url", "Alertmanager to send alerts to (repeatable; replaces the config's alerting.alertmanagers)")
	fs.StringVar(&c.logLevel, "log.level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log.format", "logfmt", "logfmt or json")
	fs.Int64Var(&c.traces.MaxBytes, "traces.buffer-bytes", traces.DefaultMaxBytes,
		"memory for recent spans kept for the trace view and the critical path (about 240 B a span; at least 1MiB)")
	fs.DurationVar(&c.traces.MaxAge, "traces.max-age", traces.DefaultMaxAge,
		"how long a span stays in the buffer when no alert pins its trace")
	fs.IntVar(&c.traces.MaxPinnedTraces, "traces.max-pinned-traces", traces.DefaultMaxPinnedTraces,
		"most traces kept because an alert refers to them")
	fs.IntVar(&c.traces.MaxSpansPerTrace, "traces.max-spans-per-trace", traces.DefaultMaxSpansPerTrace,
		"most spans kept of one trace (at most 65535); the rest are dropped and counted")
}

func (c *commonFlags) logger(w io.Writer) (*slog.Logger, error) {
	level := promslog.NewLevel()
	if err := level.Set(c.logLevel); err != nil {
		return nil, fmt.Errorf("--log.level must be one of %s: %w", strings.Join(promslog.LevelFlagOptions, ", "), err)
	}
	format := promslog.NewFormat()
	if err := format.Set(c.logFormat); err != nil {
		return nil, fmt.Errorf("--log.format must be logfmt or json, not %q", c.logFormat)
	}
	// As Prometheus and Alertmanager log: the same keys, source included.
	return promslog.New(&promslog.Config{Level: level, Format: format, Writer: w}), nil
}

// externalURLFor is --web.external-url, or as Prometheus guesses it:
// http://<hostname><listen port>.
func (c *commonFlags) externalURLFor(listen string) string {
	if c.externalURL != "" {
		return c.externalURL
	}
	if host, err := os.Hostname(); err == nil && strings.HasPrefix(listen, ":") {
		return "http://" + host + listen
	}
	return ""
}

func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sentinel run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs, ":9464")
	configFile := fs.String("config.file", "sentinel.yaml", "configuration file")
	grpcAddr := fs.String("otlp.grpc-address", ":4317", "OTLP/gRPC listen address (overrides otlp.grpc.listen_address)")
	httpAddr := fs.String("otlp.http-address", ":4318", "OTLP/HTTP listen address (overrides otlp.http.listen_address)")
	storagePath := fs.String("storage.path", "data/", "where state snapshots are kept (overrides storage.path)")
	webConfig := fs.String("web.config.file", "", "exporter-toolkit web config file: TLS, client certificates and basic auth on the web port (see docs/security.md)")
	lifecycle := fs.Bool("web.enable-lifecycle", false, "allow POST /-/reload (SIGHUP reloads either way)")
	pinFor := fs.Duration("traces.pin-for", engine.DefaultPinFor, "how long an alert's exemplar traces stay pinned after the alert last referred to them")
	watchInterval := fs.Duration("config.auto-reload-interval", DefaultWatchInterval, "how often to check the config file and rule files for changes and reload when they change (as SIGHUP does); 0 turns it off")
	maxGroups := fs.Int("rules.max-groups-per-rule", engine.DefaultMaxGroupsPerRule, "most groups (distinct group_by values) a rule tracks; observations beyond are dropped and counted")
	maxLabelValue := fs.Int("rules.max-label-value-bytes", engine.DefaultMaxLabelValueBytes, "longest group_by value kept in a group key and alert label; longer ones are truncated with a marker and counted")
	autoMemLimit := fs.Bool("memory.auto-limit", true, "set the Go memory limit (GOMEMLIMIT) to a share of the container's cgroup memory limit, so that the garbage collector works harder before the kernel kills the process (off: --memory.auto-limit=false; an explicit GOMEMLIMIT wins)")
	memLimitRatio := fs.Float64("memory.auto-limit-ratio", 0.85, "share of the cgroup memory limit that --memory.auto-limit sets as the Go memory limit, in (0, 1]")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *watchInterval < 0 {
		fmt.Fprintln(stderr, "--config.auto-reload-interval must not be negative (0 turns it off)")
		return 2
	}
	logger, err := common.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}

	if err := checkWebConfig(*webConfig); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	cfg, err := config.Load(*configFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Once the configuration is known good: the memory limit is the
	// daemon's, not that of a run that stops at a bad flag or file.
	if *autoMemLimit {
		if err := setMemoryLimit(logger, *memLimitRatio); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	// A flag given on the command line overrides the file, now and at
	// every reload.
	overrides := func(c *config.Config) {
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "otlp.grpc-address":
				c.OTLPGRPCAddress = *grpcAddr
			case "otlp.http-address":
				c.OTLPHTTPAddress = *httpAddr
			case "storage.path":
				c.StoragePath = *storagePath
			}
		})
	}
	overrides(cfg)
	logger.Info("starting sentinel", "version", promversion.Info(), "build_context", promversion.BuildContext())
	d, err := newDaemon(daemonOptions{
		Config:           cfg,
		ConfigFile:       *configFile,
		ConfigOverrides:  overrides,
		MaxGroupsPerRule: *maxGroups,
		MaxLabelValue:    *maxLabelValue,
		TracePinFor:      *pinFor,
		WebAddress:       common.webAddress,
		ExternalURL:      common.externalURLFor(common.webAddress),
		Logger:           logger,
		AlertmanagerURLs: common.alertmanager,
		WebConfigFile:    *webConfig,
		EnableLifecycle:  *lifecycle,
		Traces:           common.traces,
		WatchInterval:    *watchInterval,
	})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := d.start(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_, _ = d.reload() // logged; the old rules stay in force on error
			}
		}
	}()
	if err := d.run(ctx); err != nil {
		logger.Error("sentinel stopped", "err", err)
		return 1
	}
	return 0
}
