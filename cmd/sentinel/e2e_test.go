package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/internal/amtest"
	"github.com/kube-sentinel/sentinel/internal/testkit"
	"github.com/kube-sentinel/sentinel/traces"
	"github.com/kube-sentinel/sentinel/web"
)

const e2eRules = `
groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: NamespacesGETLatency
        matchers: ['service.name="apiserver"', 'resource="namespaces"', 'verb="GET"']
        group_by: [verb]
        objective: {quantile: 0.99, threshold: 1s}
        window: 8s
        for: 2s
        labels: {severity: page}
        annotations:
          summary: "p99 of {{ $labels.verb }} namespaces is {{ $value | humanizeDuration }}"
`

// startSentinel runs a daemon in-process on loopback ports with the given
// rules, sending to the given Alertmanagers.
func startSentinel(t *testing.T, ruleText string, alertmanagers ...string) *daemon {
	t.Helper()
	return startSentinelWith(t, ruleText, "", alertmanagers...)
}

// startSentinelWith is startSentinel with more config appended.
func startSentinelWith(t *testing.T, ruleText, extraConfig string, alertmanagers ...string) *daemon {
	t.Helper()
	return startSentinelOpts(t, ruleText, extraConfig, nil, alertmanagers...)
}

// startSentinelOpts is startSentinelWith whose daemon options edit can
// change (the web flags).
func startSentinelOpts(t *testing.T, ruleText, extraConfig string, edit func(*daemonOptions), alertmanagers ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(ruleText), 0o644); err != nil {
		t.Fatal(err)
	}
	otlpLine := "otlp: {grpc: {listen_address: \"127.0.0.1:0\"}, http: {listen_address: \"127.0.0.1:0\"}}\n"
	if strings.HasPrefix(extraConfig, "otlp:") { // extraConfig brings its own
		otlpLine = ""
	}
	cfgText := fmt.Sprintf(`
global: {evaluation_interval: 1s, external_labels: {cluster: e2e}}
rule_files: [rules.yaml]
%sstorage: {path: %q, snapshot_interval: 1s}
alerting:
  alertmanagers: [%s]
  resend_delay: 2s
  trace_url_template: "http://tracing.test/trace/{{ .TraceID }}"
`, otlpLine, filepath.Join(dir, "data"), amList(alertmanagers)) + extraConfig
	cfgFile := filepath.Join(dir, "sentinel.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	// A small trace buffer: the tests' traffic fits, and a test run with
	// many daemons does not reserve the default's 64MiB for each.
	opts := daemonOptions{Config: cfg, ConfigFile: cfgFile, WebAddress: "127.0.0.1:0", Traces: traces.Options{MaxBytes: 16 << 20}}
	if edit != nil {
		edit(&opts)
	}
	return startDaemon(t, opts)
}

func amList(urls []string) string {
	var parts []string
	for _, u := range urls {
		parts = append(parts, fmt.Sprintf("{url: %q}", u))
	}
	return strings.Join(parts, ", ")
}

// spanSender sends spans through the OpenTelemetry Go SDK, as kube-apiserver
// and etcd do, over both OTLP transports.
type spanSender struct {
	apiGRPC, apiHTTP, etcd *sdktrace.TracerProvider
	mu                     sync.Mutex
	slowGETs               map[string]bool // trace IDs of the slow namespaces GETs
}

func newSpanSender(t *testing.T, d *daemon) *spanSender {
	ctx := context.Background()
	grpcExp := func() sdktrace.SpanExporter {
		e, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(d.receiver.GRPCAddr().String()), otlptracegrpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	httpExp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(d.receiver.HTTPAddr().String()), otlptracehttp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	provider := func(service string, exp sdktrace.SpanExporter) *sdktrace.TracerProvider {
		res := resource.NewSchemaless(attribute.String("service.name", service))
		return sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(100*time.Millisecond)))
	}
	s := &spanSender{
		apiGRPC:  provider("apiserver", grpcExp()),
		apiHTTP:  provider("apiserver", httpExp),
		etcd:     provider("etcd", grpcExp()),
		slowGETs: map[string]bool{},
	}
	t.Cleanup(func() {
		for _, p := range []*sdktrace.TracerProvider{s.apiGRPC, s.apiHTTP, s.etcd} {
			p.Shutdown(context.Background())
		}
	})
	return s
}

// request sends one apiserver request as its real span tree: SERVER, an
// INTERNAL handler child, an etcd CLIENT child, and etcd's SERVER span.
func (s *spanSender) request(p *sdktrace.TracerProvider, method, target string, took time.Duration) trace.SpanContext {
	end := time.Now()
	start := end.Add(-took)
	ctx, server := p.Tracer("k8s.io/apiserver").Start(context.Background(), method+" "+target,
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("http.method", method), attribute.String("http.target", target), attribute.Int("http.status_code", 200)))
	// Decoys inside the trace: an INTERNAL child and an etcd span that carry
	// verb/resource attributes and take even longer. Neither may count.
	res := strings.Split(strings.Trim(target, "/"), "/")[2]
	ctx2, handler := p.Tracer("k8s.io/apiserver").Start(ctx, "Get", trace.WithSpanKind(trace.SpanKindInternal), trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("verb", "GET"), attribute.String("resource", res)))
	_, etcdSpan := s.etcd.Tracer("go.etcd.io/etcd").Start(ctx2, "etcdserverpb.KV/Range", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("verb", "GET"), attribute.String("resource", res), attribute.String("http.method", "GET"), attribute.String("http.target", target)))
	etcdSpan.End(trace.WithTimestamp(end.Add(2 * took)))
	handler.End(trace.WithTimestamp(end.Add(2 * took)))
	server.End(trace.WithTimestamp(end))
	return server.SpanContext()
}

// phase sends traffic for d: namespaces GETs taking getTook, and decoys
// (LIST namespaces, GET pods) that are always slow.
func (s *spanSender) phase(t *testing.T, d time.Duration, getTook time.Duration) {
	deadline := time.Now().Add(d)
	for i := 0; time.Now().Before(deadline); i++ {
		p := s.apiGRPC
		if i%2 == 1 {
			p = s.apiHTTP
		}
		sc := s.request(p, "GET", "/api/v1/namespaces/default", getTook)
		if getTook > time.Second {
			s.mu.Lock()
			s.slowGETs[sc.TraceID().String()] = true
			s.mu.Unlock()
		}
		s.request(p, "GET", "/api/v1/namespaces", 3*time.Second)                // LIST
		s.request(p, "GET", "/api/v1/namespaces/default/pods/x", 3*time.Second) // other resource
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range []*sdktrace.TracerProvider{s.apiGRPC, s.apiHTTP, s.etcd} {
		if err := p.ForceFlush(context.Background()); err != nil {
			t.Fatalf("flush: %v", err)
		}
	}
}

func amAlerts(t *testing.T, am *amtest.Instance) []*models.GettableAlert {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	alerts, err := am.Alerts(ctx)
	if err != nil {
		t.Logf("alertmanager: %v", err)
		return nil
	}
	return alerts
}

// TestSpanToPage is the whole path with real parts: OpenTelemetry SDK
// exporters → OTLP receivers → engine → notifier → a real Alertmanager.
func TestSpanToPage(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	am := amtest.Start(t)
	d := startSentinel(t, e2eRules, am.URL)
	s := newSpanSender(t, d)

	s.phase(t, 3*time.Second, 20*time.Millisecond) // normal
	if got := amAlerts(t, am); len(got) != 0 {
		t.Fatalf("alerts during normal traffic: %v", got)
	}
	s.phase(t, 5*time.Second, 2*time.Second) // slow namespaces GETs

	alert := testkit.WaitFor(t, "the alert at Alertmanager", 30*time.Second, func() (*models.GettableAlert, bool) {
		for _, a := range amAlerts(t, am) {
			if a.Labels["alertname"] == "NamespacesGETLatency" {
				return a, true
			}
		}
		return nil, false
	})
	want := models.LabelSet{"alertname": "NamespacesGETLatency", "severity": "page", "verb": "GET", "cluster": "e2e"}
	if fmt.Sprint(alert.Labels) != fmt.Sprint(want) {
		t.Errorf("labels %v, want %v", alert.Labels, want)
	}
	ids := strings.Split(alert.Annotations["exemplar_trace_ids"], ",")
	if len(ids) == 0 || ids[0] == "" {
		t.Fatalf("no exemplar trace IDs: %v", alert.Annotations)
	}
	s.mu.Lock()
	for _, id := range ids {
		if len(id) != 32 || !s.slowGETs[id] {
			t.Errorf("exemplar %q is not the trace of a slow namespaces GET", id)
		}
	}
	s.mu.Unlock()
	if urls := alert.Annotations["exemplar_trace_urls"]; !strings.HasPrefix(urls, "http://tracing.test/trace/"+ids[0]) {
		t.Errorf("exemplar_trace_urls %q", urls)
	}
	var p99 float64
	if _, err := fmt.Sscanf(alert.Annotations["summary"], "p99 of GET namespaces is %gs", &p99); err != nil || p99 < 1.98 || p99 > 2.02 {
		t.Errorf("summary %q: want a p99 of 2s within 1%%", alert.Annotations["summary"])
	}
	if all := amAlerts(t, am); len(all) != 1 {
		t.Errorf("decoy traffic fired too: %d alerts at Alertmanager", len(all))
	}
	checkRulesAPI(t, d)

	// Recovery: fast GETs; the slow ones leave the 8s window and the alert resolves.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				s.phase(t, time.Second, 20*time.Millisecond)
			}
		}
	}()
	defer close(stop)
	testkit.WaitFor(t, "the alert to resolve at Alertmanager", 40*time.Second, func() (bool, bool) {
		for _, a := range amAlerts(t, am) {
			if a.Labels["alertname"] == "NamespacesGETLatency" {
				return false, false
			}
		}
		return true, true
	})
}

// checkRulesAPI asserts /api/v1/rules shows the firing rule with one
// series, for verb GET: the decoys made no series of their own.
func checkRulesAPI(t *testing.T, d *daemon) {
	t.Helper()
	resp, err := http.Get("http://" + d.webLn.Addr().String() + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Data   struct {
			Groups []struct {
				Rules []web.Rule
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	r := body.Data.Groups[0].Rules[0]
	if body.Status != "success" || r.State != "firing" || len(r.Series) != 1 || r.Series[0].Labels["verb"] != "GET" {
		t.Fatalf("rules API: %+v", body)
	}
	if v := r.Series[0].Value; v == nil || *v < 1.9 || *v > 2.1 || len(r.Series[0].Exemplars) != 5 {
		t.Errorf("series %+v", r.Series[0])
	}
}

// fetchRules returns every rule of /api/v1/rules.
func fetchRules(t *testing.T, base string) []web.Rule {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct{ Groups []web.Group }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var out []web.Rule
	for _, g := range body.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// startDaemon starts an in-process daemon and stops it when the test ends
// (its run must then return no error).
func startDaemon(t *testing.T, opts daemonOptions) *daemon {
	t.Helper()
	d, err := newDaemon(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	return d
}
