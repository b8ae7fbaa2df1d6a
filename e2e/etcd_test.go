// Package e2e holds end-to-end tests that need heavy test-only dependencies
// (a real etcd server) and so live in a module of their own.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/testkit"

	"github.com/prometheus/alertmanager/api/v2/models"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/kube-sentinel/sentinel/internal/amtest"
)

// The rules: a latency objective on etcd's own KV SERVER spans, and one on
// the apiserver-shaped SERVER spans that wrap each etcd call. Thresholds are
// tiny, so real latency breaches them.
const rulesYAML = `
groups:
  - name: etcd-e2e
    interval: 1s
    rules:
      - alert: EtcdKVLatency
        source: spans
        matchers: ['service.name="etcd"', 'span.name=~"etcdserverpb.KV/.*"']
        group_by: [span.name]
        objective: {quantile: 0.5, threshold: 1us}
        window: 10s
        for: 0s
        labels: {severity: page}
        annotations:
          summary: "p50 of {{ $labels.span_name }} is {{ $value }}"
      - alert: APIServerNamespacesLatency
        source: spans
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        group_by: [verb]
        objective: {quantile: 0.5, threshold: 1us}
        window: 10s
        for: 0s
        labels: {severity: page}
`

const configYAML = `
global: {evaluation_interval: 1s, external_labels: {cluster: etcd-e2e}}
rule_files: [rules.yaml]
alerting:
  resend_delay: 2s
`

// Time limits: every wait below is bounded.
const (
	buildTimeout    = 5 * time.Minute
	readyTimeout    = 30 * time.Second
	trafficDuration = 60 * time.Second // at most; stopped as soon as the checks pass
	trafficMaxOps   = 2000
	seriesTimeout   = 30 * time.Second
	alertTimeout    = 40 * time.Second
)

var traceIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestEtcdSpansToAlertmanager runs a real etcd 3.6 with distributed tracing
// pointed at a real sentinel process, drives it with an OpenTelemetry-
// instrumented etcd client inside apiserver-shaped SERVER spans, and checks
// that etcd's genuine SERVER spans (which follow the client's sampled parent)
// are evaluated by sentinel and page through a real Alertmanager with the
// client's trace IDs as exemplars.
func TestEtcdSpansToAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	am := amtest.Start(t) // skips without an Alertmanager binary (fails when CI=true)
	bin := buildSentinel(t)
	s := startSentinel(t, bin, am.URL, rulesYAML)
	etcdEndpoint, _ := startEtcd(t, s.grpcAddr)

	tp := apiserverTracerProvider(t, s.grpcAddr)
	cli := etcdClient(t, etcdEndpoint, tp)
	traffic := startTraffic(t, cli, tp)

	// (a) sentinel sees etcd's own SERVER spans, one series per KV method.
	var rangeSeries, putSeries apiSeries
	testkit.WaitFor(t, "etcd Range and Put series in /api/v1/rules", seriesTimeout, func() (struct{}, bool) {
		rule, ok := s.rule(t, "EtcdKVLatency")
		if !ok {
			return struct{}{}, false
		}
		var haveRange, havePut bool
		for _, ser := range rule.Series {
			switch ser.Labels["span_name"] {
			case "etcdserverpb.KV/Range":
				rangeSeries, haveRange = ser, ser.Observations > 0
			case "etcdserverpb.KV/Put":
				putSeries, havePut = ser, ser.Observations > 0
			}
		}
		return struct{}{}, haveRange && havePut
	})
	t.Logf("etcd Range series: %d observations, p50 %vs; Put: %d observations",
		rangeSeries.Observations, deref(rangeSeries.Value), putSeries.Observations)
	// (c) in the API too: etcd's exemplars are traces the client started.
	traffic.checkExemplars(t, "Range series", exemplarIDs(rangeSeries), "GET", "LIST")
	traffic.checkExemplars(t, "Put series", exemplarIDs(putSeries), "PUT")

	// (b) the alert reaches the real Alertmanager, with exemplar trace IDs.
	etcdAlert := waitForAlert(t, am, "EtcdKVLatency", map[string]string{"span_name": "etcdserverpb.KV/Range"})
	wantLabels := map[string]string{"alertname": "EtcdKVLatency", "span_name": "etcdserverpb.KV/Range", "severity": "page", "cluster": "etcd-e2e"}
	for k, v := range wantLabels {
		if got := etcdAlert.Labels[k]; got != v {
			t.Errorf("etcd alert label %s=%q, want %q (labels %v)", k, got, v, etcdAlert.Labels)
		}
	}
	ids := annotationIDs(t, etcdAlert)
	// (c) etcd followed the apiserver-shaped parent: its spans are in the
	// client's traces, so the exemplars are trace IDs the client started.
	traffic.checkExemplars(t, "etcd alert", ids, "GET", "LIST")

	// (d) the apiserver-shaped SERVER spans are requests on namespaces, with
	// verb derived from method and path, counted once per request.
	apiRule, ok := s.rule(t, "APIServerNamespacesLatency")
	if !ok {
		t.Fatal("rule APIServerNamespacesLatency missing from /api/v1/rules")
	}
	verbs := map[string]apiSeries{}
	for _, ser := range apiRule.Series {
		verbs[ser.Labels["verb"]] = ser
	}
	for _, verb := range []string{"GET", "LIST", "PUT"} {
		ser, ok := verbs[verb]
		if !ok || ser.Observations == 0 {
			t.Errorf("apiserver rule: no observations for verb %s (series %+v)", verb, apiRule.Series)
			continue
		}
		if sent := traffic.count(verb); ser.Observations > uint64(sent) {
			t.Errorf("apiserver rule, verb %s: %d observations but only %d requests were made (child spans counted?)", verb, ser.Observations, sent)
		}
		traffic.checkExemplars(t, "apiserver "+verb+" series", exemplarIDs(ser), verb)
	}
	apiAlert := waitForAlert(t, am, "APIServerNamespacesLatency", nil)
	if v := apiAlert.Labels["verb"]; v != "GET" && v != "LIST" && v != "PUT" {
		t.Errorf("apiserver alert verb %q, labels %v", v, apiAlert.Labels)
	}
	traffic.checkExemplars(t, "apiserver alert", annotationIDs(t, apiAlert), apiAlert.Labels["verb"])

	traffic.stop()
	t.Logf("%d etcd calls in apiserver-shaped traces", traffic.total())
}

// ---- sentinel, as a real process ----

// buildSentinel builds the sentinel binary from the parent module, with the
// parent module's own go.mod (exactly what is shipped). A build failure
// fails the test.
func buildSentinel(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "sentinel")); err != nil {
		t.Fatalf("parent module not found: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "sentinel")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-C", root, "-o", bin, "./cmd/sentinel")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build sentinel: %v\n%s", err, out)
	}
	return bin
}

type sentinel struct {
	webURL   string
	grpcAddr string
	httpAddr string
}

// startSentinel runs `sentinel run` with the rule file rules on loopback
// ports and waits for /-/ready. It stops it with SIGTERM at cleanup and
// expects exit status 0.
func startSentinel(t *testing.T, bin, amURL, rules string) *sentinel {
	t.Helper()
	var errs []error
	for range 3 { // a free port can be taken before sentinel binds it
		s, err := tryStartSentinel(t, bin, amURL, rules)
		if err == nil {
			return s
		}
		errs = append(errs, err)
	}
	t.Fatal(errors.Join(errs...))
	return nil
}

func tryStartSentinel(t *testing.T, bin, amURL, rules string) (*sentinel, error) {
	dir := t.TempDir()
	for name, text := range map[string]string{"sentinel.yaml": configYAML, "rules.yaml": rules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	web, grpcAddr, httpAddr := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	s := &sentinel{webURL: "http://" + web, grpcAddr: grpcAddr, httpAddr: httpAddr}
	cmd := exec.Command(bin, "run",
		"--config.file="+filepath.Join(dir, "sentinel.yaml"),
		"--web.listen-address="+web,
		"--otlp.grpc-address="+grpcAddr,
		"--otlp.http-address="+httpAddr,
		"--alertmanager.url="+amURL,
		"--storage.path="+filepath.Join(dir, "data"),
	)
	cmd.Dir = dir
	out := &testkit.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sentinel: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("sentinel did not stop within 15s of SIGTERM\n%s", out)
			return
		}
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("sentinel exited with status %d after SIGTERM\n%s", code, out)
		}
	}

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("sentinel exited before it was ready (%v):\n%s", cmd.ProcessState, out)
		default:
		}
		if resp, err := client.Get(s.webURL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("sentinel not ready after %s:\n%s", readyTimeout, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("sentinel output:\n%s", out)
		}
	})
	return s, nil
}

type apiSeries struct {
	Labels       map[string]string `json:"labels"`
	Value        *float64          `json:"value"`
	Observations uint64            `json:"observations"`
	Exemplars    []struct {
		TraceID string  `json:"traceId"`
		Value   float64 `json:"value"`
	} `json:"exemplars"`
}

type apiRule struct {
	Name   string      `json:"name"`
	State  string      `json:"state"`
	Series []apiSeries `json:"series"`
}

// rule returns one rule from sentinel's /api/v1/rules.
func (s *sentinel) rule(t *testing.T, name string) (apiRule, bool) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(s.webURL + "/api/v1/rules")
	if err != nil {
		t.Logf("GET /api/v1/rules: %v", err)
		return apiRule{}, false
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Groups []struct {
				Rules []apiRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Logf("GET /api/v1/rules: status %q, %v", body.Status, err)
		return apiRule{}, false
	}
	for _, g := range body.Data.Groups {
		for _, r := range g.Rules {
			if r.Name == name {
				return r, true
			}
		}
	}
	return apiRule{}, false
}

// ---- etcd ----

// startEtcd starts an embedded etcd on loopback with distributed tracing
// exported to otlpAddr, and returns its client endpoint and a function that
// stops it, flushing its span exporter (cleanup calls it too).
func startEtcd(t *testing.T, otlpAddr string) (string, func()) {
	t.Helper()
	dir := t.TempDir()
	clientURL := url.URL{Scheme: "http", Host: testkit.FreeAddr(t)}
	peerURL := url.URL{Scheme: "http", Host: testkit.FreeAddr(t)}

	cfg := embed.NewConfig()
	cfg.Name = "e2e"
	cfg.Dir = filepath.Join(dir, "data")
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	logFile := filepath.Join(dir, "etcd.log")
	cfg.LogOutputs = []string{logFile}
	// Distributed tracing, 3.6 names (3.5 had them with an Experimental prefix).
	cfg.EnableDistributedTracing = true
	cfg.DistributedTracingAddress = otlpAddr
	cfg.DistributedTracingServiceName = "etcd"
	cfg.DistributedTracingSamplingRatePerMillion = 1000000

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	dumpLog := func() {
		if b, err := os.ReadFile(logFile); err == nil {
			t.Logf("etcd log:\n%s", b)
		}
	}
	var closeOnce sync.Once
	stop := func() {
		closeOnce.Do(func() {
			done := make(chan struct{})
			go func() { e.Close(); close(done) }() // flushes etcd's span exporter
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Errorf("etcd did not close within 30s")
			}
		})
	}
	// Registered before the tracer provider and client: runs after them.
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			dumpLog()
		}
	})
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd: %v", err)
	case <-time.After(readyTimeout):
		dumpLog()
		t.Fatalf("etcd not ready after %s", readyTimeout)
	}
	return clientURL.Host, stop
}

// apiserverTracerProvider is the OTel SDK as kube-apiserver sets it up:
// service.name "apiserver", OTLP/gRPC to sentinel, everything sampled.
func apiserverTracerProvider(t *testing.T, otlpAddr string) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(otlpAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "apiserver"))),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(200*time.Millisecond)),
	)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			t.Logf("apiserver tracer provider shutdown: %v", err)
		}
	})
	return tp
}

// etcdClient is clientv3 with the apiserver's gRPC client instrumentation:
// CLIENT spans, with the W3C trace context sent to etcd.
func etcdClient(t *testing.T, endpoint string, tp trace.TracerProvider) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 10 * time.Second,
		DialOptions: []grpc.DialOption{
			grpc.WithStatsHandler(otelgrpc.NewClientHandler(
				otelgrpc.WithTracerProvider(tp),
				otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
			)),
		},
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// ---- traffic ----

// traffic issues etcd calls, each inside an apiserver-shaped SERVER span,
// and records the trace IDs and verbs of those spans.
type traffic struct {
	mu     sync.Mutex
	verbOf map[string]string // trace ID → verb of its apiserver SERVER span
	counts map[string]int
	done   chan struct{}
	quit   chan struct{}
	once   sync.Once
	errs   []error
}

// apiRequest is one apiserver-shaped request: its SERVER span's method,
// target and name, its verb, and the etcd call it makes.
type apiRequest struct {
	method, target, name, verb string
	call                       func(ctx context.Context) error
}

// startTraffic issues PUT, GET and LIST requests on namespaces, one key
// each, in turn.
func startTraffic(t *testing.T, cli *clientv3.Client, tp *sdktrace.TracerProvider) *traffic {
	return runTraffic(t, tp, func(i int) apiRequest {
		ns := "ns-" + strconv.Itoa(i%5)
		key := "/registry/namespaces/" + ns
		switch i % 3 {
		case 0:
			return apiRequest{"PUT", "/api/v1/namespaces/" + ns, "PUT /api/v1/namespaces/{:name}", "PUT", func(ctx context.Context) error {
				_, err := cli.Put(ctx, key, `{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"`+ns+`"}}`)
				return err
			}}
		case 1:
			return apiRequest{"GET", "/api/v1/namespaces/" + ns, "GET /api/v1/namespaces/{:name}", "GET", func(ctx context.Context) error {
				_, err := cli.Get(ctx, key)
				return err
			}}
		default:
			return apiRequest{"GET", "/api/v1/namespaces", "GET /api/v1/namespaces", "LIST", func(ctx context.Context) error {
				_, err := cli.Get(ctx, "/registry/namespaces/", clientv3.WithPrefix(), clientv3.WithLimit(500))
				return err
			}}
		}
	})
}

// runTraffic issues next(0), next(1), … each inside an apiserver-shaped
// SERVER span, until stopped, for at most trafficDuration and
// trafficMaxOps requests.
func runTraffic(t *testing.T, tp *sdktrace.TracerProvider, next func(i int) apiRequest) *traffic {
	tr := &traffic{verbOf: map[string]string{}, counts: map[string]int{}, done: make(chan struct{}), quit: make(chan struct{})}
	tracer := tp.Tracer("k8s.io/apiserver")
	// One request: SERVER span as otelhttp makes it in the apiserver, an
	// INTERNAL handler span, and the etcd call (otelgrpc adds the CLIENT span).
	request := func(method, target, name, verb string, call func(ctx context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ctx, server := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.method", method),
				attribute.String("http.target", target),
				attribute.String("http.scheme", "https"),
				attribute.String("http.user_agent", "kubectl/v1.33.0 (linux/amd64) kubernetes/e2e"),
			))
		hctx, handler := tracer.Start(ctx, strings.ToUpper(verb[:1])+strings.ToLower(verb[1:]), trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(attribute.String("verb", strings.ToLower(verb)), attribute.String("resource", "namespaces")))
		err := call(hctx)
		handler.End()
		status := 200
		if err != nil {
			status = 500
		}
		server.SetAttributes(attribute.Int("http.status_code", status))
		server.End()
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if err != nil {
			if len(tr.errs) < 5 {
				tr.errs = append(tr.errs, fmt.Errorf("%s %s: %w", method, target, err))
			}
			return
		}
		tr.verbOf[server.SpanContext().TraceID().String()] = verb
		tr.counts[verb]++
	}
	go func() {
		defer close(tr.done)
		deadline := time.Now().Add(trafficDuration)
		for i := 0; i < trafficMaxOps && time.Now().Before(deadline); i++ {
			select {
			case <-tr.quit:
				return
			default:
			}
			r := next(i)
			request(r.method, r.target, r.name, r.verb, r.call)
			time.Sleep(30 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		tr.stop()
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, err := range tr.errs {
			t.Errorf("etcd call: %v", err)
		}
	})
	return tr
}

// stop ends the traffic and waits for the last call.
func (tr *traffic) stop() {
	tr.once.Do(func() { close(tr.quit) })
	<-tr.done
}

func (tr *traffic) count(verb string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.counts[verb]
}

func (tr *traffic) total() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, c := range tr.counts {
		n += c
	}
	return n
}

// checkExemplars asserts that ids are trace IDs of apiserver-shaped requests
// the client made, with one of the given verbs.
func (tr *traffic) checkExemplars(t *testing.T, what string, ids []string, verbs ...string) {
	t.Helper()
	if len(ids) == 0 {
		t.Errorf("%s: no exemplar trace IDs", what)
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, id := range ids {
		if !traceIDRE.MatchString(id) {
			t.Errorf("%s: exemplar %q is not 32 lowercase hex digits", what, id)
			continue
		}
		verb, ok := tr.verbOf[id]
		if !ok {
			t.Errorf("%s: exemplar %s is not the trace of any apiserver-shaped request the client made", what, id)
			continue
		}
		found := false
		for _, v := range verbs {
			found = found || v == verb
		}
		if !found {
			t.Errorf("%s: exemplar %s is the trace of a %s request, want one of %v", what, id, verb, verbs)
		}
	}
}

// ---- Alertmanager ----

// waitForAlert polls Alertmanager for an alert named alertname with the
// given labels.
func waitForAlert(t *testing.T, am *amtest.Instance, alertname string, labels map[string]string) *models.GettableAlert {
	t.Helper()
	return waitForAlertWhere(t, am, alertname, labels, "", func(*models.GettableAlert) bool { return true })
}

// waitForAlertWhere polls Alertmanager for an alert named alertname with
// the given labels for which ok holds.
func waitForAlertWhere(t *testing.T, am *amtest.Instance, alertname string, labels map[string]string, what string, ok func(*models.GettableAlert) bool) *models.GettableAlert {
	t.Helper()
	return testkit.WaitFor(t, "alert "+alertname+fmt.Sprint(labels)+what+" at Alertmanager", alertTimeout, func() (*models.GettableAlert, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		alerts, err := am.Alerts(ctx)
		if err != nil {
			t.Logf("alertmanager: %v", err)
			return nil, false
		}
	next:
		for _, a := range alerts {
			if a.Labels["alertname"] != alertname {
				continue
			}
			for k, v := range labels {
				if a.Labels[k] != v {
					continue next
				}
			}
			if ok(a) {
				return a, true
			}
		}
		return nil, false
	})
}

func annotationIDs(t *testing.T, a *models.GettableAlert) []string {
	t.Helper()
	raw := a.Annotations["exemplar_trace_ids"]
	if raw == "" {
		t.Errorf("alert %v has no exemplar_trace_ids annotation: %v", a.Labels, a.Annotations)
		return nil
	}
	return strings.Split(raw, ",")
}

// ---- helpers ----

func exemplarIDs(s apiSeries) []string {
	var ids []string
	for _, e := range s.Exemplars {
		ids = append(ids, e.TraceID)
	}
	return ids
}

func deref(f *float64) any {
	if f == nil {
		return "none"
	}
	return *f
}
