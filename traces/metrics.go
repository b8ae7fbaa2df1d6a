package traces

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// dropReason says why a span offered to Add was not kept.
type dropReason int

const (
	dropZeroTraceID dropReason = iota // all-zero trace ID
	dropZeroSpanID                    // all-zero span ID
	dropBadTime                       // no start time, or ending before it starts
	dropTraceFull                     // the trace already holds MaxSpansPerTrace spans
	dropPinnedFull                    // a pinned trace at MaxSpansPerTrace
	dropPinnedBytes                   // the pinned store at MaxPinnedBytes
	numDropReasons
)

func (r dropReason) String() string {
	return [...]string{"zero_trace_id", "zero_span_id", "bad_time", "trace_full", "pinned_trace_full", "pinned_bytes"}[r]
}

type evictReason int

const (
	evictAge   evictReason = iota // older than MaxAge
	evictSpace                    // the buffer was full
	numEvictReasons
)

type pinRefusal int

const (
	pinZeroTraceID pinRefusal = iota
	pinTooMany                // MaxPinnedTraces reached
	numPinRefusals
)

// metrics are plain atomics read by CounterFuncs, so that Add pays an atomic
// add, not a label lookup; the counters of every span are the shards'.
type metrics struct {
	pinned    atomic.Uint64 // spans added to pinned traces
	truncated atomic.Uint64
	dropped   [numDropReasons]atomic.Uint64
	refused   [numPinRefusals]atomic.Uint64
}

func (m *metrics) drop(r dropReason) { m.dropped[r].Add(1) }

func (m *metrics) register(reg prometheus.Registerer, b *Buffer) {
	if reg == nil {
		return
	}
	f := promauto.With(reg)
	counter := func(name, help string, labels prometheus.Labels, v *atomic.Uint64) {
		f.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v.Load()) })
	}
	f.NewCounterFunc(prometheus.CounterOpts{Name: "sentinel_trace_spans_buffered_total", Help: "Spans kept in the trace buffer."},
		func() float64 { return float64(b.sum(func(sh *shard) uint64 { return sh.buffered })) })
	counter("sentinel_trace_spans_pinned_total", "Spans added to a pinned trace after it was pinned.", nil, &m.pinned)
	counter("sentinel_trace_span_fields_truncated_total",
		"Names and attribute values cut to the byte cap, and attributes beyond the per-span cap, of kept spans.", nil, &m.truncated)
	for r := range numDropReasons {
		counter("sentinel_trace_spans_dropped_total", "Spans refused by the trace buffer, by reason.",
			prometheus.Labels{"reason": r.String()}, &m.dropped[r])
	}
	for r, name := range [...]string{"age", "space"} {
		f.NewCounterFunc(prometheus.CounterOpts{
			Name:        "sentinel_trace_spans_evicted_total",
			Help:        "Buffered spans evicted, by reason (older than the retention, or room needed).",
			ConstLabels: prometheus.Labels{"reason": name},
		}, func() float64 { return float64(b.sum(func(sh *shard) uint64 { return sh.evicted[r] })) })
	}
	for r, name := range [...]string{"zero_trace_id", "too_many"} {
		counter("sentinel_trace_pins_refused_total", "Trace pins refused, by reason.",
			prometheus.Labels{"reason": name}, &m.refused[r])
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "sentinel_trace_buffer_spans", Help: "Spans in the trace buffer."},
		func() float64 { return float64(b.Stats().Spans) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "sentinel_trace_buffer_capacity_bytes", Help: "Bytes the trace buffer may use (records, their trace tags and the string arena)."},
		func() float64 { return float64(b.Stats().CapacityBytes) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "sentinel_trace_pinned_traces", Help: "Traces pinned."},
		func() float64 { return float64(b.pinnedTraces.Load()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "sentinel_trace_pinned_bytes", Help: "Estimated bytes held by pinned traces."},
		func() float64 { return float64(b.pinnedBytes.Load()) })
}

// sum adds up a counter over the shards, each read under its lock.
func (b *Buffer) sum(f func(*shard) uint64) uint64 {
	var n uint64
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		n += f(sh)
		sh.mu.Unlock()
	}
	return n
}
