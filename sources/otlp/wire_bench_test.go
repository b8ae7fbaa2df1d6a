package otlp

import (
	"math/rand/v2"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kube-sentinel/sentinel/engine"
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
				ingest := func() {
					if _, err := c.dec.Decode(p.body, lim); err != nil {
						b.Fatal(err)
					}
					c.convert(e, time.Now())
				}
				benchIngest(b, p.n, p.body, ingest)
			})
		}
	}
}

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
