// Command otlpload measures OTLP ingestion from outside a process: it
// sends OTLP/HTTP protobuf exports of apiserver-shaped whole traces to a
// receiver as fast as the receiver takes them (or, open loop, on a fixed
// schedule whatever the receiver takes), and it is the bare pdata
// receiver that sentinel is compared with.
//
//	otlpload send -url http://127.0.0.1:4318/v1/traces -duration 20s
//	otlpload send -open -rate 2000000 -max-in-flight 4096 -duration 60s
//	otlpload bare -listen 127.0.0.1:14318
//	otlpload probe -url http://127.0.0.1:9090/-/healthy -duration 60s
//
// send prints the spans of the requests answered 200 and of those refused.
// bare answers every POST /v1/traces by decoding the body with pdata's
// ptraceotlp.ExportRequest.UnmarshalProto into a pooled buffer, and
// nothing else. probe GETs URLs at an interval and prints their latency
// percentiles. All listen and send on loopback only. See
// scripts/measure-ingest.sh, scripts/measure-memory.sh and
// docs/performance.md.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kube-sentinel/sentinel/internal/tracebytes"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: otlpload send|bare [flags]")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "send":
		err = send(ctx, os.Args[2:], os.Stdout)
	case "bare":
		err = bare(ctx, os.Args[2:], log)
	case "probe":
		err = probe(ctx, os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q: send, bare or probe", os.Args[1])
	}
	if err != nil {
		log.Error("otlpload", "err", err)
		os.Exit(1)
	}
}

func send(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:4318/v1/traces", "OTLP/HTTP traces URL (loopback)")
	duration := fs.Duration("duration", 20*time.Second, "how long to send")
	senders := fs.Int("senders", 4, "concurrent senders")
	perRequest := fs.Int("spans", 400, "spans per request (4 per trace)")
	shape := fs.String("shape", "whole", "whole (4-span traces) or server (apiserver SERVER spans only)")
	namespaces := fs.Int("namespaces", 0, "if > 0, the SERVER spans' paths are pods of this many namespaces, in turn (else five fixed paths)")
	maxSpans := fs.Int64("max-spans", 0, "if > 0, stop once requests holding this many spans were sent")
	rate := fs.Float64("rate", 0, "if > 0, offer at most this many spans per second, spread over the senders (else as fast as answered)")
	open := fs.Bool("open", false, "open loop (with -rate): start each request on schedule whether or not earlier ones were answered, at most -max-in-flight outstanding (-senders is not used)")
	maxInFlight := fs.Int("max-in-flight", 4096, "open loop: requests outstanding at most; a request due beyond it is not sent (counted as unsent)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	nbodies := 16
	if *namespaces > 0 {
		perBody := *perRequest / 4
		if *shape == "server" {
			perBody = *perRequest
		}
		nbodies = max(nbodies, (*namespaces+perBody-1)/max(perBody, 1))
	}
	var bodies [][]byte
	var traceIDsAt [][]int // where each body's trace IDs are
	ns, longest := 0, 0
	for range nbodies {
		td := payload(rng, *perRequest, *shape == "server", *namespaces, &ns)
		b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			return err
		}
		bodies = append(bodies, b)
		traceIDsAt = append(traceIDsAt, tracebytes.Offsets(td, b))
		longest = max(longest, len(b))
	}
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	if *open {
		if *rate <= 0 {
			return errors.New("-open needs a -rate")
		}
		l := openLoop{url: *url, perRequest: *perRequest, rate: *rate, maxInFlight: *maxInFlight, maxSpans: *maxSpans,
			bodies: bodies, traceIDsAt: traceIDsAt, longest: longest}
		return l.run(ctx, out)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *senders}, Timeout: 30 * time.Second}
	var accepted, refused, failed, next atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for range *senders {
		wg.Go(func() {
			// Every request carries traces never sent before, as a
			// cluster's exporters do: the body is copied into the
			// sender's buffer and the first 8 bytes of each trace ID
			// become the request's number. The buffer is reused once
			// the transport has closed the body it read it through.
			buf := make([]byte, longest)
			closed := make(chan struct{}, 1)
			closed <- struct{}{}
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if *maxSpans > 0 && i*int64(*perRequest) >= *maxSpans {
					return
				}
				if *rate > 0 {
					at := begin.Add(time.Duration(float64(i*int64(*perRequest)) / *rate * float64(time.Second)))
					if d := time.Until(at); d > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(d):
						}
					}
				}
				<-closed
				k := i % int64(len(bodies))
				n := copy(buf, bodies[k])
				tracebytes.Renumber(buf[:n], traceIDsAt[k], uint64(i)+1)
				req, err := exportRequest(ctx, *url, buf[:n], closed)
				if err != nil {
					failed.Add(1)
					return
				}
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					accepted.Add(int64(*perRequest))
				} else {
					refused.Add(int64(*perRequest))
				}
			}
		})
	}
	wg.Wait()
	fmt.Fprintf(out, "accepted_spans %d\nrefused_spans %d\nfailed_requests %d\nseconds %.1f\n", accepted.Load(), refused.Load(), failed.Load(), time.Since(begin).Seconds())
	return nil
}

// openLoop offers requests on a fixed schedule, as a fleet of exporters
// does: a request is started when it is due, whether or not the earlier
// ones were answered, so that a receiver slower than the schedule sees the
// load pile up instead of slowing the sender down (a closed loop offers
// only what is taken). Requests outstanding are bounded by maxInFlight;
// one due beyond it is counted as unsent.
type openLoop struct {
	url                     string
	perRequest, maxInFlight int
	rate                    float64 // spans per second
	maxSpans                int64
	bodies                  [][]byte
	traceIDsAt              [][]int
	longest                 int
}

func (l *openLoop) run(ctx context.Context, out io.Writer) error {
	client := &http.Client{
		// One connection per request outstanding at most, as many exporters
		// each with its connection.
		Transport: &http.Transport{MaxConnsPerHost: l.maxInFlight, MaxIdleConnsPerHost: l.maxInFlight, MaxIdleConns: l.maxInFlight},
		Timeout:   30 * time.Second,
	}
	buffers := sync.Pool{New: func() any { b := make([]byte, l.longest); return &b }}
	slots := make(chan struct{}, l.maxInFlight)
	var accepted, refused, failed, unsent, sent atomic.Int64
	var errs errorKinds
	var wg sync.WaitGroup
	begin := time.Now()
	perSecond := l.rate / float64(l.perRequest) // requests
	var i int64
	for ctx.Err() == nil {
		due := int64(time.Since(begin).Seconds() * perSecond)
		for ; i < due; i++ {
			if l.maxSpans > 0 && i*int64(l.perRequest) >= l.maxSpans {
				break
			}
			select {
			case slots <- struct{}{}:
			default:
				unsent.Add(int64(l.perRequest))
				continue
			}
			sent.Add(int64(l.perRequest))
			i := i
			wg.Go(func() {
				defer func() { <-slots }()
				buf := buffers.Get().(*[]byte)
				k := i % int64(len(l.bodies))
				n := copy(*buf, l.bodies[k])
				tracebytes.Renumber((*buf)[:n], l.traceIDsAt[k], uint64(i)+1)
				closed := make(chan struct{}, 1)
				req, err := exportRequest(ctx, l.url, (*buf)[:n], closed)
				if err != nil {
					failed.Add(1)
					return
				}
				resp, err := client.Do(req)
				// The buffer goes back once the transport has closed the
				// body it read it through.
				go func() { <-closed; buffers.Put(buf) }()
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						errs.note(err)
					}
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					accepted.Add(int64(l.perRequest))
				} else {
					refused.Add(int64(l.perRequest))
				}
			})
		}
		if l.maxSpans > 0 && i*int64(l.perRequest) >= l.maxSpans {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
	}
	wg.Wait()
	secs := time.Since(begin).Seconds()
	fmt.Fprintf(out, "accepted_spans %d\nrefused_spans %d\nfailed_requests %d\nseconds %.1f\noffered_spans_per_second %.0f\nsent_spans %d\nunsent_spans %d\n",
		accepted.Load(), refused.Load(), failed.Load(), secs, l.rate, sent.Load(), unsent.Load())
	errs.print(out)
	return nil
}

// errorKinds counts failed requests by the last part of their error
// ("connection reset by peer", "EOF"), so that a run says how they failed.
type errorKinds struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *errorKinds) note(err error) {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = map[string]int{}
	}
	if _, seen := e.n[msg]; seen || len(e.n) < 16 {
		e.n[msg]++
	}
}

func (e *errorKinds) print(out io.Writer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(e.n)) {
		fmt.Fprintf(out, "failed_requests_by_error %q %d\n", k, e.n[k])
	}
}

// sentBody is a request body that says, once, when the transport has
// closed it: until then the transport may still read the bytes.
// exportRequest posts body as the OpenTelemetry SDKs' OTLP/HTTP exporters
// do: protobuf, with its Content-Length (a body whose length is not known
// in advance would go chunked). closed receives once the transport has
// closed the body.
func exportRequest(ctx context.Context, url string, body []byte, closed chan<- struct{}) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &sentBody{Reader: bytes.NewReader(body), closed: closed})
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	return req, nil
}

type sentBody struct {
	*bytes.Reader
	once   sync.Once
	closed chan<- struct{}
}

func (b *sentBody) Close() error {
	b.once.Do(func() { b.closed <- struct{}{} })
	return nil
}

// payload is n spans: per request an apiserver SERVER span, its INTERNAL
// child, its CLIENT span to etcd and etcd's SERVER span (or, with
// serverOnly, n apiserver SERVER spans). With namespaces > 0 the SERVER
// spans GET the pods of namespace *ns modulo namespaces, counting *ns on.
func payload(rng *rand.Rand, n int, serverOnly bool, namespaces int, ns *int) ptrace.Traces {
	td := ptrace.NewTraces()
	api := td.ResourceSpans().AppendEmpty()
	api.Resource().Attributes().PutStr("service.name", "apiserver")
	api.Resource().Attributes().PutStr("k8s.node.name", "control-plane-1")
	api.Resource().Attributes().PutStr("host.name", "control-plane-1")
	apiSpans := api.ScopeSpans().AppendEmpty()
	apiSpans.Scope().SetName("k8s.io/apiserver")
	etcd := td.ResourceSpans().AppendEmpty()
	etcd.Resource().Attributes().PutStr("service.name", "etcd")
	etcd.Resource().Attributes().PutStr("host.name", "control-plane-1")
	etcdSpans := etcd.ScopeSpans().AppendEmpty()
	etcdSpans.Scope().SetName("go.etcd.io/etcd")
	paths := []string{"/api/v1/namespaces/default", "/api/v1/namespaces/kube-system/pods", "/apis/apps/v1/namespaces/prod/deployments/web",
		"/api/v1/namespaces/default/configmaps/cm", "/api/v1/nodes"}
	now := time.Now()
	per := 4
	if serverOnly {
		per = 1
	}
	for i := 0; i < n/per; i++ {
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[:8], rng.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rng.Uint64())
		id := func() pcommon.SpanID {
			var s pcommon.SpanID
			binary.BigEndian.PutUint64(s[:], rng.Uint64())
			return s
		}
		start := now.Add(time.Duration(i) * time.Millisecond)
		dur := time.Duration(5+rng.IntN(400)) * time.Millisecond
		span := func(ss ptrace.ScopeSpans, parent pcommon.SpanID, name string, kind ptrace.SpanKind, off, d time.Duration) ptrace.Span {
			s := ss.Spans().AppendEmpty()
			s.SetTraceID(tid)
			s.SetSpanID(id())
			s.SetParentSpanID(parent)
			s.SetName(name)
			s.SetKind(kind)
			s.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(off)))
			s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(off + d)))
			return s
		}
		server := span(apiSpans, pcommon.SpanID{}, "GET", ptrace.SpanKindServer, 0, dur)
		a := server.Attributes()
		a.PutStr("http.method", "GET")
		if namespaces > 0 {
			a.PutStr("http.target", fmt.Sprintf("/api/v1/namespaces/ns-%04d/pods", *ns%namespaces))
			*ns++
		} else {
			a.PutStr("http.target", paths[rng.IntN(len(paths))])
		}
		a.PutInt("http.status_code", 200)
		a.PutStr("http.user_agent", "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350")
		a.PutStr("http.scheme", "https")
		a.PutStr("net.peer.ip", "10.0.0.5")
		a.PutStr("audit-id", fmt.Sprintf("%016x", rng.Uint64()))
		if serverOnly {
			continue
		}
		internal := span(apiSpans, server.SpanID(), "Get", ptrace.SpanKindInternal, time.Millisecond, dur-2*time.Millisecond)
		internal.Attributes().PutStr("audit-id", fmt.Sprintf("%016x", rng.Uint64()))
		client := span(apiSpans, internal.SpanID(), "etcdserverpb.KV/Range", ptrace.SpanKindClient, 2*time.Millisecond, dur-4*time.Millisecond)
		client.Attributes().PutStr("rpc.system", "grpc")
		client.Attributes().PutStr("rpc.service", "etcdserverpb.KV")
		client.Attributes().PutStr("rpc.method", "Range")
		client.Attributes().PutStr("net.peer.name", "127.0.0.1")
		es := span(etcdSpans, client.SpanID(), "etcdserverpb.KV/Range", ptrace.SpanKindServer, 3*time.Millisecond, dur-6*time.Millisecond)
		es.Attributes().PutStr("rpc.system", "grpc")
		es.Attributes().PutStr("rpc.service", "etcdserverpb.KV")
		es.Attributes().PutStr("rpc.method", "Range")
		es.Attributes().PutInt("rpc.grpc.status_code", 0)
	}
	return td
}

// bare is the baseline: an OTLP/HTTP receiver that only decodes, with
// pdata, into a pooled buffer.
func bare(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:14318", "listen address (loopback)")
	cpuProfile := fs.String("cpuprofile", "", "if set, write a CPU profile of the receiver to this file until it stops (scripts/pgo-profiles.sh)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ok, err := ptraceotlp.NewExportResponse().MarshalProto()
	if err != nil {
		return err
	}
	buffers := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	var spans atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/traces", func(w http.ResponseWriter, r *http.Request) {
		buf := buffers.Get().(*bytes.Buffer)
		defer func() { buf.Reset(); buffers.Put(buf) }()
		if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, 8<<20)); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(buf.Bytes()); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		spans.Add(int64(req.Traces().SpanCount()))
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(ok)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("bare pdata receiver listening", "address", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("bare pdata receiver stopped", "spans", spans.Load())
	return nil
}

// probe GETs each URL every interval for duration and prints, per URL, the
// requests, the errors (no answer, or not 200) and latency percentiles.
func probe(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	var urls []string
	fs.Func("url", "URL to GET (repeatable; loopback)", func(s string) error { urls = append(urls, s); return nil })
	duration := fs.Duration("duration", 60*time.Second, "how long to probe")
	interval := fs.Duration("interval", 100*time.Millisecond, "time between two GETs of one URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	lines := make([]string, len(urls))
	for n, u := range urls {
		wg.Go(func() {
			var lat []time.Duration
			errs := 0
			tick := time.NewTicker(*interval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					lines[n] = percentiles(u, lat, errs)
					return
				case <-tick.C:
				}
				t := time.Now()
				resp, err := client.Get(u)
				if err != nil {
					if ctx.Err() == nil {
						errs++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t))
				if resp.StatusCode != http.StatusOK {
					errs++
				}
			}
		})
	}
	wg.Wait()
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return nil
}

func percentiles(url string, lat []time.Duration, errs int) string {
	if len(lat) == 0 {
		return fmt.Sprintf("probe %s requests=0 errors=%d", url, errs)
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return fmt.Sprintf("probe %s requests=%d errors=%d p50=%v p99=%v max=%v", url, len(lat), errs,
		q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
}
