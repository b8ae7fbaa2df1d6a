package engine

import "time"

// Labels gives read access to an observation's label set without copying it.
// Sources implement it as a view over their own data (span attributes,
// resource attributes, derived request info, series labels), so that the hot
// path never builds a map.
type Labels interface {
	// Get returns the value of the named label and whether it is present.
	Get(name string) (string, bool)
}

// Source says which kind of input an observation came from; a rule only sees
// observations of its own source.
type Source uint8

const (
	SourceSpans Source = iota
	SourceMetrics
)

// Observation is one measured request: a span, or the count of one
// histogram bucket's increase between two scrapes. The engine does not keep
// a reference to it, nor to Labels, nor to the strings Labels returned,
// after Observe returns, so a source may reuse all three (the OTLP source's
// label values are views into a pooled request buffer): what the engine
// keeps, it copies.
//
// A metrics observation from a histogram says "Count requests took between
// the previous bucket bound and UpperBound": the engine keeps such counts
// per bucket and interpolates quantiles linearly inside a bucket, as
// Prometheus's histogram_quantile does; its Labels answer "__name__" with
// the histogram's base name (apiserver_request_duration_seconds, not
// _bucket). One from a request counter (apiserver_request_total) says
// "Count requests, Failed if the code is 5xx", with UpperBound +Inf and no
// Bounds: it feeds availability SLOs.
type Observation struct {
	Source   Source
	End      time.Time     // when the request ended (for metrics: the scrape time)
	Duration time.Duration // how long it took (for metrics: the exemplar's value, or UpperBound)
	Count    uint64        // how many requests this stands for; 0 means 1
	// UpperBound is, for SourceMetrics, the bucket's upper bound (le) in
	// seconds, math.Inf(1) for the +Inf bucket. Unused for spans.
	UpperBound float64
	// Bounds is, for SourceMetrics, every upper bound of the histogram's
	// buckets, ascending: buckets that saw nothing still bound the
	// interpolation, as in Prometheus. The engine copies it only when the
	// layout changes, so a source may share one slice per series.
	Bounds []float64
	Failed bool // span status error, HTTP 5xx, gRPC non-OK
	// SourceCounted says the sender reports this span's service.name
	// itself (Engine.SpansFrom, once per resource), so the engine does
	// not look it up in Labels for SentinelNoData's source tracking.
	SourceCounted bool
	TraceID       [16]byte // zero when unknown
	SpanID        [8]byte  // zero when unknown
	Labels        Labels
}

// Observer accepts observations. Sources depend on this interface, not on
// the engine.
type Observer interface {
	Observe(obs *Observation)
}
