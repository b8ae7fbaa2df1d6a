package traces

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		err  string
	}{
		{"defaults", Options{}, ""},
		{"small", Options{MaxBytes: 1 << 10}, "under the minimum"},
		{"grace", Options{PinGrace: time.Second}, "pin grace 1s is under the minimum 10s"},
		{"spans", Options{MaxSpansPerTrace: 70000}, "max spans per trace 70000"},
		{"values", Options{MaxValueBytes: 300}, "max value bytes 300"},
		{"age", Options{MaxAge: -time.Second}, "negative max age"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.o.MaxBytes == 0 {
				c.o.MaxBytes = MinMaxBytes
			}
			_, err := New(c.o)
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("New: %v, want %q", err, c.err)
			}
		})
	}
}

func TestAttributeAllowlist(t *testing.T) {
	keys := attrKeys()
	if len(keys) > attrSlots/4 {
		t.Fatalf("%d keys for %d slots", len(keys), attrSlots)
	}
	tab := newAttrTable(keys)
	for i, k := range keys {
		if got := tab.lookup(k); got != i {
			t.Errorf("lookup(%q) = %d, want %d", k, got, i)
		}
		// Probe runs stay short, so a lookup costs a compare or two.
		probes := 1
		for h := attrHash(k); tab.keys[h] != k; h = (h + 1) & (attrSlots - 1) {
			probes++
		}
		if probes > 3 {
			t.Errorf("%q is found after %d probes", k, probes)
		}
		// Keys compare as words: a key that differs from this one in any
		// one byte, or is one byte longer or shorter, is another key.
		for j := range len(k) {
			near := []byte(k)
			near[j] ^= 0x20
			if got := tab.lookup(string(near)); got >= 0 && keys[got] != string(near) {
				t.Errorf("lookup(%q) = %q", near, keys[got])
			}
		}
		for _, near := range []string{k[:len(k)-1], k + "x", "x" + k} {
			if got := tab.lookup(near); got >= 0 && keys[got] != near {
				t.Errorf("lookup(%q) = %q", near, keys[got])
			}
		}
	}
	for _, k := range []string{"", "x", "http.request.body", "k8s.node.nam", "k8s.node.name.", "K8s.node.name"} {
		if Kept(k) != 0 {
			t.Errorf("%q is kept", k)
		}
	}
}

// What a buffered span keeps: IDs, times, kind, status, the allowlisted
// attributes (integers formatted), every string cut to the cap.
func TestAddKeepsCompactSpan(t *testing.T) {
	b, reg, c := newBuffer(t, Options{MaxValueBytes: 16})
	attrs := []Attribute{
		{Key: "k8s.node.name", Value: "cp-2"},
		{Key: "http.request.body", Value: "secret"},
		{Key: "http.status_code", Int: 200, IsInt: true},
		{Key: "rpc.grpc.status_code", Int: -1, IsInt: true},
		{Key: "http.target", Value: "/api/v1/namespaces/default?limit=500"},
		{Key: "user_agent.original", Value: "kubectl/ééééééééé"}, // cut inside a rune
	}
	in := Span{
		TraceID: traceID(1), SpanID: spanID(2), ParentSpanID: spanID(1),
		Service: "apiserver", Name: "GET /api/v1/namespaces/{:name}", Kind: KindServer, Status: StatusError,
		Start: ms(0), End: ms(12), Attributes: attrs,
	}
	add(b, c.Now(), in)
	// the caller reuses its memory at once
	attrs[0].Value = "overwritten"
	tr, ok := b.Trace(traceID(1))
	if !ok || len(tr.Spans) != 1 {
		t.Fatalf("Trace: %v %+v", ok, tr)
	}
	got := tr.Spans[0]
	want := Span{
		TraceID: traceID(1), SpanID: spanID(2), ParentSpanID: spanID(1),
		Service: "apiserver", Name: "GET /api/v1/name", Kind: KindServer, Status: StatusError,
		Start: ms(0), End: ms(12), Attributes: []Attribute{
			{Key: "k8s.node.name", Value: "cp-2"},
			{Key: "http.status_code", Value: "200"},
			{Key: "rpc.grpc.status_code", Value: "-1"},
			{Key: "http.target", Value: "/api/v1/namespac"},
			{Key: "user_agent.original", Value: "kubectl/éééé"},
		},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("kept\n%+v\nwant\n%+v", got, want)
	}
	if tr.Complete || tr.Orphans != 1 {
		t.Errorf("a span whose parent is missing: complete=%v orphans=%d", tr.Complete, tr.Orphans)
	}
	if n := metric(t, reg, "sentinel_trace_span_fields_truncated_total", "", ""); n != 3 {
		t.Errorf("truncated = %v, want 3", n)
	}
}

func TestAttributesPerSpanCapped(t *testing.T) {
	b, reg, c := newBuffer(t, Options{})
	var attrs []Attribute
	for i := range 1000 {
		attrs = append(attrs, Attribute{Key: "verb", Value: fmt.Sprint(i)})
	}
	sp := build(1, s{1, 0, apis, get, KindServer, 0, 1, attrs})
	add(b, c.Now(), sp[0])
	tr, _ := b.Trace(traceID(1))
	if n := len(tr.Spans[0].Attributes); n != MaxAttributes {
		t.Errorf("kept %d attributes, want %d", n, MaxAttributes)
	}
	if n := metric(t, reg, "sentinel_trace_span_fields_truncated_total", "", ""); n != 1000-MaxAttributes {
		t.Errorf("truncated = %v, want %d", n, 1000-MaxAttributes)
	}
}

func TestEvictionBySpace(t *testing.T) {
	b, reg, c := newBuffer(t, Options{})
	attrs := []Attribute{{Key: "http.target", Value: strings.Repeat("x", 100)}}
	const traces = 20000
	for i := range traces {
		sp := build(uint64(i+1), s{1, 0, apis, get, KindServer, 0, 1, attrs})
		add(b, c.Now(), sp[0])
	}
	checkInvariants(t, b)
	st := b.Stats()
	if st.CapacityBytes > MinMaxBytes {
		t.Errorf("buffer allocated %d bytes, cap %d", st.CapacityBytes, MinMaxBytes)
	}
	evicted := metric(t, reg, "sentinel_trace_spans_evicted_total", "reason", "space")
	if evicted == 0 || int(evicted)+st.Spans != traces {
		t.Errorf("evicted %v + held %d != added %d", evicted, st.Spans, traces)
	}
	if _, ok := b.Trace(traceID(1)); ok {
		t.Error("the oldest trace is still there")
	}
	if _, ok := b.Trace(traceID(traces)); !ok {
		t.Error("the newest trace is gone")
	}
}

func TestEvictionByAge(t *testing.T) {
	b, reg, c := newBuffer(t, Options{MaxAge: time.Minute})
	sp := build(1, s{1, 0, apis, get, KindServer, 0, 1, nil})
	add(b, c.Now(), sp[0])
	c.Advance(59 * time.Second)
	if _, ok := b.Trace(traceID(1)); !ok {
		t.Fatal("gone before its time")
	}
	c.Advance(2 * time.Second)
	if _, ok := b.Trace(traceID(1)); ok {
		t.Fatal("still there after MaxAge")
	}
	// Adding to its shard evicts it: writers take the shards in turn.
	for i := range len(b.shards) {
		add(b, c.Now(), build(uint64(i+2), s{1, 0, apis, get, KindServer, 0, 1, nil})...)
	}
	if n := metric(t, reg, "sentinel_trace_spans_evicted_total", "reason", "age"); n != 1 {
		t.Errorf("evicted by age = %v, want 1", n)
	}
	checkInvariants(t, b)
}

func TestPin(t *testing.T) {
	b, reg, c := newBuffer(t, Options{PinGrace: 10 * time.Second})
	spans := build(7,
		s{1, 0, apis, get, KindServer, 0, 100, nil},
		s{2, 1, apis, inner, KindInternal, 5, 95, nil},
		s{3, 2, apis, rng, KindClient, 10, 90, nil},
		s{4, 3, etcd, rng, KindServer, 12, 88, nil},
	)
	for i := range spans[:3] {
		add(b, c.Now(), spans[i])
	}
	if !b.Pin(traceID(7), c.now.Add(time.Minute)) {
		t.Fatal("Pin refused")
	}
	// Flood the buffer: the pinned trace survives.
	for i := range 20000 {
		sp := build(uint64(100+i), s{1, 0, apis, get, KindServer, 0, 1, nil})
		add(b, c.Now(), sp[0])
	}
	c.Advance(30 * time.Second)
	add(b, c.Now(), spans[3]) // etcd's later export
	tr, ok := b.Trace(traceID(7))
	if !ok || len(tr.Spans) != 4 || !tr.Complete {
		t.Fatalf("pinned trace: ok=%v spans=%d complete=%v", ok, len(tr.Spans), tr.Complete)
	}
	if n := metric(t, reg, "sentinel_trace_pinned_traces", "", ""); n != 1 {
		t.Errorf("pinned traces = %v", n)
	}
	// Pinning again extends; it never shortens.
	b.Pin(traceID(7), c.now.Add(-time.Hour))
	c.Advance(29 * time.Second)
	if !b.Pinned(traceID(7)) {
		t.Fatal("unpinned before until")
	}
	c.Advance(2 * time.Second)
	if b.Pinned(traceID(7)) {
		t.Fatal("still pinned after until")
	}
	if _, ok := b.Trace(traceID(7)); ok {
		t.Error("an expired pin's trace is still there")
	}
	if n := metric(t, reg, "sentinel_trace_pinned_traces", "", ""); n != 0 {
		t.Errorf("pinned traces = %v after expiry", n)
	}
	checkInvariants(t, b)
}

// A pin whose until has passed still takes spans for the grace period.
func TestPinGrace(t *testing.T) {
	b, _, c := newBuffer(t, Options{PinGrace: 10 * time.Second})
	spans := build(7, s{1, 0, apis, get, KindServer, 0, 100, nil}, s{2, 1, etcd, rng, KindServer, 10, 90, nil})
	add(b, c.Now(), spans[0])
	b.Pin(traceID(7), c.now.Add(-time.Minute))
	c.Advance(9 * time.Second)
	add(b, c.Now(), spans[1])
	if tr, _ := b.Trace(traceID(7)); len(tr.Spans) != 2 {
		t.Fatalf("within the grace period: %d spans", len(tr.Spans))
	}
	c.Advance(2 * time.Second)
	if b.Pinned(traceID(7)) {
		t.Fatal("pinned past the grace period")
	}
}

// A trace pinned before any of its spans arrived collects them.
func TestPinBeforeSpans(t *testing.T) {
	b, reg, c := newBuffer(t, Options{})
	b.Pin(traceID(7), c.now.Add(time.Minute))
	if _, ok := b.Trace(traceID(7)); ok {
		t.Fatal("a trace without spans is found")
	}
	sp := build(7, s{1, 0, apis, get, KindServer, 0, 100, nil})
	add(b, c.Now(), sp[0])
	if tr, ok := b.Trace(traceID(7)); !ok || len(tr.Spans) != 1 {
		t.Fatal("pinned span missing")
	}
	if n := metric(t, reg, "sentinel_trace_spans_pinned_total", "", ""); n != 1 {
		t.Errorf("pinned spans = %v", n)
	}
}

func TestPinCaps(t *testing.T) {
	b, reg, c := newBuffer(t, Options{MaxPinnedTraces: 2, MaxSpansPerTrace: 3, MaxPinnedBytes: 4 << 10})
	if !b.Pin(traceID(1), c.now.Add(time.Minute)) || !b.Pin(traceID(2), c.now.Add(time.Minute)) {
		t.Fatal("Pin refused under the cap")
	}
	if b.Pin(traceID(3), c.now.Add(time.Minute)) {
		t.Fatal("a third pin over MaxPinnedTraces=2")
	}
	if b.Pin(TraceID{}, c.now.Add(time.Minute)) {
		t.Fatal("an all-zero trace ID pinned")
	}
	if n := metric(t, reg, "sentinel_trace_pins_refused_total", "reason", "too_many"); n != 1 {
		t.Errorf("refused too_many = %v", n)
	}
	if n := metric(t, reg, "sentinel_trace_pins_refused_total", "reason", "zero_trace_id"); n != 1 {
		t.Errorf("refused zero_trace_id = %v", n)
	}
	// spans per pinned trace
	for i := range 10 {
		sp := build(1, s{uint64(i + 1), 0, apis, get, KindServer, 0, 1, nil})
		add(b, c.Now(), sp[0])
	}
	if tr, _ := b.Trace(traceID(1)); len(tr.Spans) != 3 || tr.Dropped != 7 || tr.Complete {
		t.Errorf("pinned trace holds %d spans, dropped %d, complete=%v", len(tr.Spans), tr.Dropped, tr.Complete)
	}
	if n := metric(t, reg, "sentinel_trace_spans_dropped_total", "reason", "pinned_trace_full"); n != 7 {
		t.Errorf("dropped pinned_trace_full = %v", n)
	}
	// pinned bytes
	big := []Attribute{}
	for range MaxAttributes {
		big = append(big, Attribute{Key: "url", Value: strings.Repeat("u", 200)})
	}
	for i := range 3 {
		sp := build(2, s{uint64(i + 1), 0, apis, get, KindServer, 0, 1, big})
		add(b, c.Now(), sp[0])
	}
	if n := metric(t, reg, "sentinel_trace_spans_dropped_total", "reason", "pinned_bytes"); n == 0 {
		t.Error("nothing dropped over MaxPinnedBytes")
	}
	if n := metric(t, reg, "sentinel_trace_pinned_bytes", "", ""); n > 4<<10 {
		t.Errorf("pinned bytes %v over the cap", n)
	}
	// after expiry, room again
	c.Advance(2 * time.Minute)
	if !b.Pin(traceID(3), c.now.Add(time.Minute)) {
		t.Fatal("Pin refused after the others expired")
	}
	if n := metric(t, reg, "sentinel_trace_pinned_traces", "", ""); n != 1 {
		t.Errorf("pinned traces = %v", n)
	}
}

// Many goroutines add, pin and read at once (run with -race); afterwards
// the index is consistent.
func TestConcurrent(t *testing.T) {
	b, _, c := newBuffer(t, Options{})
	until := c.now.Add(time.Hour)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range 5000 {
				tid := r.Uint64N(3000) + 1
				sp := build(tid, s{uint64(i + 1), r.Uint64N(uint64(i + 1)), apis, get, KindServer, 0, int64(r.IntN(100)), nil})
				add(b, c.Now(), sp[0])
				switch i % 100 {
				case 0:
					b.Pin(traceID(tid), until)
				case 1:
					if tr, ok := b.Trace(traceID(tid)); ok {
						CriticalPath(tr)
					}
				}
			}
		}()
	}
	wg.Wait()
	checkInvariants(t, b)
}

// Random traffic over a small buffer, checked against the spans added:
// whatever Trace returns belongs to the trace, in the order added, and the
// index stays consistent through evictions and pins.
func TestBufferModel(t *testing.T) {
	b, _, c := newBuffer(t, Options{MaxSpansPerTrace: 50, MaxAge: time.Minute})
	r := rand.New(rand.NewPCG(1, 2))
	added := map[TraceID][]SpanID{}
	for i := range 50000 {
		tid := r.Uint64N(500) + 1
		n := r.IntN(200)
		sp := build(tid, s{uint64(i + 1), 1, apis, get, KindServer, 0, 1,
			[]Attribute{{Key: "url", Value: strings.Repeat("v", n)}}})
		add(b, c.Now(), sp[0])
		added[sp[0].TraceID] = append(added[sp[0].TraceID], sp[0].SpanID)
		if i%997 == 0 {
			b.Pin(traceID(tid), c.now.Add(time.Duration(r.IntN(30))*time.Second))
		}
		if i%101 == 0 {
			c.Advance(time.Duration(r.IntN(3000)) * time.Millisecond)
		}
		if i%5000 == 0 {
			checkInvariants(t, b)
		}
	}
	checkInvariants(t, b)
	for tid, ids := range added {
		tr, ok := b.Trace(tid)
		if !ok {
			continue
		}
		if len(tr.Spans) > 50 {
			t.Fatalf("trace %v holds %d spans over the cap", tid, len(tr.Spans))
		}
		pos := map[SpanID]bool{}
		for _, id := range ids {
			pos[id] = true
		}
		for _, sp := range tr.Spans {
			if sp.TraceID != tid || !pos[sp.SpanID] {
				t.Fatalf("trace %v returns span %v it was not given", tid, sp.SpanID)
			}
		}
	}
}

// A receiver sets one Resource per ResourceSpans and reuses it: each span
// carries its own resource's service and attributes, resource attributes
// first.
func TestResource(t *testing.T) {
	b, _, c := newBuffer(t, Options{})
	var res Resource
	spans := build(9,
		s{1, 0, "ignored", get, KindServer, 0, 10, []Attribute{{Key: "verb", Value: "get"}}},
		s{2, 1, "ignored", rng, KindServer, 1, 9, []Attribute{{Key: "rpc.method", Value: "Range", Kept: Kept("rpc.method")}}},
		s{3, 1, "ignored", "none", KindInternal, 2, 3, []Attribute{{Key: "os.type", Value: "linux", Kept: Kept("os.type")}}},
	)
	if Kept("os.type") != 0 || Kept("rpc.method") == 0 {
		t.Fatalf("Kept(os.type) = %d, Kept(rpc.method) = %d: want 0 and not 0", Kept("os.type"), Kept("rpc.method"))
	}
	res.Set(apis, []Attribute{{Key: "k8s.node.name", Value: "cp-1"}, {Key: "os.type", Value: "linux"}})
	b.Add(&res, &spans[0], c.Now())
	res.Set(etcd, []Attribute{{Key: "host.name", Value: "cp-2"}, {Key: "cloud.availability_zone", Value: "b"}})
	b.Add(&res, &spans[1], c.Now())
	b.Add(nil, &spans[2], c.Now())
	tr, _ := b.Trace(traceID(9))
	var got []string
	for _, sp := range tr.Spans {
		got = append(got, fmt.Sprintf("%s/%s %v", sp.Service, sp.Name, sp.Attributes))
	}
	want := []string{
		"apiserver/GET /api/v1/namespaces/{:name} [{k8s.node.name cp-1 0 false 0} {verb get 0 false 0}]",
		"etcd/etcdserverpb.KV/Range [{host.name cp-2 0 false 0} {cloud.availability_zone b 0 false 0} {rpc.method Range 0 false 0}]",
		"/none []",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

// Add allocates nothing in steady state: the buffer full and evicting, a
// new resource encoded into memory the Resource already has.
func TestAddDoesNotAllocate(t *testing.T) {
	b, _, c := newBuffer(t, Options{})
	req, res := request()
	n := uint64(0)
	add := func() {
		r, k := interleave(n)
		binary.BigEndian.PutUint64(req[k].TraceID[8:], r+1)
		res[k].Set(req[k].Service, res[k].attrs) // as a receiver does per ResourceSpans
		b.Add(res[k], &req[k], c.Now())
		n++
	}
	for b.sum(func(sh *shard) uint64 { return sh.evicted[evictSpace] }) == 0 {
		add()
	}
	if allocs := testing.AllocsPerRun(10000, add); allocs != 0 {
		t.Fatalf("Add allocates %v times per span", allocs)
	}
}

// Each buffer has its own metrics, all sentinel_-prefixed; two buffers
// live side by side.
func TestMetrics(t *testing.T) {
	b1, reg, _ := newBuffer(t, Options{})
	_, _, _ = newBuffer(t, Options{})
	sp := build(1, s{1, 0, apis, get, KindServer, 0, 1, nil})
	add(b1, time.Unix(0, base), sp...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "sentinel_trace_") {
			t.Errorf("metric %s", mf.GetName())
		}
		names = append(names, mf.GetName())
	}
	if len(names) != 10 {
		t.Errorf("metrics: %v", names)
	}
	if n := metric(t, reg, "sentinel_trace_spans_buffered_total", "", ""); n != 1 {
		t.Errorf("buffered = %v", n)
	}
}

// A span of a trace whose pin has expired, but is still in the pins'
// snapshot (nothing swept it yet), goes to the ring: it is encoded for the
// pinned trace first, and written to the ring after all, attributes and
// all.
func TestExpiredPinSpanGoesToRing(t *testing.T) {
	b, _, c := newBuffer(t, Options{PinGrace: 10 * time.Second})
	spans := build(5,
		s{1, 0, apis, get, KindServer, 0, 100, []Attribute{{Key: "verb", Value: "get"}}},
		s{2, 1, etcd, rng, KindServer, 10, 90, []Attribute{{Key: "rpc.method", Value: "Range"}}})
	add(b, c.Now(), spans[0])
	if !b.Pin(traceID(5), c.Now()) {
		t.Fatal("Pin refused")
	}
	c.Advance(11 * time.Second)
	before := b.Stats().Spans
	add(b, c.Now(), spans[1])
	if got := b.Stats().Spans; got != before+1 {
		t.Fatalf("%d spans in the ring, want %d", got, before+1)
	}
	tr, ok := b.Trace(traceID(5))
	if !ok || len(tr.Spans) != 1 || fmt.Sprint(tr.Spans[0].Attributes) != fmt.Sprint([]Attribute{{Key: "rpc.method", Value: "Range"}}) {
		t.Fatalf("trace after the pin: ok=%v %+v", ok, tr.Spans)
	}
	checkInvariants(t, b)
}

// PinnedTrace answers for pinned traces only: a trace that is only in the
// ring is not looked for (no scan), and a pinned one reads as Trace reads it.
func TestPinnedTrace(t *testing.T) {
	b, _, c := newBuffer(t, Options{})
	add(b, c.Now(), build(1, s{1, 0, apis, get, KindServer, 0, 10, nil}, s{2, 1, etcd, rng, KindServer, 1, 9, nil})...)
	if _, ok := b.Trace(traceID(1)); !ok {
		t.Fatal("the buffered trace is not found")
	}
	if _, ok := b.PinnedTrace(traceID(1)); ok {
		t.Fatal("PinnedTrace finds an unpinned trace")
	}
	b.Pin(traceID(1), c.Now().Add(time.Minute))
	got, ok := b.PinnedTrace(traceID(1))
	want, _ := b.Trace(traceID(1))
	if !ok || len(got.Spans) != 2 || fmt.Sprint(got.Spans) != fmt.Sprint(want.Spans) {
		t.Fatalf("PinnedTrace: ok=%v %v, Trace: %v", ok, got.Spans, want.Spans)
	}
	if _, ok := b.PinnedTrace(TraceID{}); ok {
		t.Fatal("the zero trace is found")
	}
}
