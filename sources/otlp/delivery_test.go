package otlp

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/status"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// spanCounter counts observations by span ID, and holds the span named
// "block" until released (when block is set).
type spanCounter struct {
	mu      sync.Mutex
	seen    map[[8]byte]int
	names   map[string]int
	entered chan struct{}
	release chan struct{}
}

func newSpanCounter(block bool) *spanCounter {
	c := &spanCounter{seen: map[[8]byte]int{}, names: map[string]int{}}
	if block {
		c.entered, c.release = make(chan struct{}), make(chan struct{})
	}
	return c
}

func (c *spanCounter) Observe(obs *engine.Observation) {
	name, _ := obs.Labels.Get("span.name")
	if name == "block" && c.entered != nil {
		close(c.entered)
		<-c.release
	}
	c.mu.Lock()
	c.seen[obs.SpanID]++
	c.names[name]++
	c.mu.Unlock()
}

func (c *spanCounter) count(id [8]byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[id]
}

func (c *spanCounter) named(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.names[name]
}

// uniqueSpans is a request of n spans whose span IDs start with the
// request's number.
func uniqueSpans(req, n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "apiserver")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range n {
		sp := spans.AppendEmpty()
		var tid pcommon.TraceID
		var sid pcommon.SpanID
		binary.BigEndian.PutUint32(tid[:], uint32(req)+1)
		binary.BigEndian.PutUint32(sid[:4], uint32(req)+1)
		binary.BigEndian.PutUint32(sid[4:], uint32(i))
		sp.SetTraceID(tid)
		sp.SetSpanID(sid)
		sp.SetName("GET /api/v1/namespaces/{:name}")
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.Timestamp(1748779200000000000 + i))
		sp.SetEndTimestamp(pcommon.Timestamp(1748779200100000000 + i))
	}
	return td
}

// Every span of a request answered 200 (or gRPC OK) is observed exactly
// once, and no span of a refused one is, with senders on both transports
// competing for the receiver's one request slot: for the first half of
// their requests it is held (all are refused), then it is free.
func TestSpanAnswered200ObservedOnce(t *testing.T) {
	o := newSpanCounter(true)
	r := startReceiver(t, Options{Observer: o, MaxConcurrentRequests: 1, Limits: Limits{MaxQueueWait: shortQueueWait}})
	client := ptraceotlp.NewGRPCClient(dial(t, r))
	url := "http://" + r.HTTPAddr().String() + TracesPath
	blocking := uniqueSpans(1<<20, 1)
	blocking.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetName("block")
	blocked := make(chan int, 1)
	go func() {
		blocked <- post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", marshalTraces(t, blocking, false)).Code
	}()
	<-o.entered
	const senders, requests, spans = 6, 20, 8
	ok := make([]bool, senders*requests)
	phase := func(from, to int) {
		var wg sync.WaitGroup
		for s := range senders {
			wg.Go(func() {
				for i := from; i < to; i++ {
					n := s*requests + i
					td := uniqueSpans(n, spans)
					if s%2 == 0 {
						resp, err := http.Post(url, protobufContentType, bytes.NewReader(marshalTraces(t, td, false)))
						if err != nil {
							t.Error(err)
							return
						}
						resp.Body.Close()
						ok[n] = resp.StatusCode == http.StatusOK
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
					cancel()
					ok[n] = err == nil
				}
			})
		}
		wg.Wait()
	}
	phase(0, requests/2)
	close(o.release)
	if code := <-blocked; code != http.StatusOK {
		t.Fatalf("the blocking request: status %d", code)
	}
	phase(requests/2, requests)
	accepted := 0
	for n := range ok {
		want := 0
		if ok[n] {
			want = 1
			accepted++
		}
		for i := range spans {
			var sid [8]byte
			binary.BigEndian.PutUint32(sid[:4], uint32(n)+1)
			binary.BigEndian.PutUint32(sid[4:], uint32(i))
			if got := o.count(sid); got != want {
				t.Fatalf("request %d (accepted %v): span %d observed %d times, want %d", n, ok[n], i, got, want)
			}
		}
	}
	if accepted == 0 || accepted == len(ok) {
		t.Fatalf("%d of %d requests accepted: want both outcomes", accepted, len(ok))
	}
	t.Logf("%d of %d requests accepted", accepted, len(ok))
}

// The OpenTelemetry Go SDK's exporters retry what an overloaded receiver
// refuses (HTTP 429 with Retry-After, gRPC RESOURCE_EXHAUSTED with
// RetryInfo): once the load falls back below capacity, no span is lost.
func TestSDKRetriesOverloadNoSpanLost(t *testing.T) {
	for _, transport := range []string{"http", "grpc"} {
		t.Run(transport, func(t *testing.T) {
			o := newSpanCounter(true)
			r := startReceiver(t, Options{Observer: o, MaxConcurrentRequests: 1, Limits: Limits{MaxQueueWait: shortQueueWait}})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			retry := func() (sdktrace.SpanExporter, error) {
				if transport == "http" {
					return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(r.HTTPAddr().String()), otlptracehttp.WithInsecure(),
						otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: true, InitialInterval: 100 * time.Millisecond,
							MaxInterval: time.Second, MaxElapsedTime: time.Minute}))
				}
				return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(r.GRPCAddr().String()), otlptracegrpc.WithInsecure(),
					otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 100 * time.Millisecond,
						MaxInterval: time.Second, MaxElapsedTime: time.Minute}))
			}
			send := func(exp sdktrace.SpanExporter, name string, n int) chan error {
				done := make(chan error, 1)
				go func() {
					tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
					tr := tp.Tracer("test")
					start := time.Now()
					for range n {
						_, sp := tr.Start(ctx, name, trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindServer))
						sp.End(trace.WithTimestamp(start.Add(time.Millisecond)))
					}
					done <- tp.Shutdown(ctx)
				}()
				return done
			}
			blocker, err := retry()
			if err != nil {
				t.Fatal(err)
			}
			blocked := send(blocker, "block", 1)
			<-o.entered // the one request slot is held: the receiver is over capacity
			exp, err := retry()
			if err != nil {
				t.Fatal(err)
			}
			sent := send(exp, "retried", 20)
			refused := r.metrics.refused.WithLabelValues(transport, reasonOverloaded)
			testkit.WaitFor(t, "a refusal for overload", 30*time.Second, func() (bool, bool) {
				return true, testutil.ToFloat64(refused) > 0
			})
			close(o.release) // the load falls back below capacity
			for _, done := range []chan error{blocked, sent} {
				if err := <-done; err != nil {
					t.Fatalf("exporter: %v (%v)", err, status.Convert(err))
				}
			}
			if got := o.named("retried"); got != 20 {
				t.Errorf("observed %d of the 20 spans sent through the overload", got)
			}
		})
	}
}
