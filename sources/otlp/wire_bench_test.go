package otlp

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/tracebytes"
	"github.com/kube-sentinel/sentinel/traces"
)

// benchPayloads are the two shapes of issue 11's benchmarks, 500 spans
// each: whole traces (per request an apiserver SERVER span, its INTERNAL
// child, its CLIENT span to etcd and etcd's SERVER span; the rules match
// the first) and SERVER-only payloads (the apiserver's SERVER spans alone).
func benchPayloads(b *testing.B) []struct {
	name string
	body []byte
	n    int
} {
	whole := apiserverTraces(rand.New(rand.NewPCG(1, 2)), benchSpans)
	server := apiserverTraces(rand.New(rand.NewPCG(1, 2)), 4*benchSpans)
	server.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		v, _ := rs.Resource().Attributes().Get("service.name")
		return v.Str() != "apiserver"
	})
	server.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool {
		return s.Kind() != ptrace.SpanKindServer
	})
	return []struct {
		name string
		body []byte
		n    int
	}{
		{"whole-traces", marshalTraces(b, whole, false), whole.SpanCount()},
		{"server-only", marshalTraces(b, server, false), server.SpanCount()},
	}
}

// perSpan reports wall and process CPU time (GC included) per span, from
// cpu0, the process's CPU time when the loop started, and allocations per
// span.
func perSpan(b *testing.B, n int, cpu0 int64, allocs float64) {
	if cpu0 >= 0 {
		b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*n), "cpu-ns/span")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/span")
	b.ReportMetric(allocs/float64(n), "allocs/span")
}

// BenchmarkDecode is decoding alone: pdata's UnmarshalProto beside the
// wire decoder (which then walks every span's attributes once, as
// conversion does), on the same bytes.
func BenchmarkDecode(b *testing.B) {
	for _, p := range benchPayloads(b) {
		b.Run(p.name+"/pdata", func(b *testing.B) {
			b.SetBytes(int64(len(p.body)))
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				req := ptraceotlp.NewExportRequest()
				if err := req.UnmarshalProto(p.body); err != nil {
					b.Fatal(err)
				}
			}
			perSpan(b, p.n, cpu0, testing.AllocsPerRun(5, func() { _ = ptraceotlp.NewExportRequest().UnmarshalProto(p.body) }))
		})
		b.Run(p.name+"/wire", func(b *testing.B) {
			c := newConverter(DefaultLimits().MaxAttributeValueBytes, nil, nil)
			lim := DefaultLimits().wire()
			decode := func() {
				if _, err := c.dec.Decode(p.body, lim); err != nil {
					b.Fatal(err)
				}
				for i := range c.dec.Len() {
					c.dec.Span(i)
				}
			}
			decode()
			b.SetBytes(int64(len(p.body)))
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				decode()
			}
			perSpan(b, p.n, cpu0, testing.AllocsPerRun(5, decode))
		})
	}
}

// BenchmarkIngest is decode + conversion + the real engine with ten rules
// (testdata/bench_rules.yaml), the receivers' path without HTTP: pdata's
// decode and the old conversion beside the wire decoder, without and with
// the trace buffer.
func BenchmarkIngest(b *testing.B) {
	for _, p := range benchPayloads(b) {
		b.Run(p.name+"/pdata", func(b *testing.B) {
			e := benchEngine(b)
			c := newPDataConverter(DefaultLimits().MaxAttributeValueBytes, nil)
			ingest := func() {
				req := ptraceotlp.NewExportRequest()
				if err := req.UnmarshalProto(p.body); err != nil {
					b.Fatal(err)
				}
				c.convert(req.Traces(), e)
			}
			benchIngest(b, p.n, p.body, ingest)
		})
		for _, buffered := range []bool{false, true} {
			name := p.name + "/wire"
			if buffered {
				name += "+buffer"
			}
			b.Run(name, func(b *testing.B) {
				benchIngest(b, p.n, p.body, wireIngest(b, p.body, buffered))
			})
		}
	}
}

// wireIngest returns a func that ingests body as the receivers do, with
// the wire decoder, into the real engine with ten rules and, when
// buffered, a default trace buffer; each call gives the request new trace
// IDs. A buffered ingest starts in steady state: the buffer is full
// (every shard, so a tenth more than filling the first took), and every
// span makes room.
func wireIngest(b *testing.B, body []byte, buffered bool) func() {
	var e engine.Observer = benchEngine(b)
	var buf *traces.Buffer
	if buffered {
		var err error
		if buf, err = traces.New(traces.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	c := newConverter(DefaultLimits().MaxAttributeValueBytes, nil, buf)
	lim := DefaultLimits().wire()
	body = slices.Clone(body)
	renumber := traceIDRenumberer(b, body)
	ingest := func() {
		renumber()
		if _, err := c.dec.Decode(body, lim); err != nil {
			b.Fatal(err)
		}
		c.convert(e, time.Now())
	}
	if buffered {
		n := 0
		for ; fillsMore(buf); n++ {
			ingest()
		}
		for range n / 10 {
			ingest()
		}
	}
	return ingest
}

// BenchmarkBufferCost is what the trace buffer adds to ingest, per span:
// the wire path without and with the buffer (as in BenchmarkIngest),
// alternated request by request so that both see the same machine (whose
// speed drifts between minutes on a shared VM), each request timed. One
// op is one request of each.
func BenchmarkBufferCost(b *testing.B) {
	for _, p := range benchPayloads(b) {
		b.Run(p.name, func(b *testing.B) {
			without, with := wireIngest(b, p.body, false), wireIngest(b, p.body, true)
			without()
			var tWithout, tWith time.Duration
			for b.Loop() {
				t0 := time.Now()
				without()
				t1 := time.Now()
				with()
				tWithout += t1.Sub(t0)
				tWith += time.Since(t1)
			}
			spans := float64(b.N * p.n)
			b.ReportMetric(float64(tWithout)/spans, "wire-ns/span")
			b.ReportMetric(float64(tWith)/spans, "wire+buffer-ns/span")
			b.ReportMetric(float64(tWith-tWithout)/spans, "buffer-ns/span")
		})
	}
}

// traceIDRenumberer finds every trace ID of an export request's bytes and
// returns a func that gives the request new trace IDs each time it is
// called, as a stream of exports brings new traces: the first 8 bytes of
// each ID become a counter, the last 8 (distinct per trace) stay.
func traceIDRenumberer(b *testing.B, body []byte) func() {
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		b.Fatal(err)
	}
	at := tracebytes.Offsets(req.Traces(), body)
	if len(at) < req.Traces().SpanCount() {
		b.Fatalf("found %d trace IDs in the request's bytes, want one per span (%d)", len(at), req.Traces().SpanCount())
	}
	n := uint64(0)
	return func() {
		n++
		tracebytes.Renumber(body, at, n)
	}
}

// fillsMore tells whether the buffer still has room: it has not evicted
// a span for space yet.
func fillsMore(buf *traces.Buffer) bool { return buf.Stats().EvictedForSpace == 0 }

func benchIngest(b *testing.B, n int, body []byte, ingest func()) {
	ingest() // open the groups: steady state is what is measured
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		ingest()
	}
	perSpan(b, n, cpu0, testing.AllocsPerRun(5, ingest))
}
