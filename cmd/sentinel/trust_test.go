package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kube-sentinel/sentinel/internal/testcerts"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// counterSum sums a counter family of reg over the series whose labels
// include want.
func counterSum(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// fastSpans is an OTLP request of n fast apiserver namespaces GETs ending
// now: what an attacker floods with to pull a p99 under its threshold.
func fastSpans(t *testing.T, n int) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "apiserver")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	end := time.Now()
	for i := range n {
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[8:], uint64(i+1))
		tid[0] = 0xad
		s := spans.AppendEmpty()
		s.SetTraceID(tid)
		s.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
		s.SetKind(ptrace.SpanKindServer)
		s.SetName("GET /api/v1/namespaces/{:name}")
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-time.Millisecond)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		s.Attributes().PutStr("http.method", "GET")
		s.Attributes().PutStr("http.target", "/api/v1/namespaces/default")
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// flooder is one attacker: it sends OTLP requests over one transport
// with one client TLS config (nil: plain text).
type flooder struct {
	name  string
	grpc  bool
	tls   *tls.Config
	spans int // admitted spans, counted by the server's reply
	tries int
}

func (f *flooder) flood(t *testing.T, d *daemon, requests int, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conn *grpc.ClientConn
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: f.tls}}
	defer client.CloseIdleConnections()
	if f.grpc {
		creds := insecure.NewCredentials()
		if f.tls != nil {
			creds = credentials.NewTLS(f.tls)
		}
		var err error
		if conn, err = grpc.NewClient(d.receiver.GRPCAddr().String(), grpc.WithTransportCredentials(creds)); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
	}
	scheme := "http"
	if f.tls != nil {
		scheme = "https"
	}
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		t.Fatal(err)
	}
	n := req.Traces().SpanCount()
	for range requests {
		f.tries++
		if f.grpc {
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := ptraceotlp.NewGRPCClient(conn).Export(rctx, req)
			rcancel()
			if err == nil {
				f.spans += n
			}
			continue
		}
		resp, err := client.Post(scheme+"://"+d.receiver.HTTPAddr().String()+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			f.spans += n
		}
	}
}

// collectorSender is the legitimate sender: the OpenTelemetry SDK's
// exporters over both transports, with the Collector's client certificate
// (or none, tls nil), sending slow namespaces GETs until stopped.
func collectorSender(t *testing.T, d *daemon, c *tls.Config) (stop func()) {
	t.Helper()
	ctx := context.Background()
	grpcOpts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(d.receiver.GRPCAddr().String())}
	httpOpts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(d.receiver.HTTPAddr().String())}
	if c == nil {
		grpcOpts, httpOpts = append(grpcOpts, otlptracegrpc.WithInsecure()), append(httpOpts, otlptracehttp.WithInsecure())
	} else {
		grpcOpts = append(grpcOpts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(c)))
		httpOpts = append(httpOpts, otlptracehttp.WithTLSClientConfig(c))
	}
	ge, err := otlptracegrpc.New(ctx, grpcOpts...)
	if err != nil {
		t.Fatal(err)
	}
	he, err := otlptracehttp.New(ctx, httpOpts...)
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "apiserver"))
	var providers []*sdktrace.TracerProvider
	for _, e := range []sdktrace.SpanExporter{ge, he} {
		providers = append(providers, sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(e)))
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			end := time.Now()
			_, s := providers[i%2].Tracer("k8s.io/apiserver").Start(ctx, "GET /api/v1/namespaces/{:name}",
				trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(end.Add(-2*time.Second)),
				trace.WithAttributes(attribute.String("http.method", "GET"), attribute.String("http.target", "/api/v1/namespaces/default")))
			s.End(trace.WithTimestamp(end))
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(done)
			<-stopped
			for _, p := range providers {
				p.Shutdown(context.Background())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// ruleState is the e2e rule's state once an evaluation later than after
// has run.
func ruleState(t *testing.T, d *daemon, after time.Time) string {
	t.Helper()
	return testkit.WaitFor(t, "an evaluation after "+after.Format(time.RFC3339Nano), 20*time.Second, func() (string, bool) {
		for _, g := range d.engine.Status() {
			for _, r := range g.Rules {
				if r.Name == "NamespacesGETLatency" && r.LastEvaluation.After(after) {
					return r.State.String(), true
				}
			}
		}
		return "", false
	})
}

// TestMaskingFloodMutualTLS is the finding "anyone can hide a page": a
// genuinely firing latency alert, and a flood of fast matching spans. In
// plain text the flood resolves the alert; with otlp.*.tls and a client CA
// (the shipped default) the flooders, without a certificate or with one of
// another CA, over either transport, cannot connect: their handshakes are
// refused and counted, not one of their spans is observed, and the alert
// stays firing, while the Collector's SDK exporters with their client
// certificate go on exporting.
func TestMaskingFloodMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	cases := []struct {
		name       string
		mtls       bool
		wantFiring bool
	}{
		{"plain text: the flood hides the page", false, false},
		{"mutual TLS: the flood cannot connect", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ca, attackerCA := testcerts.NewCA(t, "sentinel-otlp-ca"), testcerts.NewCA(t, "attacker-ca")
			files := ca.Server(t, "sentinel").WriteFiles(t, dir, "server", ca)
			extra := ""
			var collector *tls.Config
			flooders := []*flooder{{name: "http plain text"}, {name: "grpc plain text", grpc: true}}
			if tc.mtls {
				tlsYAML := fmt.Sprintf("{cert_file: %q, key_file: %q, client_ca_file: %q}", files.Cert, files.Key, files.CA)
				extra = fmt.Sprintf("otlp: {grpc: {listen_address: \"127.0.0.1:0\", tls: %s}, http: {listen_address: \"127.0.0.1:0\", tls: %s}}\n", tlsYAML, tlsYAML)
				collector = testcerts.ClientTLS(ca, ca.Client(t, "otel-collector"))
				noCert, otherCA := testcerts.ClientTLS(ca, nil), testcerts.ClientTLS(ca, attackerCA.Client(t, "attacker"))
				flooders = []*flooder{
					{name: "http without a certificate", tls: noCert}, {name: "grpc without a certificate", grpc: true, tls: noCert},
					{name: "http with another CA's certificate", tls: otherCA}, {name: "grpc with another CA's certificate", grpc: true, tls: otherCA},
					{name: "http plain text"}, {name: "grpc plain text", grpc: true},
				}
			}
			d := startSentinelWith(t, e2eRules, extra)
			stop := collectorSender(t, d, collector)
			defer stop()
			testkit.WaitFor(t, "the alert to fire", 30*time.Second, func() (bool, bool) {
				return true, ruleState(t, d, time.Time{}) == "firing"
			})

			refusedBefore := counterSum(t, d.registry, "sentinel_tls_handshakes_refused_total", nil)
			body := fastSpans(t, 2000)
			for _, f := range flooders {
				f.flood(t, d, 10, body)
			}
			floodEnd := time.Now()
			state := ruleState(t, d, floodEnd.Add(time.Second))
			if firing := state == "firing"; firing != tc.wantFiring {
				t.Fatalf("after the flood the alert is %s", state)
			}
			if !tc.mtls {
				return
			}
			attempts := 0
			for _, f := range flooders {
				if f.spans != 0 {
					t.Errorf("%s: %d spans admitted", f.name, f.spans)
				}
				if f.tls != nil {
					attempts++
				}
			}
			// The gRPC client redials once per RPC at most, the HTTP one
			// once per request: each refused certificate-less or foreign
			// attempt is at least one refused handshake.
			if refused := counterSum(t, d.registry, "sentinel_tls_handshakes_refused_total", nil) - refusedBefore; refused < float64(attempts) {
				t.Errorf("%v refused handshakes counted for %d attackers' attempts", refused, attempts)
			}
			// The Collector still exports.
			seen := counterSum(t, d.registry, "sentinel_spans_received_total", nil)
			testkit.WaitFor(t, "the Collector's next spans", 20*time.Second, func() (bool, bool) {
				return true, counterSum(t, d.registry, "sentinel_spans_received_total", nil) > seen
			})
		})
	}
}

// TestOTLPCertRotation: replacing the OTLP server certificate files on
// disk (as cert-manager renewing a Secret does) changes what new
// handshakes see, on both transports, without a restart or reload.
func TestOTLPCertRotation(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	files := ca.Server(t, "first").WriteFiles(t, dir, "server", ca)
	tlsYAML := fmt.Sprintf("{cert_file: %q, key_file: %q}", files.Cert, files.Key)
	d := startSentinelWith(t, e2eRules, fmt.Sprintf("otlp: {grpc: {listen_address: \"127.0.0.1:0\", tls: %s}, http: {listen_address: \"127.0.0.1:0\", tls: %s}}\n", tlsYAML, tlsYAML))
	served := func(addr string) string {
		t.Helper()
		c := testcerts.ClientTLS(ca, nil)
		c.NextProtos = []string{"h2"}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, c)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	addrs := map[string]string{"grpc": d.receiver.GRPCAddr().String(), "http": d.receiver.HTTPAddr().String()}
	for name, addr := range addrs {
		if got := served(addr); got != "first" {
			t.Fatalf("%s serves %q", name, got)
		}
	}
	next := ca.Server(t, "renewed")
	testcerts.WriteFile(t, files.Key, next.KeyPEM)
	testcerts.WriteFile(t, files.Cert, next.CertPEM)
	for name, addr := range addrs {
		if got := served(addr); got != "renewed" {
			t.Errorf("%s serves %q after the files changed", name, got)
		}
	}
	if got := counterSum(t, d.registry, "sentinel_tls_certificate_reloads_total", map[string]string{"result": "success"}); got != 2 {
		t.Errorf("%v successful reloads, want one per listener", got)
	}
}
