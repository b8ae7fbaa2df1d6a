package traces

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestAddRefuses(t *testing.T) {
	b, reg, clk := newBuffer(t, Options{})
	good := build(1, s{1, 0, apis, get, KindServer, 0, 1, nil})[0]
	for _, c := range []struct {
		reason string
		mod    func(*Span)
	}{
		{"zero_trace_id", func(sp *Span) { sp.TraceID = TraceID{} }},
		{"zero_span_id", func(sp *Span) { sp.SpanID = SpanID{} }},
		{"bad_time", func(sp *Span) { sp.Start = 0 }},
		{"bad_time", func(sp *Span) { sp.End = sp.Start - 1 }},
		{"bad_time", func(sp *Span) { sp.Start, sp.End = -5, 10 }},
	} {
		sp := good
		c.mod(&sp)
		before := metric(t, reg, "sentinel_trace_spans_dropped_total", "reason", c.reason)
		add(b, clk.Now(), sp)
		if after := metric(t, reg, "sentinel_trace_spans_dropped_total", "reason", c.reason); after != before+1 {
			t.Errorf("%s: dropped %v → %v", c.reason, before, after)
		}
	}
	if st := b.Stats(); st.Spans != 0 {
		t.Errorf("%d refused spans buffered", st.Spans)
	}
	if _, ok := b.Trace(TraceID{}); ok {
		t.Error("the all-zero trace is found")
	}
}

// 10⁵ spans in one trace: the ring holds what fits (it is bounded in
// bytes, whatever the traces), a read of the trace returns the oldest
// MaxSpansPerTrace spans buffered and counts the rest, and pinning it
// keeps as many and counts the rest as trace_full.
func TestHugeTrace(t *testing.T) {
	b, reg, clk := newBuffer(t, Options{MaxBytes: 4 << 20, MaxSpansPerTrace: 1000})
	const n = 100_000
	for i := range n {
		sp := build(1, s{uint64(i + 1), uint64(i), etcd, rng, KindServer, int64(i), int64(i) + 1, nil})[0]
		add(b, clk.Now(), sp)
		clk.Advance(time.Microsecond)
	}
	live := b.Stats().Spans
	if live >= n || live <= 1000 {
		t.Fatalf("%d spans buffered of %d", live, n)
	}
	tr, ok := b.Trace(traceID(1))
	if !ok || len(tr.Spans) != 1000 || tr.Complete {
		t.Fatalf("trace: ok=%v spans=%d complete=%v", ok, len(tr.Spans), tr.Complete)
	}
	if tr.Dropped != live-1000 {
		t.Errorf("trace's dropped count = %d, want %d", tr.Dropped, live-1000)
	}
	// The oldest buffered: the oldest of the shards' oldest.
	oldest := SpanID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for i := range b.shards {
		sh := &b.shards[i]
		if id := sh.recs[sh.tail&sh.rmask].spanID; bytes.Compare(id[:], oldest[:]) < 0 {
			oldest = id
		}
	}
	first := tr.Spans[0].SpanID
	for _, sp := range tr.Spans {
		if bytes.Compare(sp.SpanID[:], first[:]) < 0 {
			first = sp.SpanID
		}
	}
	if first != oldest {
		t.Errorf("oldest span returned %v, oldest buffered %v", first, oldest)
	}
	if !b.Pin(traceID(1), clk.Now().Add(time.Minute)) {
		t.Fatal("Pin refused")
	}
	if got := metric(t, reg, "sentinel_trace_spans_dropped_total", "reason", "trace_full"); got != float64(live-1000) {
		t.Errorf("dropped trace_full = %v, want %d", got, live-1000)
	}
	pinned, _ := b.Trace(traceID(1))
	if len(pinned.Spans) != 1000 || pinned.Dropped != live-1000 {
		t.Errorf("pinned trace: %d spans, %d dropped", len(pinned.Spans), pinned.Dropped)
	}
	p := CriticalPath(pinned) // its root was evicted: no path, no panic
	if pinned.Root >= 0 && p.Total != time.Duration(pinned.Spans[pinned.Root].Duration()) {
		t.Errorf("path %v", p.Total)
	}
	checkInvariants(t, b)
}

// Assemble and CriticalPath on malformed traces given directly: bounded,
// no loop, no panic, counted.
func TestMalformedTraces(t *testing.T) {
	deep := make([]s, 100_000) // one chain, 10⁵ deep: nothing recurses
	for i := range deep {
		deep[i] = s{uint64(i + 1), uint64(i), apis, "nest", KindInternal, int64(i), 2*100_000 - int64(i), nil}
	}
	wide := []s{{1, 0, apis, get, KindServer, 0, 100_000, nil}}
	for i := range 100_000 {
		wide = append(wide, s{uint64(i + 2), 1, etcd, rng, KindServer, int64(i), int64(i) + 1, nil})
	}
	for _, c := range []struct {
		name                            string
		spans                           []s
		root                            bool
		orphans, cycles, dups, complete int
	}{
		{"parent never arrives", []s{
			{1, 0, apis, get, KindServer, 0, 10, nil},
			{2, 99, etcd, rng, KindServer, 1, 9, nil},
			{3, 98, etcd, rng, KindServer, 2, 8, nil},
		}, true, 2, 0, 0, 0},
		{"cycle of two", []s{
			{1, 0, apis, get, KindServer, 0, 10, nil},
			{2, 3, etcd, rng, KindServer, 1, 9, nil},
			{3, 2, etcd, rng, KindServer, 2, 8, nil},
		}, true, 0, 2, 0, 0},
		{"own parent", []s{
			{1, 0, apis, get, KindServer, 0, 10, nil},
			{2, 2, etcd, rng, KindServer, 1, 9, nil},
		}, true, 0, 1, 0, 0},
		{"cycle and no root", []s{
			{2, 3, etcd, rng, KindServer, 1, 9, nil},
			{3, 4, etcd, rng, KindServer, 2, 8, nil},
			{4, 2, etcd, rng, KindServer, 2, 8, nil},
		}, false, 0, 3, 0, 0},
		{"duplicate span IDs", []s{
			{1, 0, apis, get, KindServer, 0, 10, nil},
			{2, 1, etcd, rng, KindServer, 1, 9, nil},
			{2, 1, etcd, "again", KindServer, 0, 10, nil},
			{1, 2, apis, "root again, under its child", KindServer, 0, 10, nil},
		}, true, 0, 0, 2, 1},
		{"duplicate root", []s{
			{1, 0, apis, get, KindServer, 0, 10, nil},
			{1, 0, apis, get, KindServer, 0, 10, nil},
		}, true, 0, 0, 1, 1},
		{"10⁵ deep", deep, true, 0, 0, 0, 1},
		{"10⁵ wide", wide, true, 0, 0, 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := Assemble(build(1, c.spans...))
			if (tr.Root >= 0) != c.root || tr.Orphans != c.orphans || tr.Cycles != c.cycles ||
				tr.Duplicates != c.dups || tr.Complete != (c.complete == 1) {
				t.Fatalf("root=%d orphans=%d cycles=%d duplicates=%d complete=%v", tr.Root, tr.Orphans, tr.Cycles, tr.Duplicates, tr.Complete)
			}
			checkPath(t, tr, CriticalPath(tr))
		})
	}
}

// checkPath checks what holds for every critical path: its sections lie
// within the root, in order, without overlap, and add up to its duration;
// each span's path time is the sum of its sections.
func checkPath(t testing.TB, tr Trace, p Path) {
	t.Helper()
	if tr.Root < 0 {
		if p.Total != 0 || len(p.Sections) != 0 {
			t.Fatalf("a trace without root has a path: %+v", p)
		}
		return
	}
	root := &tr.Spans[tr.Root]
	if p.Total != time.Duration(root.Duration()) {
		t.Fatalf("path total %v, root lasts %v", p.Total, root.Duration())
	}
	at := root.Start
	per := map[int]time.Duration{}
	for _, sec := range p.Sections {
		if sec.Start < at || sec.End <= sec.Start || sec.End > root.End {
			t.Fatalf("section %+v out of order (at %d, root ends %d)", sec, at, root.End)
		}
		at = sec.End
		per[sec.Span] += time.Duration(sec.End - sec.Start)
	}
	if p.Total > 0 && at != root.End {
		t.Fatalf("sections end at %d, root at %d", at, root.End)
	}
	var sum time.Duration
	for _, st := range p.Spans {
		if per[st.Span] != st.Time {
			t.Fatalf("span %d: path time %v, sections %v", st.Span, st.Time, per[st.Span])
		}
		sum += st.Time
	}
	if sum != p.Total {
		t.Fatalf("span times add up to %v of %v", sum, p.Total)
	}
	var svc time.Duration
	for _, sh := range p.Services {
		svc += sh.Time
	}
	if svc != p.Total {
		t.Fatalf("service times add up to %v of %v", svc, p.Total)
	}
}

// Spans of other traces given to Assemble are dropped, not mixed in.
func TestAssembleForeignSpans(t *testing.T) {
	spans := append(build(1, s{1, 0, apis, get, KindServer, 0, 10, nil}), build(2, s{2, 1, etcd, rng, KindServer, 1, 9, nil})...)
	tr := Assemble(spans)
	if len(tr.Spans) != 1 || tr.Dropped != 1 || tr.Complete {
		t.Fatalf("spans=%d dropped=%d complete=%v", len(tr.Spans), tr.Dropped, tr.Complete)
	}
	if got := strings.Count(FormatShares(CriticalPath(tr).Services), "etcd"); got != 0 {
		t.Fatal("another trace's span is on the path")
	}
}

// A trace that fills the whole default buffer with spans sharing a fat
// resource: reading or pinning it decodes at most MaxSpansPerTrace spans a
// shard, not every span found (each decoded span carries its resource's
// strings: 262,144 of them took 966 MiB before), and counts the rest.
func TestHugeTraceReadIsBounded(t *testing.T) {
	b, reg, clk := newBuffer(t, Options{})
	var attrs []Attribute
	for _, k := range attrKeys()[:16] {
		attrs = append(attrs, Attribute{Key: k, Value: strings.Repeat("v", 200)})
	}
	var res Resource
	res.Set(strings.Repeat("s", 200), attrs)
	w := b.Writer()
	for i := range 400_000 {
		if i%5000 == 0 { // a request at a time, over the shards
			w.Close()
			w = b.Writer()
		}
		w.Add(&res, &Span{TraceID: traceID(7), SpanID: spanID(uint64(i + 1)), Start: 1, End: 2}, clk.Now())
	}
	w.Close()
	live := b.Stats().Spans
	allocated := func(f func()) uint64 {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		f()
		runtime.ReadMemStats(&m1)
		return m1.TotalAlloc - m0.TotalAlloc
	}
	var tr Trace
	if n := allocated(func() { tr, _ = b.Trace(traceID(7)) }); n > 64<<20 {
		t.Errorf("Trace allocated %d MiB", n>>20)
	}
	if len(tr.Spans) != 1000 || tr.Dropped != live-1000 {
		t.Errorf("Trace: %d spans, %d dropped of %d", len(tr.Spans), tr.Dropped, live)
	}
	if n := allocated(func() { b.Pin(traceID(7), clk.Now().Add(time.Minute)) }); n > 64<<20 {
		t.Errorf("Pin allocated %d MiB", n>>20)
	}
	if got := metric(t, reg, "sentinel_trace_spans_dropped_total", "reason", "trace_full"); got != float64(live-1000) {
		t.Errorf("trace_full = %v, want %d", got, live-1000)
	}
}
