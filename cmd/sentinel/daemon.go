package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/notifiers/alertmanager"
	"github.com/kube-sentinel/sentinel/rules"
	"github.com/kube-sentinel/sentinel/sources/otlp"
	"github.com/kube-sentinel/sentinel/sources/scrape"
	"github.com/kube-sentinel/sentinel/traces"
	"github.com/kube-sentinel/sentinel/web"
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
	// MaxLabelValue bounds group_by values in group keys (--rules.max-label-value-bytes); 0 is the engine's default.
	MaxLabelValue int
	// TracePinFor is --traces.pin-for: how long exemplar traces stay pinned
	// after an alert last referred to them; 0 is the engine's default.
	TracePinFor time.Duration
	// AlertmanagerURLs, when set, replace the config's (the --alertmanager.url flag).
	AlertmanagerURLs []string
	// WebConfigFile is --web.config.file: TLS, client certificates and
	// basic auth on the web port ("" serves plain HTTP).
	WebConfigFile string
	// EnableLifecycle is --web.enable-lifecycle: without it POST /-/reload
	// is refused (SIGHUP still reloads).
	EnableLifecycle bool
	// Traces sizes the buffer of recent spans behind the trace view
	// (--traces.* flags); zero values take the traces package's defaults.
	Traces traces.Options
	// WatchInterval is --config.auto-reload-interval: how often the config
	// and rule files are checked for changes; 0 turns the watch off. The
	// watch needs ConfigFile.
	WatchInterval time.Duration
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
	// traces holds recent spans by trace ID: the OTLP receiver feeds it
	// (every span it receives goes through Buffer.Add), the engine pins its
	// exemplars' traces there and reads their critical paths, the trace
	// view shows them.
	traces *traces.Buffer

	web   *http.Server
	webLn net.Listener

	reloadMu         sync.Mutex
	cfg              atomic.Pointer[config.Config]
	reloadSuccessful prometheus.Gauge
	snapshotErrors   prometheus.Counter
	snapshotTooLarge *prometheus.CounterVec
	snapshots        *prometheus.CounterVec
	// reconfigured wakes the snapshot loop after a reload, which may have
	// changed storage.snapshot_interval.
	reconfigured chan struct{}
	reloadTime   prometheus.Gauge
	ready        atomic.Bool
	ui           *web.Handler // the HTTP API and status page
	watcher      *fileWatcher // nil when the files are not watched
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
	d := &daemon{opts: opts, logger: opts.Logger, registry: prometheus.NewRegistry(), webLn: ln,
		reconfigured: make(chan struct{}, 1)}
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
	d.snapshotTooLarge = f.NewCounterVec(prometheus.CounterOpts{
		Name: "sentinel_snapshot_too_large_total",
		Help: "State snapshots refused for exceeding storage.max_snapshot_bytes, by operation (write: not written, the previous one stays; restore: ignored, sentinel started fresh).",
	}, []string{"op"})
	d.snapshots = f.NewCounterVec(prometheus.CounterOpts{
		Name: "sentinel_snapshots_total",
		Help: "State snapshots written, by what caused them (interval, alert_state_change, shutdown).",
	}, []string{"reason"})
	for _, op := range []string{"write", "restore"} {
		d.snapshotTooLarge.WithLabelValues(op)
	}
	d.registry.MustRegister(versioncollector.NewCollector("sentinel")) // sentinel_build_info{version, revision, branch, goversion, …}

	notifiers := fanout(opts.Notifiers)
	var ams []alertmanager.Alertmanager
	for _, ac := range cfg.AlertmanagerConfigs {
		for _, u := range ac.URLs {
			ams = append(ams, alertmanager.Alertmanager{URL: u, HTTPClientConfig: &ac.HTTPClientConfig, Timeout: ac.Timeout})
		}
	}
	if len(opts.AlertmanagerURLs) > 0 {
		ams = nil // --alertmanager.url replaces the config's, with default HTTP settings
	}
	if len(ams) > 0 || len(opts.AlertmanagerURLs) > 0 {
		am, err := alertmanager.New(alertmanager.Options{URLs: opts.AlertmanagerURLs, Alertmanagers: ams,
			Logger: d.logger.With("component", "notifier"), Registerer: d.registry})
		if err != nil {
			return nil, err
		}
		d.am = am
		notifiers = append(notifiers, am)
	}

	// The trace buffer comes first: the engine pins its exemplars' traces
	// in it, the OTLP receiver feeds it, the web layer shows its traces.
	topts := opts.Traces
	topts.Logger, topts.Registerer = d.logger.With("component", "traces"), d.registry
	traceBuf, err := traces.New(topts)
	if err != nil {
		return nil, fmt.Errorf("trace buffer: %w", err)
	}
	d.traces = traceBuf

	engOpts := withLabelValueBound(opts.MaxLabelValue, engine.Options{
		Notifier:         notifiers,
		Logger:           d.logger.With("component", "engine"),
		Registerer:       d.registry,
		ExternalLabels:   cfg.ExternalLabels,
		MaxGroupsPerRule: opts.MaxGroupsPerRule,
		ExternalURL:      opts.ExternalURL,
		ResendDelay:      cfg.ResendDelay,
		ResolveTimeout:   cfg.ResolveTimeout,
		DefaultInterval:  cfg.EvaluationInterval,
		TraceURLTemplate: d.traceURLTemplate(cfg),
		MaxSnapshotBytes: cfg.MaxSnapshotBytes,
		PinFor:           opts.TracePinFor,
		Traces:           d.traces,
	})
	eng, err := engine.New(engOpts)
	if err != nil {
		return nil, err
	}
	d.engine = eng
	set, err := opts.LoadRules(cfg)
	if err != nil {
		return nil, err
	}
	eng.Load(set)
	d.removeStaleTemps()
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
		Limits:          otlpLimits(cfg.OTLPLimits),
		Observer:        eng,
		Traces:          d.traces,
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
	d.ui, err = web.New(web.Options{
		Rules:            eng,
		Traces:           d.traces,
		Explain:          web.EngineExplanation,
		ExternalTraceURL: d.externalTraceURL,
		Targets:          d.scraper.TargetsHandler(),
		Ready:            d.readiness,
		Reload:           d.reload,
		EnableLifecycle:  opts.EnableLifecycle,
		Gatherer:         d.registry,
		Registerer:       d.registry,
		Logger:           d.logger.With("component", "web"),
		Version:          version,
	})
	if err != nil {
		return nil, err
	}
	if opts.ConfigFile != "" && opts.WatchInterval > 0 {
		d.watcher = newFileWatcher(d.registry, d.logger.With("component", "watch"), opts.WatchInterval, d.watchedFiles,
			func() error { _, err := d.reload(); return err })
		d.watcher.seen = d.watcher.fingerprint() // the files just loaded
	}
	d.web = &http.Server{Handler: d.ui, ReadHeaderTimeout: 10 * time.Second}
	return d, nil
}

// traceURLTemplate is the template of exemplar_trace_urls: the config's
// trace_url_template (Tempo, Jaeger), or without one sentinel's own trace
// view, <external URL>/trace/<trace ID>.
func (d *daemon) traceURLTemplate(cfg *config.Config) string {
	if cfg.TraceURLTemplate != "" {
		return cfg.TraceURLTemplate
	}
	// The URL as a quoted string, so that no character of it can be
	// template syntax.
	return "{{ " + strconv.Quote(strings.TrimRight(d.opts.ExternalURL, "/")+"/trace/") + " }}{{ .TraceID }}"
}

// externalTraceURL links exemplars to the configured trace_url_template
// (through the engine, so that the status page links as the alerts do),
// nil without one: the status page links sentinel's own view anyway.
func (d *daemon) externalTraceURL() web.ExemplarURLFunc {
	if d.cfg.Load().TraceURLTemplate == "" {
		return nil
	}
	return d.engine.ExemplarURL
}

// evaluationInterval is the default evaluation interval in force.
func (d *daemon) evaluationInterval() time.Duration {
	if every := d.cfg.Load().EvaluationInterval; every > 0 {
		return every
	}
	return rules.DefaultEvaluationInterval
}

// readiness is nil while the daemon serves: started, not shutting down,
// and its OTLP ingestion not refusing every export.
func (d *daemon) readiness() error {
	if !d.ready.Load() {
		return errors.New("starting or shutting down")
	}
	return d.receiver.Ready()
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
	wg.Add(4)
	go func() { defer wg.Done(); d.engine.Run(evalCtx) }()
	go func() { defer wg.Done(); d.ui.SampleStatus(evalCtx, d.evaluationInterval) }()
	go func() {
		defer wg.Done()
		if err := d.scraper.Run(evalCtx); err != nil {
			d.logger.Error("scraper stopped", "err", err)
		}
	}()
	go func() { defer wg.Done(); d.snapshotLoop(evalCtx) }()
	if d.watcher != nil {
		wg.Go(func() { d.watcher.run(evalCtx) })
	}
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
	if e := d.saveSnapshot("shutdown"); e != nil {
		// The state since the last snapshot is lost: say so in the exit
		// status too, so that whoever restarts sentinel knows.
		d.logger.Error("final state snapshot failed; the state since the last snapshot is lost", "path", d.snapshotPath(), "err", e)
		if err == nil {
			err = fmt.Errorf("final state snapshot: %w", e)
		}
	}
	stopNotify()
	<-notifyDone
	if e := d.web.Shutdown(shutdownCtx); e != nil {
		d.logger.Warn("web shutdown", "err", e)
	}
	return err
}

// withLabelValueBound sets the engine's bound on group_by values.
func withLabelValueBound(maxBytes int, o engine.Options) engine.Options {
	o.MaxLabelValueBytes = maxBytes
	return o
}

// otlpLimits passes otlp.limits on; zero fields take the receiver's defaults.
func otlpLimits(c config.OTLPLimits) otlp.Limits {
	return otlp.Limits{
		MaxSpansPerRequest:     c.MaxSpansPerRequest,
		MaxAttributesPerSpan:   c.MaxAttributesPerSpan,
		MaxAttributeKeyBytes:   c.MaxAttributeKeyBytes,
		MaxAttributeValueBytes: c.MaxAttributeValueBytes,
		MaxAttributeDepth:      c.MaxAttributeDepth,
		MemoryBudgetBytes:      c.MemoryBudgetBytes,
		ReadHeaderTimeout:      c.ReadHeaderTimeout,
		ReadTimeout:            c.ReadTimeout,
		IdleTimeout:            c.IdleTimeout,
		MaxHeaderBytes:         c.MaxHeaderBytes,
		MaxConcurrentStreams:   uint32(min(c.MaxConcurrentStreams, math.MaxUint32)),
		RefusingAfter:          c.RefusingAfter,
		MaxQueueWait:           c.MaxQueueWait,
		MaxQueuedRequests:      c.MaxQueuedRequests,
		MaxHTTPConnections:     c.MaxHTTPConnections,
		MaxGRPCConnections:     c.MaxGRPCConnections,
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return a.String()
}

// reload re-reads the config file and the rules and applies every setting
// that can change while running: rules, scrape configs, the evaluation
// interval of groups without their own, resend_delay, resolve_timeout,
// trace_url_template, storage.snapshot_interval and
// storage.max_snapshot_bytes. The settings
// that take effect on restart only keep their running values; reload
// returns their names (they are logged too). On any error the running
// configuration stays in force and the error is returned.
func (d *daemon) reload() (needRestart []string, err error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	needRestart, err = d.reloadLocked()
	if err != nil {
		d.reloadSuccessful.Set(0)
		d.logger.Error("reload rejected; the running configuration and rules stay in force", "err", err)
		return nil, err
	}
	d.reloadSuccessful.Set(1)
	d.reloadTime.SetToCurrentTime()
	if len(needRestart) > 0 {
		d.logger.Warn("reloaded configuration and rules; these settings changed but take effect on restart only, the running values stay",
			"settings", strings.Join(needRestart, ","))
	} else {
		d.logger.Info("reloaded configuration and rules")
	}
	return needRestart, nil
}

// restartOnly are the settings a running daemon cannot change: listeners,
// the notifier's destinations, the labels that identify its alerts, and
// where its state lives.
var restartOnly = []struct {
	name string
	get  func(*config.Config) string
	keep func(next, running *config.Config)
}{
	{"otlp.grpc.listen_address", func(c *config.Config) string { return c.OTLPGRPCAddress },
		func(n, r *config.Config) { n.OTLPGRPCAddress = r.OTLPGRPCAddress }},
	{"otlp.http.listen_address", func(c *config.Config) string { return c.OTLPHTTPAddress },
		func(n, r *config.Config) { n.OTLPHTTPAddress = r.OTLPHTTPAddress }},
	{"otlp.http.max_request_bytes", func(c *config.Config) string { return fmt.Sprint(c.OTLPMaxRequestBytes) },
		func(n, r *config.Config) { n.OTLPMaxRequestBytes = r.OTLPMaxRequestBytes }},
	// With the timeouts, header and stream bounds of otlp.http and otlp.grpc.
	{"otlp.limits", func(c *config.Config) string { return fmt.Sprint(c.OTLPLimits) },
		func(n, r *config.Config) { n.OTLPLimits = r.OTLPLimits }},
	// alerting.alertmanagers too: see reloadLocked.
	{"global.external_labels", func(c *config.Config) string { return fmt.Sprint(c.ExternalLabels) },
		func(n, r *config.Config) { n.ExternalLabels = r.ExternalLabels }},
	{"storage.path", func(c *config.Config) string { return c.StoragePath },
		func(n, r *config.Config) { n.StoragePath = r.StoragePath }},
	// Which files: the files' contents are reloaded when they change.
	{"otlp.grpc.tls", func(c *config.Config) string { return fmt.Sprint(c.OTLPGRPCTLS) },
		func(n, r *config.Config) { n.OTLPGRPCTLS = r.OTLPGRPCTLS }},
	{"otlp.http.tls", func(c *config.Config) string { return fmt.Sprint(c.OTLPHTTPTLS) },
		func(n, r *config.Config) { n.OTLPHTTPTLS = r.OTLPHTTPTLS }},
}

func (d *daemon) reloadLocked() (needRestart []string, err error) {
	cfg := d.cfg.Load()
	if d.opts.ConfigFile != "" {
		next, err := config.Load(d.opts.ConfigFile)
		if err != nil {
			return nil, err
		}
		if d.opts.ConfigOverrides != nil {
			d.opts.ConfigOverrides(next)
		}
		for _, s := range restartOnly {
			if s.get(next) != s.get(cfg) {
				needRestart = append(needRestart, s.name)
				s.keep(next, cfg)
			}
		}
		// Compared whole, secrets included (a string of the settings would
		// hold pointers or hide the secrets).
		if !reflect.DeepEqual(next.AlertmanagerConfigs, cfg.AlertmanagerConfigs) {
			needRestart = append(needRestart, "alerting.alertmanagers")
			next.Alertmanagers, next.AlertmanagerConfigs = cfg.Alertmanagers, cfg.AlertmanagerConfigs
		}
		cfg = next
	}
	set, err := d.opts.LoadRules(cfg)
	if err != nil {
		return nil, err
	}
	settings := engine.Settings{ExternalURL: d.opts.ExternalURL, ResendDelay: cfg.ResendDelay, ResolveTimeout: cfg.ResolveTimeout, DefaultInterval: cfg.EvaluationInterval,
		TraceURLTemplate: d.traceURLTemplate(cfg), MaxSnapshotBytes: cfg.MaxSnapshotBytes}
	if _, err := engine.ParseTraceURLTemplate(cfg.TraceURLTemplate); cfg.TraceURLTemplate != "" && err != nil {
		return nil, err // checked before anything changes
	}
	if err := d.scraper.ApplyConfig(cfg.ScrapeConfigs); err != nil {
		return nil, err
	}
	if err := d.engine.Apply(settings); err != nil {
		return nil, err
	}
	d.engine.Load(set) // after Apply: groups without an interval take the new default
	d.cfg.Store(cfg)
	select {
	case d.reconfigured <- struct{}{}:
	default:
	}
	return needRestart, nil
}
