package otlp

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// blockingObserver holds the first span named "block" until released.
type blockingObserver struct {
	countingObserver
	entered chan struct{}
	release chan struct{}
}

func (o *blockingObserver) Observe(obs *engine.Observation) {
	if name, _ := obs.Labels.Get("span.name"); name == "block" {
		close(o.entered)
		<-o.release
	}
	o.countingObserver.Observe(obs)
}

func TestOverload(t *testing.T) {
	o := &blockingObserver{entered: make(chan struct{}), release: make(chan struct{})}
	r := startReceiver(t, Options{Observer: o, MaxConcurrentRequests: 1, Limits: Limits{MaxQueueWait: shortQueueWait}})
	url := "http://" + r.HTTPAddr().String() + TracesPath

	blocking := apiserverTraces(rand.New(rand.NewPCG(15, 16)), 4)
	blocking.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetName("block")
	good := apiserverTraces(rand.New(rand.NewPCG(17, 18)), 4)

	first := make(chan int, 1)
	go func() {
		resp, err := http.Post(url, protobufContentType, bytes.NewReader(marshalTraces(t, blocking, false)))
		if err != nil {
			t.Error(err)
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	select {
	case <-o.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request never reached the observer")
	}

	// HTTP: refused at once with 429, Retry-After and a google.rpc.Status.
	for _, json := range []bool{false, true} {
		rec := post(r.HTTPHandler(), http.MethodPost, map[bool]string{false: protobufContentType, true: jsonContentType}[json], "",
			marshalTraces(t, good, json))
		if rec.Code != http.StatusTooManyRequests {
			t.Fatalf("second request: status %d, want 429", rec.Code)
		}
		if ra := rec.Header().Get("Retry-After"); ra != "1" {
			t.Errorf("Retry-After %q, want 1", ra)
		}
		st, reason := decodeStatus(t, rec)
		if codes.Code(st.GetCode()) != codes.ResourceExhausted || reason != reasonOverloaded {
			t.Errorf("status %v %q", codes.Code(st.GetCode()), reason)
		}
	}
	// The same over the network.
	resp, err := http.Post(url, protobufContentType, bytes.NewReader(marshalTraces(t, good, false)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("over the network: status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	// gRPC: RESOURCE_EXHAUSTED with a RetryInfo, which tells OTLP clients
	// that they may retry.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := ptraceotlp.NewGRPCClient(dial(t, r))
	_, err = client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(good))
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("gRPC: %v, want ResourceExhausted", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() != time.Second {
		t.Errorf("gRPC status details %v, want a RetryInfo of 1s", st.Details())
	}
	if got := errorInfoReason(st); got != reasonOverloaded {
		t.Errorf("gRPC reason %q", got)
	}

	// Graceful shutdown waits for the request in flight.
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- r.Shutdown(ctx)
	}()
	select {
	case err := <-shutdown:
		t.Fatalf("shutdown returned (%v) with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(o.release)
	if code := <-first; code != http.StatusOK {
		t.Errorf("the first request ended with %d, want 200", code)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if got := o.n.Load(); got != 4 {
		t.Errorf("observed %d spans, want the 4 of the first request", got)
	}
	if got := testutil.ToFloat64(r.metrics.requests.WithLabelValues("http", "429")); got != 3 {
		t.Errorf("requests{http,429} = %v, want 3", got)
	}
	if got := testutil.ToFloat64(r.metrics.requests.WithLabelValues("grpc", "ResourceExhausted")); got != 1 {
		t.Errorf("requests{grpc,ResourceExhausted} = %v, want 1", got)
	}
}

// Once the slot is free again, both transports serve.
func TestOverloadRecovers(t *testing.T) {
	o := &blockingObserver{entered: make(chan struct{}), release: make(chan struct{})}
	r := startReceiver(t, Options{Observer: o, MaxConcurrentRequests: 1, Limits: Limits{MaxQueueWait: shortQueueWait}})
	blocking := apiserverTraces(rand.New(rand.NewPCG(19, 20)), 4)
	blocking.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetName("block")
	good := apiserverTraces(rand.New(rand.NewPCG(21, 22)), 4)

	done := make(chan int, 1)
	go func() {
		done <- post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", marshalTraces(t, blocking, false)).Code
	}()
	<-o.entered
	if code := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", marshalTraces(t, good, false)).Code; code != http.StatusTooManyRequests {
		t.Fatalf("status %d while saturated, want 429", code)
	}
	close(o.release)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("blocked request: %d", code)
	}
	if code := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", marshalTraces(t, good, false)).Code; code != http.StatusOK {
		t.Errorf("HTTP after overload: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ptraceotlp.NewGRPCClient(dial(t, r)).Export(ctx, ptraceotlp.NewExportRequestFromTraces(good)); err != nil {
		t.Errorf("gRPC after overload: %v", err)
	}
}

// holdTheSlot starts a receiver with one request slot and a minute's
// queue wait, and a request (seeded seed, seed+1) that the observer holds
// in that slot until o.release is closed; first gets its status then.
func holdTheSlot(t *testing.T, seed uint64) (r *Receiver, o *blockingObserver, first <-chan int) {
	t.Helper()
	o = &blockingObserver{entered: make(chan struct{}), release: make(chan struct{})}
	r = startReceiver(t, Options{Observer: o, MaxConcurrentRequests: 1, Limits: Limits{MaxQueueWait: time.Minute}})
	blocking := apiserverTraces(rand.New(rand.NewPCG(seed, seed+1)), 4)
	blocking.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetName("block")
	body := marshalTraces(t, blocking, false)
	code := make(chan int, 1)
	go func() { code <- post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", body).Code }()
	<-o.entered
	return r, o, code
}

// shortQueueWait is how long a request waits for the one slot of the
// tests that hold it, before it is refused.
const shortQueueWait = 20 * time.Millisecond

// A request that finds every slot taken waits for one, its bytes held
// against the memory budget, instead of being refused: on both
// transports, once the slot is free within MaxQueueWait, it is answered
// OK and observed.
func TestRequestWaitsForASlot(t *testing.T) {
	r, o, first := holdTheSlot(t, 23)
	good := apiserverTraces(rand.New(rand.NewPCG(25, 26)), 4)
	body := marshalTraces(t, good, false)
	held := r.budget.inUse.Load()

	viaHTTP := make(chan int, 1)
	go func() {
		viaHTTP <- post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", body).Code
	}()
	viaGRPC := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := ptraceotlp.NewGRPCClient(dial(t, r)).Export(ctx, ptraceotlp.NewExportRequestFromTraces(good))
		viaGRPC <- err
	}()
	waiting := r.metrics.bounds[3] // sentinel_otlp_requests_waiting
	testkit.WaitFor(t, "both requests to wait for the slot", 20*time.Second, func() (bool, bool) {
		return true, testutil.ToFloat64(waiting) == 2
	})
	if got := r.budget.inUse.Load() - held; got < 2*int64(len(body)) {
		t.Errorf("the two waiting requests hold %d bytes of the budget, want at least their %d bytes each", got, len(body))
	}
	select {
	case code := <-viaHTTP:
		t.Fatalf("HTTP answered %d while the slot was held", code)
	case err := <-viaGRPC:
		t.Fatalf("gRPC answered (%v) while the slot was held", err)
	default:
	}

	close(o.release)
	if code := <-first; code != http.StatusOK {
		t.Errorf("the first request: %d", code)
	}
	if code := <-viaHTTP; code != http.StatusOK {
		t.Errorf("the waiting HTTP request: %d, want 200", code)
	}
	if err := <-viaGRPC; err != nil {
		t.Errorf("the waiting gRPC request: %v", err)
	}
	if got := o.n.Load(); got != 12 {
		t.Errorf("observed %d spans, want the 4 of each of the 3 requests", got)
	}
	if got := testutil.ToFloat64(waiting); got != 0 {
		t.Errorf("sentinel_otlp_requests_waiting = %v after all were served", got)
	}
	if got := r.budget.inUse.Load(); got != 0 {
		t.Errorf("%d bytes of the budget still held", got)
	}
}

// A client that goes away while its request waits for a slot is not
// counted as refused for overload (which would make /-/ready say that
// ingestion refuses everything): its request is dropped as cancelled.
func TestClientGoneWhileWaiting(t *testing.T) {
	r, o, first := holdTheSlot(t, 27)
	good := apiserverTraces(rand.New(rand.NewPCG(29, 30)), 4)
	defer func() {
		close(o.release)
		<-first
	}()

	waiting := r.metrics.bounds[3] // sentinel_otlp_requests_waiting
	for _, transport := range []string{"http", "grpc"} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			if transport == "http" {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.HTTPAddr().String()+TracesPath,
					bytes.NewReader(marshalTraces(t, good, false)))
				if err != nil {
					done <- err
					return
				}
				req.Header.Set("Content-Type", protobufContentType)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
				return
			}
			_, err := ptraceotlp.NewGRPCClient(dial(t, r)).Export(ctx, ptraceotlp.NewExportRequestFromTraces(good))
			done <- err
		}()
		testkit.WaitFor(t, transport+" request to wait for the slot", 20*time.Second, func() (bool, bool) {
			return true, testutil.ToFloat64(waiting) == 1
		})
		cancel()
		if err := <-done; err == nil {
			t.Fatalf("%s: the cancelled request was answered", transport)
		}
		testkit.WaitFor(t, transport+" request to stop waiting", 20*time.Second, func() (bool, bool) {
			return true, testutil.ToFloat64(waiting) == 0
		})
	}
	testkit.WaitFor(t, "the cancelled HTTP request to be counted", 20*time.Second, func() (bool, bool) {
		return true, testutil.ToFloat64(r.metrics.refused.WithLabelValues("http", reasonClientGone)) == 1
	})
	testkit.WaitFor(t, "the cancelled gRPC request to be counted", 20*time.Second, func() (bool, bool) {
		return true, testutil.ToFloat64(r.metrics.requests.WithLabelValues("grpc", codes.Canceled.String())) == 1
	})
	for _, transport := range []string{"http", "grpc"} {
		if got := testutil.ToFloat64(r.metrics.refused.WithLabelValues(transport, reasonOverloaded)); got != 0 {
			t.Errorf("refused{%s,%s} = %v: a client that went away counted as overload", transport, reasonOverloaded, got)
		}
	}
	r.refusals.mu.Lock()
	counted := r.refusals.count
	r.refusals.mu.Unlock()
	if counted != 0 {
		t.Errorf("readiness counts %d cancelled requests as refusals", counted)
	}
}

// A gzip body is held against the budget at the most it may reach while
// it is read, then, while it waits for a slot, at what its buffer took:
// not at max_request_bytes.
func TestCompressedBodyWaitsAtItsSize(t *testing.T) {
	r, o, first := holdTheSlot(t, 31)
	held := r.budget.inUse.Load()

	body := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(33, 34)), 200), false)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan int, 1)
	go func() { waited <- post(r.HTTPHandler(), http.MethodPost, protobufContentType, "gzip", gz.Bytes()).Code }()
	waiting := r.metrics.bounds[3] // sentinel_otlp_requests_waiting
	testkit.WaitFor(t, "the gzip request to wait for the slot", 20*time.Second, func() (bool, bool) {
		return true, testutil.ToFloat64(waiting) == 1
	})
	got := r.budget.inUse.Load() - held
	if got < int64(len(body)) || got > 2*int64(len(body))+64<<10 {
		t.Errorf("a waiting gzip request of %d bytes decompressed holds %d bytes of the budget (max_request_bytes is %d)", len(body), got, r.opts.MaxRequestBytes)
	}
	close(o.release)
	if code := <-first; code != http.StatusOK {
		t.Errorf("first: %d", code)
	}
	if code := <-waited; code != http.StatusOK {
		t.Errorf("gzip: %d", code)
	}
}

// With Limits.MaxQueuedRequests requests read and waiting for a slot, the
// next one waits for a place before its body is read: it holds no memory
// meanwhile, is served once a place is free, and is refused with 429,
// Retry-After and TOO_MANY_CONCURRENT_REQUESTS when none frees in time.
func TestQueueHoldsRequestsBeforeTheirBodies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wait    time.Duration
		release bool // the slot, while the third request waits
		want    int
	}{
		{"a place frees", time.Minute, true, http.StatusOK},
		// Long enough for the third request to be seen waiting before the
		// second gives up its place (the same wait bounds its wait for the
		// slot); the third is refused either way.
		{"none frees", 2 * time.Second, false, http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &blockingObserver{entered: make(chan struct{}), release: make(chan struct{})}
			r := startReceiver(t, Options{Observer: o, MaxConcurrentRequests: 1,
				Limits: Limits{MaxQueueWait: tc.wait, MaxQueuedRequests: 1}})
			url := "http://" + r.HTTPAddr().String() + TracesPath
			blocking := apiserverTraces(rand.New(rand.NewPCG(61, 62)), 4)
			blocking.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetName("block")
			body := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(63, 64)), 4), false)

			codes := make(chan int, 2)
			post := func(b []byte) {
				resp, err := http.Post(url, protobufContentType, bytes.NewReader(b))
				if err != nil {
					t.Error(err)
					codes <- 0
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes <- resp.StatusCode
			}
			go post(marshalTraces(t, blocking, false)) // takes the slot
			<-o.entered
			go post(body) // takes the place, waits for the slot
			testkit.WaitFor(t, "a request to wait for the slot", 20*time.Second, func() (bool, bool) {
				return true, r.waiting.Load() == 1
			})
			held := r.budget.inUse.Load()

			third := stalledClient(t, r.HTTPAddr().String(), len(body), body) // all of it
			testkit.WaitFor(t, "the third request to wait for a place", 20*time.Second, func() (bool, bool) {
				return true, r.queue.waiters.Load() == 1
			})
			if got := r.budget.inUse.Load(); got != held {
				t.Errorf("the request waiting for a place holds %d bytes of the budget, want none", got-held)
			}
			if tc.release {
				close(o.release)
			}
			_ = third.SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(third), nil)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("the third request got %d %q, want %d", resp.StatusCode, answer, tc.want)
			}
			if !tc.release {
				if resp.Header.Get("Retry-After") == "" || !bytes.Contains(answer, []byte(reasonOverloaded)) {
					t.Errorf("a refusal without Retry-After or %s: %v %q", reasonOverloaded, resp.Header, answer)
				}
				close(o.release)
			}
			// The request that held the slot is served; the one that waited
			// for it, unless it waited longer than max_queue_wait.
			ok := 0
			for range 2 {
				if <-codes == http.StatusOK {
					ok++
				}
			}
			if want := map[bool]int{true: 2, false: 1}[tc.release]; ok != want {
				t.Errorf("%d requests that had a place were served, want %d", ok, want)
			}
			if got := r.budget.inUse.Load(); got != 0 {
				t.Errorf("%d bytes of the budget still held", got)
			}
		})
	}
}

// A client stalling its body gives its place in the queue back after half
// of max_queue_wait: with one place, an exporter's request that arrives
// behind it waits and is served.
func TestStalledBodyGivesItsPlaceBack(t *testing.T) {
	o := &countingObserver{names: benchLabelNames}
	r := startReceiver(t, Options{Observer: o, Limits: Limits{MaxQueueWait: 2 * time.Second, MaxQueuedRequests: 1, ReadTimeout: time.Minute}})
	body := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(65, 66)), 8), false)
	stalledClient(t, r.HTTPAddr().String(), len(body), body[:len(body)/2])
	testkit.WaitFor(t, "the stalled request to take the place", 20*time.Second, func() (bool, bool) {
		return true, r.queue.queued() == 1
	})
	if err := sdkExport(t, r, 10); err != nil {
		t.Fatalf("the SDK exporter's spans were refused behind a stalled body: %v", err)
	}
	if got := o.n.Load(); got != 10 {
		t.Errorf("observed %d spans, want 10", got)
	}
}
