package traces

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// base is the start of every hand-built trace; times in tests are
// milliseconds after it.
const base = int64(1_700_000_000_000_000_000)

func ms(v int64) int64 { return base + v*int64(time.Millisecond) }

func traceID(n uint64) TraceID {
	var id TraceID
	binary.BigEndian.PutUint64(id[8:], n)
	id[0] = 0xab
	return id
}

func spanID(n uint64) SpanID {
	var id SpanID
	binary.BigEndian.PutUint64(id[:], n)
	return id
}

// s is a hand-built span: IDs are small numbers (0: no parent), times in
// milliseconds.
type s struct {
	id, parent uint64
	svc, name  string
	kind       Kind
	start, end int64
	attrs      []Attribute
}

func build(tid uint64, ss ...s) []Span {
	out := make([]Span, len(ss))
	for i, x := range ss {
		out[i] = Span{
			TraceID: traceID(tid), SpanID: spanID(x.id), ParentSpanID: spanID(x.parent),
			Service: x.svc, Name: x.name, Kind: x.kind,
			Start: ms(x.start), End: ms(x.end), Attributes: x.attrs,
		}
	}
	return out
}

// render writes an assembled trace and its critical path for golden files.
func render(w *strings.Builder, t Trace, p Path) {
	rel := func(ns int64) string { return fmt.Sprintf("%gms", float64(ns-base)/1e6) }
	root := "none"
	if t.Root >= 0 {
		root = fmt.Sprintf("%s/%s", t.Spans[t.Root].Service, t.Spans[t.Root].Name)
	}
	fmt.Fprintf(w, "trace: %d spans, root %s, complete=%v roots=%d orphans=%d cycles=%d duplicates=%d dropped=%d\n",
		len(t.Spans), root, t.Complete, t.Roots, t.Orphans, t.Cycles, t.Duplicates, t.Dropped)
	fmt.Fprintf(w, "path: %v\n", p.Total)
	for _, sec := range p.Sections {
		sp := &t.Spans[sec.Span]
		fmt.Fprintf(w, "  %8s – %-8s %s %s %s\n", rel(sec.Start), rel(sec.End), sp.Kind, sp.Service, sp.Name)
	}
	for i := range t.Spans {
		sp := &t.Spans[i]
		on := " "
		if p.OnPath(i) {
			on = "*"
		}
		var d time.Duration
		for _, st := range p.Spans {
			if st.Span == i {
				d = st.Time
			}
		}
		fmt.Fprintf(w, "  %s span %d %s/%s %s–%s path %v\n", on, binary.BigEndian.Uint64(sp.SpanID[:]),
			sp.Service, sp.Name, rel(sp.Start), rel(sp.End), d)
	}
	fmt.Fprintf(w, "critical_path: %s\n", FormatShares(p.Services))
	fmt.Fprintf(w, "critical_path_spans: %s\n", FormatShares(p.Operations))
}

// metric reads a sentinel_trace_* series from the registry: its value, or
// the sum over series with the given label value.
func metric(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
			if m.Counter != nil {
				sum += m.Counter.GetValue()
			} else {
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// add adds spans to b as received at at, each with a resource of its
// service and no resource attributes.
func add(b *Buffer, at time.Time, spans ...Span) {
	var res Resource
	for i := range spans {
		res.Set(spans[i].Service, nil)
		b.Add(&res, &spans[i], at)
	}
}

// clock is a settable test clock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) Advance(d time.Duration) { c.now = c.now.Add(d) }

func newBuffer(t testing.TB, o Options) (*Buffer, *prometheus.Registry, *clock) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := &clock{now: time.Unix(0, base).Add(time.Second)}
	o.Registerer, o.Now = reg, c.Now
	if o.MaxBytes == 0 {
		o.MaxBytes = MinMaxBytes
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return b, reg, c
}

// checkInvariants verifies a buffer's internal structure: every index
// entry names a live record of its trace and finds itself by probing, its
// count is its chain's length, and every live record that is not detached
// is on exactly one chain.
func checkInvariants(t testing.TB, b *Buffer) {
	t.Helper()
	for si := range b.shards {
		sh := &b.shards[si]
		sh.mu.Lock()
		if sh.head < sh.tail || sh.head-sh.tail > uint64(len(sh.recs)) {
			t.Fatalf("shard %d: %d spans live in a ring of %d", si, sh.head-sh.tail, len(sh.recs))
		}
		if used := sh.aHead - sh.aTail; used > uint64(len(sh.arena)) {
			t.Fatalf("shard %d: arena holds %d bytes of %d", si, used, len(sh.arena))
		}
		var lastRes, lastEnd uint64
		for seq := sh.tail; seq < sh.head; seq++ {
			r := &sh.recs[seq&sh.rmask]
			resPos := r.off - uint64(r.resBack)
			if seq == sh.tail && resPos != sh.aTail {
				t.Fatalf("shard %d: arena tail %d, oldest span's resource at %d", si, sh.aTail, resPos)
			}
			// Blocks in order, each before its spans, all within the
			// live arena, none split over its end.
			if resPos < lastRes || r.off < lastEnd || resPos < sh.aTail || r.off+uint64(r.size) > sh.aHead {
				t.Fatalf("shard %d span %d: resource at %d, strings at %d+%d; previous resource %d, end %d; arena [%d,%d)",
					si, seq, resPos, r.off, r.size, lastRes, lastEnd, sh.aTail, sh.aHead)
			}
			if resPos&sh.amask+uint64(r.resLen) > uint64(len(sh.arena)) || r.off&sh.amask+uint64(r.size) > uint64(len(sh.arena)) {
				t.Fatalf("shard %d span %d: strings split over the arena's end", si, seq)
			}
			if res, _ := sh.bytes(r); len(res) < 2 || res[0] != serviceKey {
				t.Fatalf("shard %d span %d: resource block does not start with the service", si, seq)
			}
			if tag := b.tag(&r.traceID); sh.tags[seq&sh.rmask] != tag {
				t.Fatalf("shard %d span %d: tag %x, trace's is %x", si, seq, sh.tags[seq&sh.rmask], tag)
			}
			lastRes, lastEnd = resPos, r.off+uint64(r.size)
		}
		sh.mu.Unlock()
	}
}
