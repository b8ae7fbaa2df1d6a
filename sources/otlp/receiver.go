package otlp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/logbound"
	"github.com/kube-sentinel/sentinel/sources/otlp/otlpwire"
	"github.com/kube-sentinel/sentinel/traces"
)

// DefaultMaxRequestBytes is the default of Options.MaxRequestBytes and of the
// config key otlp.http.max_request_bytes.
const DefaultMaxRequestBytes = 8 << 20

// retryAfter is what an overloaded receiver asks clients to wait.
const retryAfter = time.Second

// Options configure a Receiver.
type Options struct {
	// GRPCAddress and HTTPAddress are the listen addresses (":4317",
	// "127.0.0.1:0"); an empty address leaves that transport off.
	GRPCAddress, HTTPAddress string
	// MaxRequestBytes bounds one request's body, after decompression too
	// (and one gRPC message). Zero means DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// MaxConcurrentRequests bounds the requests being decoded and observed
	// at once, over both transports. A request beyond it waits, its body
	// read and held against the memory budget, for Limits.MaxQueueWait
	// at most, first come first served; then it is refused with HTTP 429
	// or gRPC RESOURCE_EXHAUSTED and a retry delay. Waiting requests do
	// not compete for the CPU, which keeps the process's own endpoints
	// (/-/healthy, /metrics) answering under overload. Zero means
	// GOMAXPROCS.
	MaxConcurrentRequests int
	// Limits bound what a request may cost; zero fields take DefaultLimits.
	Limits Limits
	// Observer receives every valid span. Required.
	Observer engine.Observer
	// Traces, when set, gets every span of every accepted request (the
	// trace buffer counts and drops those it cannot keep).
	Traces *traces.Buffer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer, when set, gets the receiver's metrics.
	Registerer prometheus.Registerer

	// GRPCTLS and HTTPTLS, when set, make that transport serve TLS with
	// them (client certificates are theirs to ask for and verify); nil
	// serves plain text.
	GRPCTLS, HTTPTLS *tls.Config
}

// Receiver serves OTLP trace exports over gRPC and HTTP.
type Receiver struct {
	opts     Options
	log      *slog.Logger
	observer engine.Observer
	metrics  *metrics
	inFlight chan struct{} // a slot per request being decoded and observed
	waiting  *atomic.Int64 // requests waiting for a slot
	queue    *queue        // requests admitted, not yet decoding
	limits   Limits
	budget   *budget // memory of the requests in flight
	guard    *memoryGuard
	refusals *refusals

	converters  sync.Pool // *converter
	bodies      *bodyBuffers
	gzipReaders sync.Pool // *gzip.Reader
	zstdReaders sync.Pool // *zstd.Decoder

	handler http.Handler

	// Open connections, per transport; conns[transportGRPC], conns[transportHTTP].
	conns        [2]*connLimiter
	stopLimiters chan struct{}
	stopOnce     sync.Once

	mu         sync.Mutex
	started    bool
	grpcServer *grpc.Server
	httpServer *http.Server
	grpcLn     net.Listener
	httpLn     net.Listener
	serving    sync.WaitGroup
}

// New checks opts and builds a Receiver; Start makes it listen.
func New(opts Options) (*Receiver, error) {
	if opts.Observer == nil {
		return nil, errors.New("otlp receiver: an observer is required")
	}
	if opts.MaxRequestBytes < 0 {
		return nil, fmt.Errorf("otlp receiver: max request bytes %d is negative", opts.MaxRequestBytes)
	}
	if opts.MaxRequestBytes == 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.MaxConcurrentRequests < 0 {
		return nil, fmt.Errorf("otlp receiver: max concurrent requests %d is negative", opts.MaxConcurrentRequests)
	}
	if opts.MaxConcurrentRequests == 0 {
		opts.MaxConcurrentRequests = runtime.GOMAXPROCS(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	limits, err := opts.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	opts.Limits = limits
	bud := newBudget(limits.MemoryBudgetBytes)
	guard := newMemoryGuard(bud, opts.Logger)
	refused := &refusals{after: limits.RefusingAfter, log: opts.Logger}
	waiting := new(atomic.Int64)
	queue := newQueue(limits.MaxQueuedRequests, limits.MaxQueueWait)
	m := newMetrics(bud, refused, waiting, queue, guard)
	var conns [2]*connLimiter
	for t, limit := range map[transport]int{transportGRPC: limits.MaxGRPCConnections, transportHTTP: limits.MaxHTTPConnections} {
		conns[t] = newConnLimiter(int64(limit), m.connsRefused.WithLabelValues(t.String()).Inc)
		m.bounds = append(m.bounds, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "sentinel_otlp_connections_open",
			Help:        "Open OTLP connections (otlp.grpc.max_connections, otlp.http.max_connections at most).",
			ConstLabels: prometheus.Labels{"transport": t.String()},
		}, func() float64 { return float64(conns[t].open.Load()) }))
	}
	if opts.Registerer != nil {
		if err := m.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("otlp receiver: registering metrics: %w", err)
		}
	}
	r := &Receiver{
		opts:     opts,
		log:      opts.Logger,
		observer: opts.Observer,
		metrics:  m,
		inFlight: make(chan struct{}, opts.MaxConcurrentRequests),
		waiting:  waiting,
		queue:    queue,
		bodies:   newBodyBuffers(limits.MemoryBudgetBytes),
		conns:    conns,
		limits:   limits,
		budget:   bud,
		guard:    guard,
		refusals: refused,

		stopLimiters: make(chan struct{}),
	}
	r.converters.New = func() any { return newConverter(limits.MaxAttributeValueBytes, m.truncated, opts.Traces) }
	r.handler = r.newHTTPHandler()
	return r, nil
}

// HTTPHandler serves POST /v1/traces; it is what the HTTP listener serves.
func (r *Receiver) HTTPHandler() http.Handler { return r.handler }

// Start listens on the configured addresses and serves in the background;
// it returns once both listeners are open.
func (r *Receiver) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return errors.New("otlp receiver: already started")
	}
	var lc net.ListenConfig
	if r.opts.GRPCAddress != "" {
		ln, err := lc.Listen(ctx, "tcp", r.opts.GRPCAddress)
		if err != nil {
			return fmt.Errorf("otlp receiver: gRPC listener on %s: %w", r.opts.GRPCAddress, err)
		}
		r.grpcLn = ln
	}
	if r.opts.HTTPAddress != "" {
		ln, err := lc.Listen(ctx, "tcp", r.opts.HTTPAddress)
		if err != nil {
			if r.grpcLn != nil {
				_ = r.grpcLn.Close()
				r.grpcLn = nil
			}
			return fmt.Errorf("otlp receiver: HTTP listener on %s: %w", r.opts.HTTPAddress, err)
		}
		r.httpLn = ln
	}
	r.started = true
	r.serving.Add(1)
	go func() {
		defer r.serving.Done()
		r.guard.run(r.stopLimiters)
	}()
	if r.grpcLn != nil {
		r.grpcServer = r.newGRPCServer()
		r.serving.Add(1)
		go func() {
			defer r.serving.Done()
			if err := r.grpcServer.Serve(r.conns[transportGRPC].limit(r.grpcLn)); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				r.log.Error("OTLP gRPC server stopped", "address", r.grpcLn.Addr().String(), "err", err)
			}
		}()
		r.log.Info("OTLP gRPC receiver listening", "address", r.grpcLn.Addr().String())
	}
	if r.httpLn != nil {
		r.httpServer = &http.Server{
			Handler: r.handler,
			// A client chooses how often this log is written (one line per
			// failed handshake): a steady rate passes, the rest is counted.
			ErrorLog: logbound.NewLogLogger(r.log.Handler(), slog.LevelWarn, errorLogPerSecond, errorLogBurst, r.metrics.logsDropped.Inc),
		}
		r.boundHTTPServer(r.httpServer)
		serve := r.httpServer.Serve
		if r.opts.HTTPTLS != nil {
			r.httpServer.TLSConfig = r.opts.HTTPTLS.Clone()
			serve = func(ln net.Listener) error { return r.httpServer.ServeTLS(ln, "", "") }
		}
		// Near the bound of connections, the HTTP server keeps none
		// alive: the idle ones are closed, and each answer closes its own.
		httpConns := r.conns[transportHTTP]
		httpConns.onPressure = func(on bool) {
			r.httpServer.SetKeepAlivesEnabled(!on)
			if on {
				r.log.Warn("OTLP HTTP connections near their limit: keep-alives off until under 75% of it", "open", httpConns.open.Load(), "max", httpConns.max)
			} else {
				r.log.Info("OTLP HTTP connections under 75% of their limit: keep-alives on", "open", httpConns.open.Load(), "max", httpConns.max)
			}
		}
		r.serving.Add(2)
		go func() {
			defer r.serving.Done()
			httpConns.run(r.stopLimiters)
		}()
		go func() {
			defer r.serving.Done()
			if err := serve(httpConns.limit(r.httpLn)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.log.Error("OTLP HTTP server stopped", "address", r.httpLn.Addr().String(), "err", err)
			}
		}()
		r.log.Info("OTLP HTTP receiver listening", "address", r.httpLn.Addr().String())
	}
	return nil
}

// GRPCAddr is the gRPC listener's address, nil before Start or when off.
func (r *Receiver) GRPCAddr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.grpcLn == nil {
		return nil
	}
	return r.grpcLn.Addr()
}

// HTTPAddr is the HTTP listener's address, nil before Start or when off.
func (r *Receiver) HTTPAddr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.httpLn == nil {
		return nil
	}
	return r.httpLn.Addr()
}

// Shutdown stops accepting requests and waits for those in flight to
// finish, or for ctx to end, in which case the remaining ones are cut off.
func (r *Receiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	grpcServer, httpServer := r.grpcServer, r.httpServer
	r.mu.Unlock()

	r.stopOnce.Do(func() { close(r.stopLimiters) })
	var errs []error
	if httpServer != nil {
		if err := httpServer.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("otlp receiver: HTTP shutdown: %w", err))
			_ = httpServer.Close()
		}
	}
	if grpcServer != nil {
		stopped := make(chan struct{})
		go func() {
			grpcServer.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-ctx.Done():
			grpcServer.Stop()
			<-stopped
			errs = append(errs, fmt.Errorf("otlp receiver: gRPC shutdown: %w", ctx.Err()))
		}
	}
	r.serving.Wait()
	return errors.Join(errs...)
}

// Ready reports an error while ingestion is refusing everything: every
// export request for Limits.RefusingAfter refused for overload or timeouts.
func (r *Receiver) Ready() error { return r.refusals.err(time.Now()) }

// acquire takes a request slot, waiting for one for Limits.MaxQueueWait
// at most (or until ctx is done); false means overloaded.
//
// Holding the slot, the request yields the CPU once before it is decoded:
// on a saturated CPU, every connection whose request has arrived is
// runnable, and Go's scheduler serves them in turn, so a goroutine that
// read its body and went on to decode it would make everything else (a
// health check, a scrape of /metrics, evaluation) wait behind one decode
// per connection. Yielding with the slot held lets the runnable readers
// run only as far as the slot, where they park: what is runnable is then
// the slot holders and cheap work, and the web endpoints wait for at
// most one decode per slot.
func (r *Receiver) acquire(ctx context.Context) bool {
	select {
	case r.inFlight <- struct{}{}:
		runtime.Gosched()
		return true
	default:
	}
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	t := time.NewTimer(r.limits.MaxQueueWait)
	defer t.Stop()
	select {
	case r.inFlight <- struct{}{}:
		runtime.Gosched()
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (r *Receiver) release() { <-r.inFlight }

// refuseQueueFullMessage says why a request got no place in the queue.
func (r *Receiver) refuseQueueFullMessage() string {
	return fmt.Sprintf("waited %s for one of %d places in the queue of export requests, retry later", r.limits.MaxQueueWait, cap(r.queue.places))
}

// refuseSlotMessage says why a request got no slot.
func (r *Receiver) refuseSlotMessage() string {
	return fmt.Sprintf("waited %s for one of %d export request slots, retry later", r.limits.MaxQueueWait, cap(r.inFlight))
}

// decode decodes an export request's protobuf bytes with a pooled
// converter, checking the request limits; on success the caller observes
// the request with c.convert, through r.observe, which returns c to the
// pool; on an error c is already back in it.
func (r *Receiver) decode(b []byte) (c *converter, st otlpwire.Stats, err error) {
	c = r.converters.Get().(*converter)
	st, err = c.dec.Decode(b, r.limits.wire())
	if err != nil {
		c.release()
		r.converters.Put(c)
		return nil, st, err
	}
	return c, st, nil
}

// discard returns a decoded request's converter to the pool unobserved.
func (r *Receiver) discard(c *converter) {
	c.release()
	r.converters.Put(c)
}

// observe converts a decoded request's spans, counts them and returns c
// to the pool; the request's bytes may be reused once it returns.
func (r *Receiver) observe(c *converter, t transport) (accepted, rejected int) {
	accepted, rejected = c.convert(r.observer, time.Now())
	r.converters.Put(c)
	r.metrics.spansReceived[t].Add(float64(accepted + rejected))
	if rejected > 0 {
		r.metrics.spansRejected[t].Add(float64(rejected))
	}
	return accepted, rejected
}

// The OTLP HTTP server's error log: a line a second on average, bursts of 10.
const (
	errorLogPerSecond = 1
	errorLogBurst     = 10
)

type transport int

const (
	transportGRPC transport = iota
	transportHTTP
)

func (t transport) String() string {
	if t == transportGRPC {
		return "grpc"
	}
	return "http"
}

type metrics struct {
	received      *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	requests      *prometheus.CounterVec
	refused       *prometheus.CounterVec
	truncated     prometheus.Counter
	logsDropped   prometheus.Counter     // error-log lines (failed handshakes, bad request lines) over the log's rate
	connsRefused  *prometheus.CounterVec // connections closed at once: over the transport's max_connections
	bounds        []prometheus.Collector // gauges of the budget and of readiness
	spansReceived [2]prometheus.Counter
	spansRejected [2]prometheus.Counter // reason invalid_time, the one span-level reason
}

func newMetrics(bud *budget, refused *refusals, waiting *atomic.Int64, queue *queue, guard *memoryGuard) *metrics {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_spans_received_total",
			Help: "Spans decoded from OTLP export requests, valid or not.",
		}, []string{"transport"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_spans_rejected_total",
			Help: "Decoded spans that were not observed, by reason.",
		}, []string{"transport", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_otlp_requests_total",
			Help: "OTLP export requests by transport and outcome (HTTP status code, or gRPC status code name).",
		}, []string{"transport", "code"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_otlp_requests_refused_total",
			Help: "OTLP export requests refused, by transport and reason (the google.rpc.ErrorInfo reason of the answer).",
		}, []string{"transport", "reason"}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_otlp_connections_refused_total",
			Help: "OTLP connections closed as soon as accepted because the transport's max_connections were open.",
		}, []string{"transport"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sentinel_otlp_label_values_truncated_total",
			Help: "Label values read from spans that were cut to the attribute value limit (each lookup counts).",
		}),
		logsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sentinel_otlp_error_log_lines_dropped_total",
			Help: "Lines of the OTLP HTTP server's error log (failed TLS handshakes, malformed requests) not written because they came faster than the log's rate.",
		}),
		bounds: []prometheus.Collector{
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sentinel_otlp_memory_budget_bytes",
				Help: "The memory budget of OTLP export requests in flight (bodies, then their estimated decoded size).",
			}, func() float64 { return float64(bud.total) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sentinel_otlp_memory_in_flight_bytes",
				Help: "The memory budget held by OTLP export requests in flight.",
			}, func() float64 { return float64(bud.inUse.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sentinel_otlp_refusing",
				Help: "1 while OTLP ingestion refuses every export request (overload or timeouts); /-/ready then answers 503.",
			}, func() float64 {
				if refused.err(time.Now()) != nil {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sentinel_otlp_requests_waiting",
				Help: "OTLP export requests read and waiting for a slot to be decoded (otlp.limits.max_queue_wait at most).",
			}, func() float64 { return float64(waiting.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sentinel_otlp_requests_queued",
				Help: "OTLP export requests admitted and not yet decoding: their bodies arriving, or read and waiting for a slot (otlp.limits.max_queued_requests at most).",
			}, func() float64 { return float64(queue.queued()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sentinel_otlp_memory_held_back_bytes",
				Help: "Bytes of the OTLP memory budget held back while the process's live memory is near its Go memory limit.",
			}, func() float64 { return float64(guard.held.Load()) }),
		},
	}
	for _, t := range []transport{transportGRPC, transportHTTP} {
		m.spansReceived[t] = m.received.WithLabelValues(t.String())
		m.spansRejected[t] = m.rejected.WithLabelValues(t.String(), reasonInvalidTime)
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	cs := append([]prometheus.Collector{m.received, m.rejected, m.requests, m.refused, m.truncated, m.logsDropped, m.connsRefused}, m.bounds...)
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}
