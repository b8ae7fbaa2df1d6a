package otlp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kube-sentinel/sentinel/internal/testkit"
	"github.com/kube-sentinel/sentinel/sources/otlp/otlpwire"
)

// stalledClient opens a connection, sends a request's headers and the
// first part bytes of its body, and then nothing.
func stalledClient(t *testing.T, addr string, contentLength int, part []byte) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		TracesPath, addr, protobufContentType, contentLength)
	if _, err := conn.Write(part); err != nil {
		t.Fatal(err)
	}
	return conn
}

// sdkExport sends spans with the OpenTelemetry Go SDK's OTLP/HTTP
// exporter, without retries: today's answer is the one that counts.
func sdkExport(t *testing.T, r *Receiver, spans int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(r.HTTPAddr().String()), otlptracehttp.WithInsecure(),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "apiserver"))))
	tracer := tp.Tracer("k8s.io/apiserver")
	for range spans {
		_, s := tracer.Start(ctx, "GET /api/v1/namespaces/{:name}", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.method", "GET"), attribute.String("http.target", "/api/v1/namespaces/default")))
		s.End()
	}
	if err := tp.ForceFlush(ctx); err != nil {
		return err
	}
	return tp.Shutdown(ctx)
}

// Idle connections that send headers and then nothing, and connections
// that send part of a body and stall, neither hold a request slot nor
// blind the receiver: a real exporter's spans are accepted meanwhile, the
// stalled clients are cut off at the body deadline, and the receiver
// stays ready.
func TestStalledClientsDoNotBlind(t *testing.T) {
	o := &countingObserver{names: benchLabelNames}
	r := startReceiver(t, Options{Observer: o, Limits: Limits{ReadTimeout: time.Second}})
	addr := r.HTTPAddr().String()
	body := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(41, 42)), 8), false)

	slots := cap(r.inFlight)
	var stalled []net.Conn
	for range 2 * slots {
		stalled = append(stalled, stalledClient(t, addr, len(body), nil)) // headers only
	}
	for range slots {
		stalled = append(stalled, stalledClient(t, addr, len(body), body[:len(body)/2]))
	}

	if err := sdkExport(t, r, 10); err != nil {
		t.Fatalf("the SDK exporter's spans were refused while %d clients stalled: %v", len(stalled), err)
	}
	if got := o.n.Load(); got != 10 {
		t.Errorf("observed %d spans, want 10", got)
	}
	if err := r.Ready(); err != nil {
		t.Errorf("not ready while accepting: %v", err)
	}

	// Every stalled client is answered 408 and disconnected at its body
	// deadline, and the memory it held is free again.
	for i, conn := range stalled {
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := io.ReadAll(conn)
		if err != nil {
			t.Fatalf("stalled client %d: %v", i, err)
		}
		if !bytes.HasPrefix(resp, []byte("HTTP/1.1 408")) {
			t.Errorf("stalled client %d got %.40q, want a 408", i, resp)
		}
	}
	testkit.WaitFor(t, "the stalled bodies' memory to be released", 20*time.Second, func() (bool, bool) { return true, r.budget.inUse.Load() == 0 })
	if got := testutil.ToFloat64(r.metrics.refused.WithLabelValues("http", reasonBodyTimeout)); got != float64(len(stalled)) {
		t.Errorf("refused{http,%s} = %v, want %d", reasonBodyTimeout, got, len(stalled))
	}
}

// When every export request is refused for a while, Ready says so, and so
// do the sentinel_otlp_refusing gauge and a log line; an accepted request
// makes it ready again.
func TestReadyWhenRefusingEverything(t *testing.T) {
	var logs testkit.SyncBuffer
	o := &blockingObserver{entered: make(chan struct{}), release: make(chan struct{})}
	r := startReceiver(t, Options{Observer: o, MaxConcurrentRequests: 1,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Limits: Limits{RefusingAfter: 300 * time.Millisecond, MaxQueueWait: shortQueueWait}})
	blocking := apiserverTraces(rand.New(rand.NewPCG(43, 44)), 4)
	blocking.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetName("block")
	good := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(45, 46)), 4), false)
	url := "http://" + r.HTTPAddr().String() + TracesPath

	done := make(chan int, 1)
	go func() {
		done <- post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", marshalTraces(t, blocking, false)).Code
	}()
	<-o.entered
	if err := r.Ready(); err != nil {
		t.Fatalf("not ready before any refusal: %v", err)
	}
	testkit.WaitFor(t, "Ready to report the refusals", 20*time.Second, func() (bool, bool) {
		resp, err := http.Post(url, protobufContentType, bytes.NewReader(good))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("status %d while saturated, want 429", resp.StatusCode)
		}
		return true, r.Ready() != nil
	})
	if err := r.Ready(); !strings.Contains(err.Error(), "refused every export request") {
		t.Errorf("Ready: %v", err)
	}
	if got := testutil.ToFloat64(r.metrics.bounds[2]); got != 1 {
		t.Errorf("sentinel_otlp_refusing = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "OTLP ingestion is refusing every export request") {
		t.Errorf("no log line says so:\n%s", logs.String())
	}

	close(o.release)
	<-done
	if code := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", good).Code; code != http.StatusOK {
		t.Fatalf("status %d after the overload, want 200", code)
	}
	if err := r.Ready(); err != nil {
		t.Errorf("still not ready after accepting: %v", err)
	}
	if got := testutil.ToFloat64(r.metrics.bounds[2]); got != 0 {
		t.Errorf("sentinel_otlp_refusing = %v, want 0", got)
	}
	if !strings.Contains(logs.String(), "OTLP ingestion accepts export requests again") {
		t.Errorf("no log line says it recovered:\n%s", logs.String())
	}
}

// emptyAttributeSpans is the attribute bomb: spans with perSpan empty
// attributes each (two bytes on the wire, a couple of hundred decoded),
// about size bytes in all.
func emptyAttributeSpans(size, perSpan int) []byte {
	return emptyAttributeSpansWith(size, perSpan, nil)
}

// emptyAttributeSpansWith is emptyAttributeSpans whose first span starts
// with the given fields.
func emptyAttributeSpansWith(size, perSpan int, first []byte) []byte {
	span := []byte{}
	for range perSpan {
		span = append(span, 0x4a, 0x00)
	}
	scope := []byte{}
	if first != nil {
		scope = protowire.AppendTag(scope, 2, protowire.BytesType)
		scope = protowire.AppendBytes(scope, append(first, span...))
	}
	for len(scope) < size {
		scope = protowire.AppendTag(scope, 2, protowire.BytesType) // ScopeSpans.spans
		scope = protowire.AppendBytes(scope, span)
	}
	rs := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), scope)
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), rs)
}

// heapAllocated is the process's own count of heap bytes allocated so far.
func heapAllocated() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

// heapLive is the process's own count of bytes in live heap objects.
func heapLive() uint64 {
	s := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

// The attribute bomb: about 8 MB of empty attributes on one span, which
// pdata would decode into some 900 MB, is refused before decoding, over
// HTTP and gRPC, and costs little more than its own bytes.
func TestAttributeBombRefusedBeforeDecoding(t *testing.T) {
	o := &countingObserver{}
	r := startReceiver(t, Options{Observer: o, MaxRequestBytes: 16 << 20})
	bomb := emptyAttributeSpans(8<<20, 4<<20) // one span, 4 M attributes
	spread := emptyAttributeSpans(8<<20, 128) // 32 k spans at the attribute limit
	tests := []struct {
		name   string
		body   []byte
		reason string
	}{
		{"4 M attributes on one span", bomb, otlpwire.ReasonTooManyAttributes},
		{"attributes spread over spans", spread, reasonTooCostly},
	}
	for _, tc := range tests {
		t.Run(tc.name+" over HTTP", func(t *testing.T) {
			runtime.GC()
			before := heapAllocated()
			rec := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", tc.body)
			allocated := heapAllocated() - before
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", rec.Code)
			}
			if _, reason := decodeStatus(t, rec); reason != tc.reason {
				t.Errorf("reason %q, want %q", reason, tc.reason)
			}
			// The body is read into a buffer (twice its size at worst, as it
			// grows); nothing is decoded.
			if allocated > 48<<20 {
				t.Errorf("handling a %d-byte request allocated %d MB", len(tc.body), allocated>>20)
			}
		})
		t.Run(tc.name+" over gRPC", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			runtime.GC()
			before := heapAllocated()
			in := tc.body
			err := dial(t, r).Invoke(ctx, exportFullMethod, &in, new([]byte), grpc.ForceCodecV2(bytesCodec{}),
				grpc.MaxCallSendMsgSize(32<<20))
			allocated := heapAllocated() - before
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument || errorInfoReason(st) != tc.reason {
				t.Fatalf("gRPC: %v, want InvalidArgument %s", err, tc.reason)
			}
			// The client's copy, gRPC's buffers and the server's copy.
			if allocated > 64<<20 {
				t.Errorf("handling a %d-byte request allocated %d MB", len(tc.body), allocated>>20)
			}
		})
	}
	if got := o.n.Load(); got != 0 {
		t.Errorf("observed %d spans of refused requests", got)
	}
}

// Concurrent senders of requests that each fit the limits while one is
// held in the observer (15 more arrive), on each encoding. OTLP/JSON is
// decoded with pdata, whose estimate a request holds: the others are
// refused with 429 and Retry-After instead of growing the heap. Protobuf
// is decoded into views of the body, which is all a request holds: the
// same requests are all accepted, and the heap stays as bounded — were
// they decoded as pdata does, it would grow by half a gigabyte.
func TestConcurrentSendersStayWithinBudget(t *testing.T) {
	const budget = 64 << 20
	body := emptyAttributeSpans(300<<10, 128) // ~1,150 spans, ~33 MB decoded
	st, err := otlpwire.Scan(body, otlpwire.Limits{})
	if err != nil || st.DecodedBytes > budget || 2*st.DecodedBytes < budget {
		t.Fatalf("the request should fit the budget once, not twice: %+v %v", st, err)
	}
	// The same request, its first span named "block": the observer holds it.
	// Span name (5), start (7) and end (8): a span without times is not observed.
	blocking := protowire.AppendString(protowire.AppendTag(nil, 5, protowire.BytesType), "block")
	blocking = protowire.AppendFixed64(protowire.AppendTag(blocking, 7, protowire.Fixed64Type), 1)
	blocking = protowire.AppendFixed64(protowire.AppendTag(blocking, 8, protowire.Fixed64Type), 2)
	blockingSpan := blocking
	blocking = emptyAttributeSpansWith(300<<10, 128, blockingSpan)
	asJSON := func(b []byte) []byte {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(b); err != nil {
			t.Fatal(err)
		}
		j, err := req.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	// JSON is larger: a smaller request is as costly.
	jsonBody := asJSON(emptyAttributeSpans(200<<10, 128))
	jsonBlocking := asJSON(emptyAttributeSpansWith(200<<10, 128, blockingSpan))
	if cost := jsonEstimate(jsonBody); cost > budget || 2*cost < budget {
		t.Fatalf("the JSON request should fit the budget once, not twice: %d", cost)
	}

	for _, tc := range []struct {
		contentType    string
		blocking, body []byte
		want           int
	}{
		{jsonContentType, jsonBlocking, jsonBody, http.StatusTooManyRequests},
		{protobufContentType, blocking, body, http.StatusOK},
	} {
		t.Run(tc.contentType, func(t *testing.T) {
			o := &blockingObserver{entered: make(chan struct{}), release: make(chan struct{})}
			r := startReceiver(t, Options{Observer: o, MaxConcurrentRequests: 32,
				Limits: Limits{MemoryBudgetBytes: budget}})
			url := "http://" + r.HTTPAddr().String() + TracesPath

			runtime.GC()
			base := heapLive()
			var peak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					select {
					case <-stop:
						return
					default:
					}
					if h := heapLive(); h > peak.Load() {
						peak.Store(h)
					}
					time.Sleep(time.Millisecond)
				}
			}()

			send := func(b []byte) (int, string) {
				resp, err := http.Post(url, tc.contentType, bytes.NewReader(b))
				if err != nil {
					t.Error(err)
					return 0, ""
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode, resp.Header.Get("Retry-After")
			}
			first := make(chan int, 1)
			go func() { code, _ := send(tc.blocking); first <- code }()
			select {
			case <-o.entered:
			case code := <-first:
				t.Fatalf("the blocking request ended with %d before it was observed", code)
			case <-time.After(30 * time.Second):
				t.Fatal("the blocking request was never observed")
			}

			const senders = 15
			var wg sync.WaitGroup
			var answered atomic.Int32
			for range senders {
				wg.Go(func() {
					code, retry := send(tc.body)
					if code != tc.want {
						t.Errorf("status %d while one request is held, want %d", code, tc.want)
						return
					}
					answered.Add(1)
					if ra, err := strconv.Atoi(retry); code == http.StatusTooManyRequests && (err != nil || ra < 1) {
						t.Errorf("429 without a Retry-After: %q", retry)
					}
				})
			}
			wg.Wait()
			close(o.release)
			if code := <-first; code != http.StatusOK {
				t.Errorf("the held request ended with %d", code)
			}
			if code, _ := send(tc.body); code != http.StatusOK {
				t.Errorf("after the budget is free again: %d", code)
			}
			close(stop)
			<-sampled
			if answered.Load() != senders {
				t.Errorf("%d of %d senders answered %d", answered.Load(), senders, tc.want)
			}
			// Without the budget, 16 pdata decodes at once hold half a gigabyte.
			if grown := int64(peak.Load()) - int64(base); grown > budget+64<<20 {
				t.Errorf("the live heap grew by %d MB under a %d MB budget", grown>>20, budget>>20)
			}
			if got := r.budget.inUse.Load(); got != 0 {
				t.Errorf("%d bytes of the budget still held", got)
			}
		})
	}
}

// A request that fits its limits but not the memory left is refused with
// 429 / RESOURCE_EXHAUSTED and a retry delay; one that could never fit,
// with 400 / InvalidArgument.
func TestMemoryBudget(t *testing.T) {
	r := startReceiver(t, Options{Observer: &countingObserver{}, Limits: Limits{MemoryBudgetBytes: 8 << 20}})
	good := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(47, 48)), 40), false)
	costly := emptyAttributeSpans(200<<10, 128)

	held, ok := r.budget.reserve(r.budget.total)
	if !ok {
		t.Fatal("cannot hold the budget")
	}
	rec := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", good)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("HTTP over the budget: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	} else if _, reason := decodeStatus(t, rec); reason != reasonOverBudget {
		t.Errorf("HTTP reason %q", reason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := ptraceotlp.NewGRPCClient(dial(t, r))
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(good); err != nil {
		t.Fatal(err)
	}
	_, err := client.Export(ctx, req)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || errorInfoReason(st) != reasonOverBudget {
		t.Errorf("gRPC over the budget: %v", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if retry == nil {
		t.Errorf("gRPC over the budget without a RetryInfo: %v", st.Details())
	}
	held.release()

	if rec := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", good); rec.Code != http.StatusOK {
		t.Errorf("HTTP within the budget: %d", rec.Code)
	}
	if _, err := client.Export(ctx, req); err != nil {
		t.Errorf("gRPC within the budget: %v", err)
	}
	rec = post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", costly)
	if _, reason := decodeStatus(t, rec); rec.Code != http.StatusBadRequest || reason != reasonTooCostly {
		t.Errorf("HTTP, more than the whole budget: %d %q", rec.Code, reason)
	}
	err = dial(t, r).Invoke(ctx, exportFullMethod, &costly, new([]byte), grpc.ForceCodecV2(bytesCodec{}))
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || errorInfoReason(st) != reasonTooCostly {
		t.Errorf("gRPC, more than the whole budget: %v", err)
	}
}

// The request limits, over both transports and both encodings.
func TestRequestLimits(t *testing.T) {
	lim := Limits{MaxSpansPerRequest: 8, MaxAttributesPerSpan: 16, MaxAttributeKeyBytes: 32, MaxAttributeDepth: 2}
	r := startReceiver(t, Options{Observer: &countingObserver{}, Limits: lim})
	build := func(edit func(td ptrace.Traces)) ptrace.Traces {
		td := apiserverTraces(rand.New(rand.NewPCG(49, 50)), 4)
		edit(td)
		return td
	}
	span := func(td ptrace.Traces) ptrace.Span { return td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0) }
	tests := []struct {
		name   string
		td     ptrace.Traces
		reason string
	}{
		{"within", build(func(ptrace.Traces) {}), ""},
		{"too many spans", apiserverTraces(rand.New(rand.NewPCG(51, 52)), 12), otlpwire.ReasonTooManySpans},
		{"too many span attributes", build(func(td ptrace.Traces) {
			for i := range 17 {
				span(td).Attributes().PutStr(fmt.Sprint("a", i), "")
			}
		}), otlpwire.ReasonTooManyAttributes},
		{"too many resource attributes", build(func(td ptrace.Traces) {
			for i := range 17 {
				td.ResourceSpans().At(0).Resource().Attributes().PutStr(fmt.Sprint("a", i), "")
			}
		}), otlpwire.ReasonTooManyAttributes},
		{"key too long", build(func(td ptrace.Traces) {
			span(td).Attributes().PutStr(strings.Repeat("k", 33), "")
		}), otlpwire.ReasonKeyTooLong},
		{"too deep", build(func(td ptrace.Traces) {
			span(td).Attributes().PutEmptySlice("a").AppendEmpty().SetEmptySlice().AppendEmpty().SetEmptyMap().PutStr("x", "y")
		}), otlpwire.ReasonTooDeep},
	}
	client := ptraceotlp.NewGRPCClient(dial(t, r))
	for _, tc := range tests {
		for _, json := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s json=%v", tc.name, json), func(t *testing.T) {
				ct := protobufContentType
				if json {
					ct = jsonContentType
				}
				rec := post(r.HTTPHandler(), http.MethodPost, ct, "", marshalTraces(t, tc.td, json))
				if tc.reason == "" {
					if rec.Code != http.StatusOK {
						t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
					}
					return
				}
				if rec.Code != http.StatusBadRequest {
					t.Fatalf("status %d, want 400", rec.Code)
				}
				if _, reason := decodeStatus(t, rec); reason != tc.reason {
					t.Errorf("reason %q, want %q", reason, tc.reason)
				}
			})
		}
		t.Run(tc.name+" grpc", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(tc.td))
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if st := status.Convert(err); st.Code() != codes.InvalidArgument || errorInfoReason(st) != tc.reason {
				t.Errorf("%v, want InvalidArgument %s", err, tc.reason)
			}
		})
	}
}

// A value longer than the value limit reaches the engine truncated, with
// the marker, and is counted.
func TestLongLabelValuesTruncated(t *testing.T) {
	o := &recordingObserver{names: []string{"namespace", "http.target", "service.name"}}
	r := startReceiver(t, Options{Observer: o})
	long := strings.Repeat("n", 1<<20)
	td := apiserverTraces(rand.New(rand.NewPCG(53, 54)), 4)
	server := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	server.Attributes().PutStr("http.target", "/api/v1/namespaces/"+long+"/pods")
	td.ResourceSpans().At(0).Resource().Attributes().PutStr("service.name", "é"+long)
	if code := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", marshalTraces(t, td, false)).Code; code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	limit := DefaultLimits().MaxAttributeValueBytes
	s := o.all()[0]
	for _, name := range []string{"namespace", "http.target", "service.name"} {
		v := s.labels[name]
		if len(v) > limit || !strings.HasSuffix(v, TruncationMarker) {
			t.Errorf("%s: %d bytes ending %q, want at most %d ending with the marker", name, len(v), v[max(0, len(v)-20):], limit)
		}
	}
	if got := testutil.ToFloat64(r.metrics.truncated); got < 3 {
		t.Errorf("truncated = %v, want at least 3", got)
	}
}

func TestTruncateValue(t *testing.T) {
	tests := []struct {
		in, want string
		max      int
	}{
		{"short", "short", 64},
		{strings.Repeat("a", 64), strings.Repeat("a", 64), 64},
		{strings.Repeat("a", 65), strings.Repeat("a", 64-len(TruncationMarker)) + TruncationMarker, 64},
		// Cut at a rune boundary, never inside é.
		{strings.Repeat("a", 64-len(TruncationMarker)-1) + "é" + strings.Repeat("a", 20), strings.Repeat("a", 64-len(TruncationMarker)-1) + TruncationMarker, 64},
	}
	for _, tc := range tests {
		got, _ := truncateValue(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("truncateValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if again, cut := truncateValue(got, tc.max); again != got || cut {
			t.Errorf("truncating %q again changed it", got)
		}
	}
}

// The JSON estimate bounds what pdata allocates for the costliest JSON:
// many small objects.
func TestJSONEstimate(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[`)
	for i := range 50000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"key":""}`)
	}
	b.WriteString(`]}]}]}]}`)
	body := []byte(b.String())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalJSON(body); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(req)
	if allocated, est := int64(after.TotalAlloc-before.TotalAlloc), jsonEstimate(body); allocated > est {
		t.Errorf("estimate %d, pdata allocated %d", est, allocated)
	}
	if got := jsonEstimate([]byte(`{"a":"{{\"{"}`)); got != 2*13+256 {
		t.Errorf("braces in strings counted: %d", got)
	}
}

// Idle connections to the gRPC port, with or without the HTTP/2 preface,
// do not keep an exporter out, and are closed once the connection timeout
// (the header timeout) passes without a handshake.
func TestGRPCIdleConnectionsAreClosed(t *testing.T) {
	o := &countingObserver{}
	r := startReceiver(t, Options{Observer: o, Limits: Limits{ReadHeaderTimeout: time.Second}})
	addr := r.GRPCAddr().String()
	var idle []net.Conn
	for i := range 24 {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if i%2 == 1 {
			// The client preface, then nothing: no SETTINGS frame.
			if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
		}
		idle = append(idle, conn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := ptraceotlp.NewExportRequestFromTraces(apiserverTraces(rand.New(rand.NewPCG(55, 56)), 8))
	if _, err := ptraceotlp.NewGRPCClient(dial(t, r)).Export(ctx, req); err != nil {
		t.Fatalf("export while %d connections idle: %v", len(idle), err)
	}
	if got := o.n.Load(); got != 8 {
		t.Errorf("observed %d spans, want 8", got)
	}
	for i, conn := range idle {
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.Copy(io.Discard, conn); err != nil {
			t.Errorf("idle connection %d was not closed by the server: %v", i, err)
		}
	}
}

// postUnknownLength posts body without a declared length (as a chunked
// request arrives), through a reader that first waits for gate (nil: no
// wait) after the first part bytes.
func postUnknownLength(h http.Handler, body []byte, part int, gate <-chan struct{}) *httptest.ResponseRecorder {
	var src io.Reader = bytes.NewReader(body)
	if gate != nil {
		src = io.MultiReader(bytes.NewReader(body[:part]), gatedReader{gate: gate, r: bytes.NewReader(body[part:])})
	} else {
		src = struct{ io.Reader }{src} // hides the length from httptest
	}
	req := httptest.NewRequest(http.MethodPost, TracesPath, src)
	req.Header.Set("Content-Type", protobufContentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type gatedReader struct {
	gate <-chan struct{}
	r    io.Reader
}

func (g gatedReader) Read(p []byte) (int, error) {
	<-g.gate
	return g.r.Read(p)
}

// A body of unknown length (chunked, or compressed) is held against the
// budget at what its buffer holds, charged as it grows — not at
// max_request_bytes from the start, which let a 1 MiB budget admit one
// such request at a time. One that cannot grow within the budget is
// refused: 429 while others hold it, 400 REQUEST_TOO_COSTLY when it would
// take more than the whole budget; the budget is given back either way.
func TestUnknownLengthBodyHeldAtItsSize(t *testing.T) {
	r, _ := newTestReceiver(t, Options{Observer: &countingObserver{}, Limits: Limits{MemoryBudgetBytes: 1 << 20}})
	h := r.HTTPHandler()
	body := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(61, 62)), 200), false)
	if len(body) < 20<<10 || len(body) > 200<<10 {
		t.Fatalf("a body of %d bytes: the test wants 20–200 KiB", len(body))
	}

	// A first request stalls halfway through its body.
	gate := make(chan struct{})
	first := make(chan int, 1)
	go func() { first <- postUnknownLength(h, body, len(body)/2, gate).Code }()
	testkit.WaitFor(t, "the first body to be half read", 20*time.Second, func() (bool, bool) {
		return true, r.budget.inUse.Load() >= int64(len(body)/2)
	})
	if held := r.budget.inUse.Load(); held > 2*int64(len(body))+64<<10 {
		t.Errorf("half a body of %d bytes holds %d bytes of the budget", len(body), held)
	}
	// A second one of unknown length still fits, and is ingested.
	if rec := postUnknownLength(h, body, 0, nil); rec.Code != http.StatusOK {
		t.Errorf("a second body of unknown length beside a stalled one: %d %s", rec.Code, rec.Body)
	}
	close(gate)
	if code := <-first; code != http.StatusOK {
		t.Errorf("the stalled body, once sent: %d", code)
	}
	if n := r.budget.inUse.Load(); n != 0 {
		t.Fatalf("%d bytes of the budget still held", n)
	}

	// Growing past what others leave: 429; past the whole budget: 400.
	held, ok := r.budget.reserve(r.budget.total - int64(len(body))/2)
	if !ok {
		t.Fatal("cannot hold the budget")
	}
	rec := postUnknownLength(h, body, 0, nil)
	if _, reason := decodeStatus(t, rec); rec.Code != http.StatusTooManyRequests || reason != reasonOverBudget || rec.Header().Get("Retry-After") == "" {
		t.Errorf("a body that outgrows what the budget has left: %d %q, Retry-After %q", rec.Code, reason, rec.Header().Get("Retry-After"))
	}
	held.release()
	huge := bytes.Repeat([]byte{0x0a, 0x00}, 1<<20) // 2 MiB of empty resource spans
	rec = postUnknownLength(h, huge, 0, nil)
	if _, reason := decodeStatus(t, rec); rec.Code != http.StatusBadRequest || reason != reasonTooCostly {
		t.Errorf("a body over the whole budget: %d %q", rec.Code, reason)
	}
	if n := r.budget.inUse.Load(); n != 0 {
		t.Fatalf("%d bytes of the budget still held after the refusals", n)
	}
}
