package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/amtest"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// serverSpans builds apiserver SERVER spans for the given request targets,
// each took long and ended now.
func serverSpans(targets []string, took time.Duration, seed uint64) []byte {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "apiserver")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	end := time.Now()
	for i, target := range targets {
		s := spans.AppendEmpty()
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[:8], seed)
		binary.BigEndian.PutUint64(tid[8:], uint64(i)+1)
		s.SetTraceID(tid)
		s.SetSpanID(pcommon.SpanID{1, byte(i), byte(i >> 8)})
		s.SetName("GET /api/v1/namespaces/{:namespace}/pods")
		s.SetKind(ptrace.SpanKindServer)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-took)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		s.Attributes().PutStr("http.method", "GET")
		s.Attributes().PutStr("http.target", target)
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		panic(err)
	}
	return b
}

func postOTLP(t *testing.T, d *daemon, body []byte) int {
	t.Helper()
	resp, err := http.Post("http://"+d.receiver.HTTPAddr().String()+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func liveHeap() int64 {
	s := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	rtmetrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// The 1 MiB label values: 203 spans whose namespace is 1 MiB, against a
// rule grouping by namespace, keep the heap small, reach Alertmanager
// truncated with the marker, and the alerts keep firing there.
func TestHugeNamespacesStayBounded(t *testing.T) {
	am := amtest.Start(t)
	const rules = `
groups:
  - name: huge
    interval: 1s
    rules:
      - alert: PodsLatencyByNamespace
        matchers: ['service.name="apiserver"', 'resource="pods"']
        group_by: [namespace]
        objective: {quantile: 0.5, threshold: 1s}
        window: 10m
        labels: {severity: page}
        annotations:
          summary: "pods in {{ $labels.namespace }} are slow"
`
	d := startSentinel(t, rules, am.URL)
	const groups = 203
	filler := strings.Repeat("n", 1<<20)
	send := func(round uint64) {
		for first := 0; first < groups; first += 5 {
			var targets []string
			for i := first; i < min(first+5, groups); i++ {
				targets = append(targets, fmt.Sprintf("/api/v1/namespaces/ns-%03d-%s/pods", i, filler))
			}
			if code := postOTLP(t, d, serverSpans(targets, 3*time.Second, round)); code != http.StatusOK {
				t.Fatalf("export: status %d", code)
			}
		}
	}
	runtime.GC()
	before := liveHeap()
	start := time.Now()
	send(1)
	t.Logf("round 1 sent in %v", time.Since(start))
	runtime.GC()
	if grown := liveHeap() - before; grown > 64<<20 {
		t.Errorf("after %d spans with 1 MiB namespaces the live heap grew by %d MB", groups, grown>>20)
	}

	check := func(what string) {
		got := testkit.WaitFor(t, what, 60*time.Second, func() ([]string, bool) {
			var firing []string
			for _, a := range amAlerts(t, am) {
				if a.Labels["alertname"] == "PodsLatencyByNamespace" && time.Time(*a.EndsAt).After(time.Now()) {
					firing = append(firing, a.Labels["namespace"])
				}
			}
			if len(firing) != groups {
				t.Logf("%s: %d firing", what, len(firing))
			}
			return firing, len(firing) == groups
		})
		for _, ns := range got {
			if len(ns) > engine.DefaultMaxLabelValueBytes || !strings.HasSuffix(ns, "…[truncated]") || !strings.HasPrefix(ns, "ns-") {
				t.Fatalf("namespace label of %d bytes ending %q, want at most %d ending with the marker",
					len(ns), ns[max(0, len(ns)-16):], engine.DefaultMaxLabelValueBytes)
			}
		}
	}
	check("all groups firing in Alertmanager")
	// Still firing after resends: the first posts' endsAt (8s after them)
	// has passed, so the resends got through.
	time.Sleep(10 * time.Second)
	check("all groups still firing")
	if q := d.am.QueueLength(); q > groups {
		t.Errorf("notification queue holds %d alerts", q)
	}
}

// stall opens a connection to the OTLP/HTTP port, sends a request's
// headers declaring contentLength bytes and part of the body, then nothing.
func stall(t *testing.T, d *daemon, contentLength int, part []byte) {
	t.Helper()
	addr := d.receiver.HTTPAddr().String()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /v1/traces HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-protobuf\r\nContent-Length: %d\r\n\r\n", addr, contentLength)
	conn.Write(part)
}

// startSentinelOTLP runs a daemon with e2eRules, no Alertmanager, and
// the given otlp section.
func startSentinelOTLP(t *testing.T, otlpSection string) *daemon {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(e2eRules), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "sentinel.yaml")
	cfgText := fmt.Sprintf("rule_files: [rules.yaml]\nstorage: {path: %q}\n", filepath.Join(dir, "data")) + otlpSection
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, daemonOptions{Config: cfg, ConfigFile: cfgFile, WebAddress: "127.0.0.1:0"})
	testkit.WaitFor(t, "the daemon to be ready", 10*time.Second, func() (bool, bool) { return true, d.ready.Load() })
	return d
}

func ready(t *testing.T, d *daemon) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + d.webLn.Addr().String() + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// The 8 idle connections: idle and stalled clients do not blind sentinel
// (a real exporter's spans are accepted while they hold their
// connections), and when stalled clients do hold everything there is to
// hold, /-/ready says so until they are cut off at the body deadline.
func TestStalledClientsAndReadiness(t *testing.T) {
	t.Run("idle connections do not blind", func(t *testing.T) {
		d := startSentinel(t, e2eRules)
		body := serverSpans([]string{"/api/v1/namespaces/default/pods"}, time.Second, 1)
		for range 16 {
			stall(t, d, len(body), nil)
		}
		for range 8 {
			stall(t, d, len(body), body[:len(body)/2])
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(d.receiver.HTTPAddr().String()), otlptracehttp.WithInsecure(),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "apiserver"))))
		_, s := tp.Tracer("k8s.io/apiserver").Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.method", "GET"), attribute.String("http.target", "/api/v1/namespaces/default")))
		s.End()
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatalf("the exporter's spans were refused while 24 clients stalled: %v", err)
		}
		if code, body := ready(t, d); code != http.StatusOK {
			t.Errorf("/-/ready %d %q while accepting spans", code, body)
		}
	})

	t.Run("ready is honest when everything is refused", func(t *testing.T) {
		// Stalled bodies declaring 64 KiB each (with the read that finds
		// their end) hold the whole 1 MiB budget:
		// every export is refused (429) until the 10s body deadline — long
		// enough for refusing_after to pass and the check to see it on a
		// loaded machine (with 3s, a CI run under -race once missed it).
		d := startSentinelOTLP(t, `
otlp:
  grpc: {listen_address: "127.0.0.1:0"}
  http: {listen_address: "127.0.0.1:0", read_timeout: 10s}
  limits: {memory_budget_bytes: 1048576, refusing_after: 500ms}
`)
		for range 16 {
			stall(t, d, 64<<10-bytes.MinRead, nil)
		}
		// Exports start once the stalled bodies hold the budget: one
		// sent while they still arrive could take the room of the last.
		testkit.WaitFor(t, "the stalled bodies to hold the budget", 20*time.Second, func() (float64, bool) {
			held := gaugeValue(t, d, "sentinel_otlp_memory_in_flight_bytes")
			return held, held == 1<<20
		})
		good := serverSpans([]string{"/api/v1/namespaces/default/pods"}, time.Second, 2)
		reason := testkit.WaitFor(t, "/-/ready to answer 503", 20*time.Second, func() (string, bool) {
			if code := postOTLP(t, d, good); code != http.StatusTooManyRequests {
				return "", false
			}
			code, body := ready(t, d)
			return body, code == http.StatusServiceUnavailable
		})
		if !strings.Contains(reason, "refused every export request") {
			t.Errorf("/-/ready body %q does not say why", reason)
		}
		testkit.WaitFor(t, "exports accepted and ready again once the stalled clients are cut off", 30*time.Second, func() (int, bool) {
			if postOTLP(t, d, good) != http.StatusOK {
				return 0, false
			}
			code, _ := ready(t, d)
			return code, code == http.StatusOK
		})
	})
}

// gaugeValue is the value of the unlabelled gauge name (0 when absent).
func gaugeValue(t *testing.T, d *daemon, name string) float64 {
	t.Helper()
	mfs, err := d.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}
