// Package traces owns sentinel's short memory of whole traces: a bounded
// buffer of recent spans keyed by trace ID (compact fixed-size records and a
// recycled string arena, not pdata), pinning of the traces that alerts refer
// to, assembly of a trace from spans that arrive in pieces from several
// exporters, and its critical path: which spans, services and operations
// the root's duration was spent in.
//
// Every span sentinel receives goes through [Buffer.Add], so Add is bounded
// and allocation-free in steady state. Everything held has a cap (buffer
// bytes, pinned traces and bytes, spans per trace, attributes per span,
// bytes per value) and every refusal is counted in sentinel_trace_* metrics.
//
// It imports neither the engine nor the sources: sources hand it spans, the
// engine pins its exemplars' traces and reads their critical paths, the web
// layer renders assembled traces.
package traces
