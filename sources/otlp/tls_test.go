package otlp

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"github.com/kube-sentinel/sentinel/internal/testcerts"
	"github.com/kube-sentinel/sentinel/internal/testkit"
	"github.com/kube-sentinel/sentinel/internal/tlsreload"
)

// refusedHandshakes sums sentinel_tls_handshakes_refused_total of a listener.
func refusedHandshakes(t *testing.T, reg *prometheus.Registry, listener string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "sentinel_tls_handshakes_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "listener" && l.GetValue() == listener {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// TestMutualTLS runs both transports with otlp.*.tls and a client CA: the
// OpenTelemetry SDK's exporters holding a certificate of that CA export;
// a sender with no certificate, with one of another CA, or in plain text
// cannot, and its spans reach no rule. Refused handshakes are counted.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, attackerCA := testcerts.NewCA(t, "sentinel-otlp-ca"), testcerts.NewCA(t, "attacker-ca")
	files := ca.Server(t, "sentinel").WriteFiles(t, dir, "server", ca)
	reg := prometheus.NewRegistry()
	tlsMetrics, err := tlsreload.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	tlsFor := func(listener string) *tls.Config {
		r, err := tlsreload.New(tlsreload.Files{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.CA},
			tlsreload.Options{Listener: listener, Metrics: tlsMetrics})
		if err != nil {
			t.Fatal(err)
		}
		return r.TLSConfig()
	}
	o := &recordingObserver{names: []string{"service.name"}}
	r := startReceiver(t, Options{Observer: o, GRPCTLS: tlsFor("otlp_grpc"), HTTPTLS: tlsFor("otlp_http")})

	collector := testcerts.ClientTLS(ca, ca.Client(t, "otel-collector"))
	noCert := testcerts.ClientTLS(ca, nil)
	otherCA := testcerts.ClientTLS(ca, attackerCA.Client(t, "attacker"))
	type newExporter func(ctx context.Context) (sdktrace.SpanExporter, error)
	grpcWith := func(c *tls.Config) newExporter {
		return func(ctx context.Context) (sdktrace.SpanExporter, error) {
			opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(r.GRPCAddr().String()),
				otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}), otlptracegrpc.WithTimeout(10 * time.Second)}
			if c == nil {
				opts = append(opts, otlptracegrpc.WithInsecure())
			} else {
				opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(c)))
			}
			return otlptracegrpc.New(ctx, opts...)
		}
	}
	httpWith := func(c *tls.Config) newExporter {
		return func(ctx context.Context) (sdktrace.SpanExporter, error) {
			opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(r.HTTPAddr().String()),
				otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}), otlptracehttp.WithTimeout(10 * time.Second)}
			if c == nil {
				opts = append(opts, otlptracehttp.WithInsecure())
			} else {
				opts = append(opts, otlptracehttp.WithTLSClientConfig(c))
			}
			return otlptracehttp.New(ctx, opts...)
		}
	}
	cases := []struct {
		name     string
		exporter newExporter
		listener string
		admitted bool
		counted  bool // a refused handshake is counted
	}{
		{"grpc, collector's certificate", grpcWith(collector), "otlp_grpc", true, false},
		{"http, collector's certificate", httpWith(collector), "otlp_http", true, false},
		{"grpc, no certificate", grpcWith(noCert), "otlp_grpc", false, true},
		{"http, no certificate", httpWith(noCert), "otlp_http", false, true},
		{"grpc, another CA's certificate", grpcWith(otherCA), "otlp_grpc", false, true},
		{"http, another CA's certificate", httpWith(otherCA), "otlp_http", false, true},
		{"grpc, plain text", grpcWith(nil), "otlp_grpc", false, false},
		{"http, plain text", httpWith(nil), "otlp_http", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			exp, err := tc.exporter(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer exp.Shutdown(ctx)
			tp := sdktrace.NewTracerProvider(sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "apiserver"))))
			// A burst of fast matching spans, as a flood that would mask a
			// slow apiserver.
			var spans []sdktrace.ReadOnlySpan
			for range 100 {
				_, s := tp.Tracer("flood").Start(ctx, "GET /api/v1/namespaces/{:name}", trace.WithSpanKind(trace.SpanKindServer),
					trace.WithAttributes(attribute.String("http.method", "GET"), attribute.String("http.target", "/api/v1/namespaces/default")))
				s.End()
				spans = append(spans, s.(sdktrace.ReadOnlySpan))
			}
			seenBefore, refusedBefore := len(o.all()), refusedHandshakes(t, reg, tc.listener)
			err = exp.ExportSpans(ctx, spans)
			seen := len(o.all()) - seenBefore
			refused := refusedHandshakes(t, reg, tc.listener) - refusedBefore
			if tc.admitted {
				if err != nil || seen != len(spans) {
					t.Fatalf("export: %v; %d of %d spans observed", err, seen, len(spans))
				}
				if refused != 0 {
					t.Errorf("%v handshakes refused", refused)
				}
				return
			}
			if err == nil || seen != 0 {
				t.Fatalf("export admitted (err %v), %d spans observed", err, seen)
			}
			if tc.counted && refused < 1 {
				t.Errorf("the refused handshake was not counted")
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestHandshakeFloodLogIsBounded: every failed handshake is a line of the
// HTTP server's error log, written as fast as a client can fail them; the
// log passes a steady rate and counts what it drops.
func TestHandshakeFloodLogIsBounded(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "sentinel-otlp-ca")
	files := ca.Server(t, "sentinel").WriteFiles(t, dir, "server", ca)
	reloader, err := tlsreload.New(tlsreload.Files{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.CA},
		tlsreload.Options{Listener: "otlp_http"})
	if err != nil {
		t.Fatal(err)
	}
	var log testkit.SyncBuffer
	r, reg := newTestReceiver(t, Options{HTTPAddress: "127.0.0.1:0", HTTPTLS: reloader.TLSConfig(),
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Shutdown(ctx)
	})
	const attempts = 200
	noCert := testcerts.ClientTLS(ca, nil)
	for range attempts {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", r.HTTPAddr().String(), noCert)
		if err == nil {
			// TLS 1.3: the server refuses the missing certificate after the
			// client's side of the handshake; a read sees the alert.
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = conn.Read(make([]byte, 1))
			_ = conn.Close()
		}
	}
	dropped := func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "sentinel_otlp_error_log_lines_dropped_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	lines := testkit.WaitFor(t, "the failed handshakes to be logged or counted", 10*time.Second, func() (int, bool) {
		n := strings.Count(log.String(), "TLS handshake error")
		return n, float64(n)+dropped() >= attempts
	})
	// The burst is 10 and the rate 1/s: however long the flood took, far
	// fewer lines than handshakes.
	if lines >= attempts/2 {
		t.Errorf("%d log lines for %d failed handshakes: the error log is not bounded", lines, attempts)
	}
	if dropped() == 0 {
		t.Error("no dropped log line counted")
	}
}
