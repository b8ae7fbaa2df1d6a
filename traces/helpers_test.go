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
		onChain := make(map[uint64]bool)
		for i, sl := range sh.index {
			if sl.head == 0 {
				continue
			}
			if sl.head < sh.tail || sl.head >= sh.head {
				t.Fatalf("shard %d slot %d: head %d outside [%d,%d)", si, i, sl.head, sh.tail, sh.head)
			}
			id := sh.recs[sl.head&sh.rmask].traceID
			if got := sh.find(&id, sl.tag); got != uint32(i) {
				t.Fatalf("shard %d: trace %v found at slot %d, lives at %d", si, id, got, i)
			}
			n := 0
			sh.chain(sl.head, func(r *record) {
				n++
				if r.traceID != id {
					t.Fatalf("shard %d: chain of %v holds a span of %v", si, id, r.traceID)
				}
			})
			for seq := sl.head; seq >= sh.tail && seq != 0; seq = sh.recs[seq&sh.rmask].prev {
				if onChain[seq] {
					t.Fatalf("shard %d: span %d on two chains", si, seq)
				}
				onChain[seq] = true
			}
			if n > int(sl.count) {
				t.Fatalf("shard %d: trace %v has %d spans, counted %d", si, id, n, sl.count)
			}
			if r := &sh.recs[sl.head&sh.rmask]; r.flags != 0 {
				t.Fatalf("shard %d: trace %v's newest span has flags %b", si, id, r.flags)
			}
		}
		for seq := sh.tail; seq < sh.head; seq++ {
			if r := &sh.recs[seq&sh.rmask]; r.flags&detached == 0 && !onChain[seq] {
				t.Fatalf("shard %d: live span %d on no chain", si, seq)
			}
		}
		if used := sh.aHead - sh.aTail; used > uint64(len(sh.arena)) {
			t.Fatalf("shard %d: arena holds %d bytes of %d", si, used, len(sh.arena))
		}
		sh.mu.Unlock()
	}
}
