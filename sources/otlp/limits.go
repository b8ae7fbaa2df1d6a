package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/kube-sentinel/sentinel/sources/otlp/otlpwire"
)

// Limits bound what one request may cost. Zero fields take the defaults
// of DefaultLimits.
type Limits struct {
	// MaxSpansPerRequest: a request with more spans is refused (400,
	// InvalidArgument).
	MaxSpansPerRequest int
	// MaxAttributesPerSpan bounds each attribute list (resource, scope,
	// span, event, link) and each kvlist or array value; over it, refused.
	MaxAttributesPerSpan int
	// MaxAttributeKeyBytes: a longer attribute key is refused.
	MaxAttributeKeyBytes int
	// MaxAttributeValueBytes: a longer value is truncated, with
	// TruncationMarker at its end, where it becomes a label value.
	MaxAttributeValueBytes int
	// MaxAttributeDepth bounds the nesting of kvlist and array values.
	MaxAttributeDepth int
	// MemoryBudgetBytes bounds the memory of the requests in flight: their
	// bodies while read, then their estimated decoded size. A request that
	// does not fit now is refused with 429 / RESOURCE_EXHAUSTED and a retry
	// delay; one that could never fit, with 400 / InvalidArgument.
	MemoryBudgetBytes int64

	// MaxQueueWait: how long a read request waits for a slot to be
	// decoded (Options.MaxConcurrentRequests) before it is refused with
	// 429 / RESOURCE_EXHAUSTED and a retry delay.
	MaxQueueWait time.Duration
	// MaxQueuedRequests bounds the requests admitted and not yet decoding
	// (bodies arriving, or read and waiting for a slot). A request beyond
	// it waits for a place, its body unread, for MaxQueueWait at most, then
	// is refused with 429 / RESOURCE_EXHAUSTED and a retry delay.
	MaxQueuedRequests int

	// OTLP/HTTP connections: the time to read a request's headers, then its
	// body, and how long an idle keep-alive connection stays open.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (HTTP).
	MaxHeaderBytes int
	// MaxHTTPConnections and MaxGRPCConnections bound the open
	// connections of each transport; beyond them a new connection is
	// closed as soon as accepted. Near the HTTP bound, keep-alives are off.
	MaxHTTPConnections, MaxGRPCConnections int
	// MaxConcurrentStreams bounds the gRPC streams of one connection.
	MaxConcurrentStreams uint32

	// RefusingAfter: when every export request for this long was refused
	// for overload or a timeout, Ready reports an error.
	RefusingAfter time.Duration
}

// TruncationMarker ends a label value cut at MaxAttributeValueBytes.
const TruncationMarker = "…[truncated]"

// DefaultLimits are the defaults of the otlp section of sentinel.yaml.
func DefaultLimits() Limits {
	return Limits{
		MaxSpansPerRequest:     32768,
		MaxAttributesPerSpan:   128, // the OpenTelemetry SDKs' attribute count limit
		MaxAttributeKeyBytes:   256,
		MaxAttributeValueBytes: 1024,
		MaxAttributeDepth:      otlpwire.DefaultMaxDepth,
		MemoryBudgetBytes:      256 << 20,
		MaxQueueWait:           time.Second,
		MaxQueuedRequests:      256,
		ReadHeaderTimeout:      10 * time.Second,
		ReadTimeout:            30 * time.Second,
		IdleTimeout:            2 * time.Minute,
		MaxHeaderBytes:         64 << 10,
		MaxHTTPConnections:     1024,
		MaxGRPCConnections:     1024,
		MaxConcurrentStreams:   100,
		RefusingAfter:          30 * time.Second,
	}
}

// minValueBytes keeps room for some of the value besides the marker.
const minValueBytes = 2 * len(TruncationMarker)

// withDefaults fills zero fields and checks the rest.
func (l Limits) withDefaults() (Limits, error) {
	d := DefaultLimits()
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	set(&l.MaxSpansPerRequest, d.MaxSpansPerRequest)
	set(&l.MaxAttributesPerSpan, d.MaxAttributesPerSpan)
	set(&l.MaxAttributeKeyBytes, d.MaxAttributeKeyBytes)
	set(&l.MaxAttributeValueBytes, d.MaxAttributeValueBytes)
	set(&l.MaxAttributeDepth, d.MaxAttributeDepth)
	set(&l.MaxHeaderBytes, d.MaxHeaderBytes)
	set(&l.MaxHTTPConnections, d.MaxHTTPConnections)
	set(&l.MaxGRPCConnections, d.MaxGRPCConnections)
	set(&l.MaxQueuedRequests, d.MaxQueuedRequests)
	if l.MemoryBudgetBytes == 0 {
		l.MemoryBudgetBytes = d.MemoryBudgetBytes
	}
	setDuration := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDuration(&l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	setDuration(&l.ReadTimeout, d.ReadTimeout)
	setDuration(&l.IdleTimeout, d.IdleTimeout)
	setDuration(&l.RefusingAfter, d.RefusingAfter)
	setDuration(&l.MaxQueueWait, d.MaxQueueWait)
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = d.MaxConcurrentStreams
	}
	switch {
	case l.MaxSpansPerRequest < 0, l.MaxAttributesPerSpan < 0, l.MaxAttributeKeyBytes < 0, l.MaxAttributeDepth < 0,
		l.MaxHeaderBytes < 0, l.MaxHTTPConnections < 0, l.MaxGRPCConnections < 0, l.MaxQueuedRequests < 0, l.MemoryBudgetBytes < 0, l.ReadHeaderTimeout < 0, l.ReadTimeout < 0, l.IdleTimeout < 0, l.RefusingAfter < 0, l.MaxQueueWait < 0:
		return l, fmt.Errorf("otlp receiver: limits must not be negative: %+v", l)
	case l.MaxAttributeValueBytes < minValueBytes:
		return l, fmt.Errorf("otlp receiver: max attribute value bytes %d is under the minimum of %d", l.MaxAttributeValueBytes, minValueBytes)
	}
	return l, nil
}

func (l Limits) wire() otlpwire.Limits {
	return otlpwire.Limits{
		MaxSpans:      l.MaxSpansPerRequest,
		MaxAttributes: l.MaxAttributesPerSpan,
		MaxKeyBytes:   l.MaxAttributeKeyBytes,
		MaxDepth:      l.MaxAttributeDepth,
		// A request that alone would take more than the whole budget can
		// never be admitted: the scan stops there.
		MaxDecodedBytes: l.MemoryBudgetBytes,
	}
}

// truncateValue cuts s to at most limit bytes, TruncationMarker included,
// at a UTF-8 boundary; the result is a fresh string, so that it does not
// keep a large request alive. A value at most limit bytes long is returned
// as is, which makes truncation idempotent.
func truncateValue(s string, limit int) (string, bool) {
	if limit <= 0 || len(s) <= limit {
		return s, false
	}
	cut := max(limit-len(TruncationMarker), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + TruncationMarker, true
}

// budget is the memory of requests in flight, in bytes.
type budget struct {
	sem   *semaphore.Weighted
	total int64
	inUse atomic.Int64
}

func newBudget(total int64) *budget {
	return &budget{sem: semaphore.NewWeighted(total), total: total}
}

// reservation is a request's share of the budget; it grows or shrinks as
// what is known about the request changes, and is released once.
type reservation struct {
	b *budget
	n int64
}

// reserve takes n bytes without waiting; false means the budget is spent.
func (b *budget) reserve(n int64) (reservation, bool) {
	n = min(max(n, 1), b.total)
	if !b.sem.TryAcquire(n) {
		return reservation{}, false
	}
	return b.took(n), true
}

// took records n bytes acquired from the semaphore as a reservation.
func (b *budget) took(n int64) reservation {
	b.inUse.Add(n)
	return reservation{b: b, n: n}
}

// reserveWaiting takes n bytes, waiting for them for wait at most (or
// until ctx is done), first come first served; false means they did not
// come free. A request waits here before its body is read: it holds
// nothing meanwhile.
func (b *budget) reserveWaiting(ctx context.Context, n int64, wait time.Duration) (reservation, bool) {
	if res, ok := b.reserve(n); ok {
		return res, true
	}
	n = min(max(n, 1), b.total)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if b.sem.Acquire(ctx, n) != nil {
		return reservation{}, false
	}
	return b.took(n), true
}

// resize makes the reservation n bytes; false (and unchanged) when the
// budget cannot give the difference now.
func (r *reservation) resize(n int64) bool {
	switch {
	case n > r.b.total:
		return false
	case n > r.n:
		if !r.b.sem.TryAcquire(n - r.n) {
			return false
		}
	case n < r.n:
		r.b.sem.Release(r.n - n)
	}
	r.b.inUse.Add(n - r.n)
	r.n = n
	return true
}

func (r *reservation) release() {
	if r.b != nil && r.n > 0 {
		r.b.sem.Release(r.n)
		r.b.inUse.Add(-r.n)
	}
	r.n = 0
}

// refusals tells when ingestion has been refusing everything: every
// export request since a while ago refused for overload or a timeout.
type refusals struct {
	after time.Duration
	log   *slog.Logger

	mu       sync.Mutex
	since    time.Time // the first refusal since the last accepted request
	last     time.Time // the latest refusal
	count    int       // refusals since `since`
	refusing bool      // as last logged
}

func (f *refusals) accepted() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refusing {
		f.log.Info("OTLP ingestion accepts export requests again", "refused", f.count, "refusing_for", time.Since(f.since).Round(time.Second))
		f.refusing = false
	}
	f.since, f.count = time.Time{}, 0
}

func (f *refusals) refused(now time.Time, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.since.IsZero() {
		f.since = now
	}
	f.last = now
	f.count++
	if !f.refusing && f.errLocked(now) != nil {
		f.refusing = true
		f.log.Warn("OTLP ingestion is refusing every export request; sentinel is not ready",
			"since", f.since, "refused", f.count, "last_reason", reason)
	}
}

func (f *refusals) err(now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.errLocked(now)
}

func (f *refusals) errLocked(now time.Time) error {
	if f.since.IsZero() || now.Sub(f.since) < f.after || now.Sub(f.last) > f.after {
		return nil
	}
	return fmt.Errorf("OTLP ingestion has refused every export request since %s (%d refused for overload or timeouts, none accepted)",
		f.since.UTC().Format(time.RFC3339), f.count)
}

// grpcServerOptions bound what a gRPC connection may hold: its messages,
// its streams, its handshake, and how often and how long it may idle.
func (r *Receiver) grpcServerOptions() []grpc.ServerOption {
	l := r.limits
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(min(r.opts.MaxRequestBytes, int64(maxInt)))),
		grpc.MaxConcurrentStreams(l.MaxConcurrentStreams),
		grpc.ConnectionTimeout(l.ReadHeaderTimeout),
		grpc.MaxHeaderListSize(uint32(l.MaxHeaderBytes)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: l.IdleTimeout,
			Time:              time.Minute,
			Timeout:           20 * time.Second,
		}),
	}
}

// boundHTTPServer sets the timeouts and header bound of the OTLP/HTTP
// server. The body's own deadline is set per request (serveTraces), so
// that a client stalling its body frees what it holds.
func (r *Receiver) boundHTTPServer(s *http.Server) {
	l := r.limits
	s.ReadHeaderTimeout = l.ReadHeaderTimeout
	// A backstop: serveTraces sets the body's deadline itself.
	s.ReadTimeout = l.ReadHeaderTimeout + l.ReadTimeout
	s.IdleTimeout = l.IdleTimeout
	s.MaxHeaderBytes = l.MaxHeaderBytes
}

// jsonEstimate bounds what decoding an OTLP/JSON body allocates: every
// object, the smallest of which takes 2 bytes, becomes at most one pdata
// message (the largest, a span, costs 256 bytes decoded) and every string
// is copied. Counting braces outside strings is one cheap pass.
func jsonEstimate(b []byte) int64 {
	const costObject = 256
	objects, inString, escaped := int64(0), false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{':
			objects++
		}
	}
	return 2*int64(len(b)) + objects*costObject
}

// scanRefusal is the reason and message that answer a request the
// pre-scan refused: over a limit, or not protobuf at all.
func scanRefusal(err error) (reason, msg string) {
	if le, ok := errors.AsType[*otlpwire.LimitError](err); ok {
		return le.Reason, "request over a limit: " + le.Msg
	}
	return reasonInvalidProtobuf, fmt.Sprintf("cannot decode ExportTraceServiceRequest: %v", err)
}

// reasonLabel is the reason label of sentinel_otlp_requests_refused_total.
func reasonLabel(reason string) string {
	if reason == "" {
		return "INTERNAL"
	}
	return reason
}

// checkDecoded applies the request limits to a decoded request, for
// OTLP/JSON, which is not scanned before decoding; reason is "" when the
// request is within them.
func (r *Receiver) checkDecoded(td ptrace.Traces) (reason, msg string) {
	l := r.limits
	if n := td.SpanCount(); n > l.MaxSpansPerRequest {
		return otlpwire.ReasonTooManySpans, fmt.Sprintf("more than %d spans in one request", l.MaxSpansPerRequest)
	}
	check := func(m pcommon.Map, owner string) (string, string) {
		return checkMap(m, owner, l, 0)
	}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		if reason, msg := check(rs.Resource().Attributes(), "resource"); reason != "" {
			return reason, msg
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			if reason, msg := check(sss.At(j).Scope().Attributes(), "scope"); reason != "" {
				return reason, msg
			}
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				span := spans.At(k)
				if reason, msg := check(span.Attributes(), "span"); reason != "" {
					return reason, msg
				}
				for e := 0; e < span.Events().Len(); e++ {
					if reason, msg := check(span.Events().At(e).Attributes(), "span event"); reason != "" {
						return reason, msg
					}
				}
				for e := 0; e < span.Links().Len(); e++ {
					if reason, msg := check(span.Links().At(e).Attributes(), "span link"); reason != "" {
						return reason, msg
					}
				}
			}
		}
	}
	return "", ""
}

func checkMap(m pcommon.Map, owner string, l Limits, depth int) (string, string) {
	if m.Len() > l.MaxAttributesPerSpan {
		return otlpwire.ReasonTooManyAttributes, fmt.Sprintf("more than %d attributes in a %s's list", l.MaxAttributesPerSpan, owner)
	}
	for k, v := range m.All() {
		if len(k) > l.MaxAttributeKeyBytes {
			return otlpwire.ReasonKeyTooLong, fmt.Sprintf("a %s attribute key of %d bytes is over the limit of %d bytes", owner, len(k), l.MaxAttributeKeyBytes)
		}
		if reason, msg := checkValue(v, owner, l, depth); reason != "" {
			return reason, msg
		}
	}
	return "", ""
}

func checkValue(v pcommon.Value, owner string, l Limits, depth int) (string, string) {
	switch v.Type() {
	case pcommon.ValueTypeMap, pcommon.ValueTypeSlice:
		if depth+1 > l.MaxAttributeDepth {
			return otlpwire.ReasonTooDeep, fmt.Sprintf("a %s attribute nests arrays or kvlists more than %d deep", owner, l.MaxAttributeDepth)
		}
	}
	switch v.Type() {
	case pcommon.ValueTypeMap:
		return checkMap(v.Map(), owner, l, depth+1)
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		if s.Len() > l.MaxAttributesPerSpan {
			return otlpwire.ReasonTooManyAttributes, fmt.Sprintf("more than %d values in an array of a %s attribute", l.MaxAttributesPerSpan, owner)
		}
		for i := 0; i < s.Len(); i++ {
			if reason, msg := checkValue(s.At(i), owner, l, depth+1); reason != "" {
				return reason, msg
			}
		}
	}
	return "", ""
}
