package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/notifiers/alertmanager"
	"github.com/kube-sentinel/sentinel/rules"
	"github.com/kube-sentinel/sentinel/sources/otlp"
	"github.com/kube-sentinel/sentinel/sources/scrape"
)

// daemonOptions is everything a daemon needs besides its config file.
type daemonOptions struct {
	Config     *config.Config
	ConfigFile string // reloaded on SIGHUP and POST /-/reload; "" when the config is built in
	// ConfigOverrides applies the command line's flags to a config read
	// from ConfigFile, at every reload as at start.
	ConfigOverrides func(*config.Config)
	WebAddress      string
	ExternalURL     string
	Logger          *slog.Logger
	// LoadRules overrides reading the config's rule_files (the demo's
	// built-in rules).
	LoadRules func(cfg *config.Config) (*rules.Set, error)
	// Notifiers are extra destinations besides the configured Alertmanagers.
	Notifiers []engine.Notifier
	// MaxGroupsPerRule caps each rule's groups (--rules.max-groups-per-rule); 0 is the engine's default.
	MaxGroupsPerRule int
	// AlertmanagerURLs, when set, replace the config's (the --alertmanager.url flag).
	AlertmanagerURLs []string
	// WebConfigFile is --web.config.file: TLS, client certificates and
	// basic auth on the web port ("" serves plain HTTP).
	WebConfigFile string
	// EnableLifecycle is --web.enable-lifecycle: without it POST /-/reload
	// is refused (SIGHUP still reloads).
	EnableLifecycle bool
}

// daemon wires sources → engine → notifiers and serves the HTTP API.
type daemon struct {
	opts     daemonOptions
	logger   *slog.Logger
	registry *prometheus.Registry
	engine   *engine.Engine
	receiver *otlp.Receiver
	scraper  *scrape.Scraper
	am       *alertmanager.Notifier

	web   *http.Server
	webLn net.Listener

	reloadMu         sync.Mutex
	cfg              atomic.Pointer[config.Config]
	reloadSuccessful prometheus.Gauge
	snapshotErrors   prometheus.Counter
	reloadTime       prometheus.Gauge
	ready            atomic.Bool
	history          *statusHistory // the status page's charts
	lifecycleRefused *prometheus.CounterVec
}

// fanout sends every alert to several notifiers.
type fanout []engine.Notifier

func (f fanout) Send(alerts ...engine.Alert) {
	for _, n := range f {
		n.Send(alerts...)
	}
}

func newDaemon(opts daemonOptions) (*daemon, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LoadRules == nil {
		opts.LoadRules = func(cfg *config.Config) (*rules.Set, error) {
			return rules.LoadFiles(cfg.RulePatterns(), rules.Options{DefaultInterval: cfg.EvaluationInterval, TargetLabels: cfg.TargetLabelNames()})
		}
	}
	ln, err := net.Listen("tcp", opts.WebAddress)
	if err != nil {
		return nil, fmt.Errorf("web listener: %w", err)
	}
	if opts.ExternalURL == "" {
		opts.ExternalURL = "http://" + ln.Addr().String()
	}
	d, err := buildDaemon(opts, ln)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return d, nil
}

func buildDaemon(opts daemonOptions, ln net.Listener) (*daemon, error) {
	cfg := opts.Config
	d := &daemon{opts: opts, logger: opts.Logger, registry: prometheus.NewRegistry(), webLn: ln, history: newStatusHistory()}
	d.cfg.Store(cfg)
	d.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := promauto.With(d.registry)
	d.reloadSuccessful = f.NewGauge(prometheus.GaugeOpts{
		Name: "sentinel_config_last_reload_successful",
		Help: "Whether the last configuration and rules reload succeeded.",
	})
	d.reloadTime = f.NewGauge(prometheus.GaugeOpts{
		Name: "sentinel_config_last_reload_success_timestamp_seconds",
		Help: "When the configuration and rules were last loaded successfully.",
	})
	d.snapshotErrors = f.NewCounter(prometheus.CounterOpts{
		Name: "sentinel_snapshot_errors_total",
		Help: "State snapshots that could not be written.",
	})
	d.lifecycleRefused = f.NewCounterVec(prometheus.CounterOpts{
		Name: "sentinel_web_lifecycle_refused_total",
		Help: "Requests to lifecycle endpoints (POST /-/reload) refused, by reason (disabled, cross_origin, form_post).",
	}, []string{"reason"})
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "sentinel_build_info", Help: "Always 1.",
		ConstLabels: prometheus.Labels{"version": version}}, func() float64 { return 1 })

	notifiers := fanout(opts.Notifiers)
	urls := cfg.Alertmanagers
	if len(opts.AlertmanagerURLs) > 0 {
		urls = opts.AlertmanagerURLs
	}
	if len(urls) > 0 {
		am, err := alertmanager.New(alertmanager.Options{URLs: urls, Logger: d.logger.With("component", "notifier"), Registerer: d.registry})
		if err != nil {
			return nil, err
		}
		d.am = am
		notifiers = append(notifiers, am)
	}

	eng, err := engine.New(engine.Options{
		Notifier:         notifiers,
		Logger:           d.logger.With("component", "engine"),
		Registerer:       d.registry,
		ExternalLabels:   cfg.ExternalLabels,
		ExternalURL:      opts.ExternalURL,
		ResendDelay:      cfg.ResendDelay,
		DefaultInterval:  cfg.EvaluationInterval,
		TraceURLTemplate: cfg.TraceURLTemplate,
		MaxGroupsPerRule: opts.MaxGroupsPerRule,
	})
	if err != nil {
		return nil, err
	}
	d.engine = eng
	set, err := opts.LoadRules(cfg)
	if err != nil {
		return nil, err
	}
	eng.Load(set)
	d.restoreSnapshot()
	d.reloadSuccessful.Set(1)
	d.reloadTime.SetToCurrentTime()

	grpcTLS, httpTLS, err := otlpTLS(cfg, d.logger.With("component", "otlp"), d.registry)
	if err != nil {
		return nil, err
	}
	d.receiver, err = otlp.New(otlp.Options{
		GRPCTLS:         grpcTLS,
		HTTPTLS:         httpTLS,
		GRPCAddress:     cfg.OTLPGRPCAddress,
		HTTPAddress:     cfg.OTLPHTTPAddress,
		MaxRequestBytes: cfg.OTLPMaxRequestBytes,
		Observer:        eng,
		Logger:          d.logger.With("component", "otlp"),
		Registerer:      d.registry,
	})
	if err != nil {
		return nil, err
	}
	d.scraper, err = scrape.New(scrape.Options{
		Configs:    cfg.ScrapeConfigs,
		Observer:   eng,
		Logger:     d.logger.With("component", "scrape"),
		Registerer: d.registry,
	})
	if err != nil {
		return nil, err
	}
	d.web = &http.Server{Handler: d.routes(), ReadHeaderTimeout: 10 * time.Second}
	return d, nil
}

// start opens the OTLP listeners (the web listener is open already); run
// serves until ctx is done.
func (d *daemon) start(ctx context.Context) error {
	if err := d.receiver.Start(ctx); err != nil {
		d.webLn.Close()
		return err
	}
	return nil
}

// run serves until ctx is done, then shuts down in order: stop taking
// spans, stop evaluating, flush notifications.
func (d *daemon) run(ctx context.Context) error {
	var wg sync.WaitGroup
	webErr := make(chan error, 1)
	go func() {
		if err := d.serveWeb(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			webErr <- err
		}
	}()
	evalCtx, stopEval := context.WithCancel(context.Background())
	wg.Add(3)
	go func() { defer wg.Done(); d.engine.Run(evalCtx) }()
	go d.sampleStatus(evalCtx)
	go func() {
		defer wg.Done()
		if err := d.scraper.Run(evalCtx); err != nil {
			d.logger.Error("scraper stopped", "err", err)
		}
	}()
	go func() { defer wg.Done(); d.snapshotLoop(evalCtx, d.cfg.Load().SnapshotInterval) }()
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	notifyDone := make(chan struct{})
	go func() {
		defer close(notifyDone)
		if d.am != nil {
			d.am.Run(notifyCtx)
		}
	}()
	d.ready.Store(true)
	d.logger.Info("sentinel is ready", "web", d.webLn.Addr().String(),
		"otlp_grpc", addrString(d.receiver.GRPCAddr()), "otlp_http", addrString(d.receiver.HTTPAddr()))

	var err error
	select {
	case <-ctx.Done():
	case err = <-webErr:
	}
	d.ready.Store(false)
	d.logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if e := d.receiver.Shutdown(shutdownCtx); e != nil {
		d.logger.Warn("otlp receiver shutdown", "err", e)
	}
	stopEval()
	wg.Wait()
	if err := d.saveSnapshot(); err != nil {
		d.logger.Error("final state snapshot failed", "err", err)
	}
	stopNotify()
	<-notifyDone
	if e := d.web.Shutdown(shutdownCtx); e != nil {
		d.logger.Warn("web shutdown", "err", e)
	}
	return err
}

func addrString(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return a.String()
}

// reload re-reads the config file and the rules. On any error the running
// rules stay in force and the error is returned.
func (d *daemon) reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	err := d.reloadLocked()
	if err != nil {
		d.reloadSuccessful.Set(0)
		d.logger.Error("reload rejected; the running rules stay in force", "err", err)
		return err
	}
	d.reloadSuccessful.Set(1)
	d.reloadTime.SetToCurrentTime()
	d.logger.Info("reloaded configuration and rules")
	return nil
}

func (d *daemon) reloadLocked() error {
	cfg := d.cfg.Load()
	if d.opts.ConfigFile != "" {
		next, err := config.Load(d.opts.ConfigFile)
		if err != nil {
			return err
		}
		if d.opts.ConfigOverrides != nil {
			d.opts.ConfigOverrides(next)
		}
		if next.OTLPGRPCAddress != cfg.OTLPGRPCAddress || next.OTLPHTTPAddress != cfg.OTLPHTTPAddress ||
			fmt.Sprint(next.Alertmanagers) != fmt.Sprint(cfg.Alertmanagers) || fmt.Sprint(next.ExternalLabels) != fmt.Sprint(cfg.ExternalLabels) ||
			next.StoragePath != cfg.StoragePath || next.SnapshotInterval != cfg.SnapshotInterval {
			d.logger.Warn("listen addresses, alertmanagers, external labels and storage take effect on restart only; the running ones stay")
			next.OTLPGRPCAddress, next.OTLPHTTPAddress, next.Alertmanagers = cfg.OTLPGRPCAddress, cfg.OTLPHTTPAddress, cfg.Alertmanagers
			next.ExternalLabels, next.StoragePath, next.SnapshotInterval = cfg.ExternalLabels, cfg.StoragePath, cfg.SnapshotInterval
		}
		if fmt.Sprint(next.OTLPGRPCTLS, next.OTLPHTTPTLS) != fmt.Sprint(cfg.OTLPGRPCTLS, cfg.OTLPHTTPTLS) {
			d.logger.Warn("otlp TLS settings take effect on restart only (the files they name are reloaded when they change)")
			next.OTLPGRPCTLS, next.OTLPHTTPTLS = cfg.OTLPGRPCTLS, cfg.OTLPHTTPTLS
		}
		cfg = next
	}
	set, err := d.opts.LoadRules(cfg)
	if err != nil {
		return err
	}
	if err := d.scraper.ApplyConfig(cfg.ScrapeConfigs); err != nil {
		return err
	}
	d.engine.Load(set)
	d.cfg.Store(cfg)
	return nil
}
