package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/notifiers/stdout"
	"github.com/kube-sentinel/sentinel/rules"
)

//go:embed demo_rules.yaml
var demoRules []byte

// The demo's timeline: normal traffic, then an incident on namespaces
// requests served through one slow control-plane node, then recovery.
const (
	demoHeadline     = "KubeAPINamespacesLatencyP99"
	demoIncidentFrom = 15 * time.Second
	demoIncidentTo   = 35 * time.Second
	demoDeadline     = 3 * time.Minute
	demoTick         = 250 * time.Millisecond
	demoPerTick      = 40 // requests per tick: 160 requests/s, about 900 spans/s
	// demoLateExport is how often etcd's and the webhook's exporters send
	// the spans they hold: after the apiserver's, in exports of their own.
	// The SDK's default is 5 s; shorter here, so that an alert computed
	// right after the newest exemplars ended seldom misses their etcd spans
	// (their time would count as the apiserver client span's own until the
	// next evaluation).
	demoLateExport = time.Second
)

func runDemo(ctx context.Context, args []string, out, stderr io.Writer) int {
	common, logger, status := parseDemoFlags(args, stderr)
	if logger == nil {
		return status
	}
	cfg := config.Defaults()
	cfg.OTLPGRPCAddress, cfg.OTLPHTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
	cfg.ExternalLabels = map[string]string{"cluster": "demo"}
	// No trace_url_template: the alerts link sentinel's own trace view.
	cfg.ResendDelay = 30 * time.Second
	cfg.StoragePath = "" // the demo leaves nothing behind

	watch := &incidentWatcher{done: make(chan struct{})}
	d, err := newDaemon(daemonOptions{
		Config:           cfg,
		WebAddress:       common.webAddress,
		ExternalURL:      common.externalURL, // "": the listener's address, so the trace links work here
		Logger:           logger,
		AlertmanagerURLs: common.alertmanager,
		Traces:           common.traces,
		Notifiers:        []engine.Notifier{stdout.New(out), watch},
		LoadRules: func(*config.Config) (*rules.Set, error) {
			groups, err := rules.Parse("demo_rules.yaml", demoRules, rules.Options{})
			if err != nil {
				return nil, err
			}
			return &rules.Set{Files: []string{"demo_rules.yaml"}, Groups: groups}, nil
		},
	})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := d.start(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	daemonDone := make(chan error, 1)
	go func() { daemonDone <- d.run(runCtx) }()

	fmt.Fprintf(out, "sentinel demo: whole control-plane traces (apiserver, etcd, an admission webhook on writes) from nodes cp-1..cp-3 over OTLP/gRPC to %s\n", d.receiver.GRPCAddr())
	fmt.Fprintf(out, "status page: http://%s/   rules API: http://%s/api/v1/rules   (the alerts' trace links open here while the demo runs)\n", d.webLn.Addr(), d.webLn.Addr())
	fmt.Fprintf(out, "timeline: normal traffic; at %s etcd on %s becomes slow to serve reads, so every read through %s's apiserver waits on it; at %s it recovers\n\n",
		demoIncidentFrom, demoSlowNode, demoSlowNode, demoIncidentTo)

	trafficErr := make(chan error, 1)
	go func() { trafficErr <- sendDemoTraffic(runCtx, d.receiver.GRPCAddr().String(), out) }()

	status = 0
	completed := false
	select {
	case <-watch.done:
		completed = true
	case err := <-trafficErr:
		fmt.Fprintln(stderr, "demo traffic failed:", err)
		status = 1
	case <-time.After(demoDeadline):
		fmt.Fprintf(stderr, "demo: %s did not fire and resolve within %s\n", demoHeadline, demoDeadline)
		status = 1
	case <-ctx.Done():
		status = 1
	}
	stop()
	if err := <-daemonDone; err != nil {
		fmt.Fprintln(stderr, err)
		status = 1
	}
	if completed {
		fmt.Fprintf(out, "demo complete: %s fired with exemplar traces and resolved.\n", demoHeadline)
	}
	return status
}

// parseDemoFlags parses the demo's flags. Its log level is warn unless
// --log.level says otherwise: the demo's output is its notifications. A nil
// logger comes with the exit status.
func parseDemoFlags(args []string, stderr io.Writer) (*commonFlags, *slog.Logger, int) {
	fs := flag.NewFlagSet("sentinel demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	common := &commonFlags{}
	common.register(fs, "127.0.0.1:0")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, 0
		}
		return nil, nil, 2
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "log.level" })
	if !given {
		common.logLevel = "warn"
	}
	logger, err := common.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, nil, 2
	}
	return common, logger, 0
}

// sendDemoTraffic exports synthetic spans through the real OTLP/gRPC
// receiver until ctx is done: the apiserver's every tick, etcd's and the
// webhook's every demoLateExport, in requests of their own, so a trace's
// spans arrive in pieces as they do from a cluster.
func sendDemoTraffic(ctx context.Context, addr string, out io.Writer) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	gen := newTrafficGenerator(uint64(time.Now().UnixNano()))
	start := time.Now()
	ticker := time.NewTicker(demoTick)
	defer ticker.Stop()
	lateTicker := time.NewTicker(demoLateExport)
	defer lateTicker.Stop()
	export := func(td ptrace.Traces) error {
		reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := client.Export(reqCtx, ptraceotlp.NewExportRequestFromTraces(td))
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("export: %w", err)
		}
		return nil
	}
	phase := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lateTicker.C:
			for _, td := range gen.flush() {
				if err := export(td); err != nil {
					return err
				}
			}
		case now := <-ticker.C:
			elapsed := now.Sub(start)
			incident := elapsed >= demoIncidentFrom && elapsed < demoIncidentTo
			if p := map[bool]string{true: "incident", false: "normal"}[incident]; p != phase {
				if phase != "" {
					fmt.Fprintf(out, "[%5.1fs] traffic: %s\n\n", elapsed.Seconds(), map[bool]string{true: "INCIDENT: etcd on " + demoSlowNode + " is slow to serve reads", false: "recovered: latency back to normal"}[incident])
				}
				phase = p
			}
			if err := export(gen.batch(now, demoPerTick, incident)); err != nil {
				return err
			}
		}
	}
}

// incidentWatcher closes done once the headline alert has fired and then
// resolved.
type incidentWatcher struct {
	mu    sync.Mutex
	fired bool
	once  sync.Once
	done  chan struct{}
}

func (w *incidentWatcher) Send(alerts ...engine.Alert) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range alerts {
		if a.Labels["alertname"] != demoHeadline {
			continue
		}
		if !a.Resolved(time.Now()) {
			w.fired = a.Annotations["exemplar_trace_ids"] != ""
		} else if w.fired {
			w.once.Do(func() { close(w.done) })
		}
	}
}
