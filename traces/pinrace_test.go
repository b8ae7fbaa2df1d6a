package traces

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type atomicClock struct{ ns atomic.Int64 }

func (c *atomicClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *atomicClock) add(d time.Duration) { c.ns.Add(int64(d)) }

func newRacingBuffer(t *testing.T) (*Buffer, *atomicClock) {
	c := &atomicClock{}
	c.ns.Store(base)
	b, err := New(Options{Now: c.Now, Registerer: prometheus.NewRegistry(), MaxBytes: MinMaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

// A span begun while its trace's pin is in the snapshot, committed after
// a sweep dropped that pin, goes to the ring (it went to the dropped
// pinnedTrace, lost, its bytes counted for ever). The sleep only gives
// the sweeping goroutine time to get there; the test cannot fail for
// being slow.
func TestSpanBegunUnderASweptPin(t *testing.T) {
	b, c := newRacingBuffer(t)
	id := traceID(1)
	b.Pin(id, c.Now()) // until = now + 30s grace
	received := c.Now().Add(5 * time.Second)
	w := b.Writer()
	res := &Resource{}
	res.Set("svc", nil)
	sp := Span{TraceID: id, SpanID: spanID(1), Name: "x", Start: ms(1), End: ms(2)}
	w.Begin(res, &sp, received) // sees the pin
	c.add(time.Minute)          // pin expired
	done := make(chan struct{})
	go func() { b.Pin(traceID(2), c.Now()); close(done) }() // sweeps, drops pin 1; then blocks on w's shard
	time.Sleep(100 * time.Millisecond)
	w.Commit() // addPinned: received <= until, so kept in the dropped pin
	w.Close()
	<-done
	if _, ok := b.Trace(id); !ok {
		t.Errorf("span lost: neither pinned nor in the ring (spans in ring %d)", b.Stats().Spans)
	}
	c.add(time.Hour)
	b.Pinned(traceID(2)) // sweeps pin 2
	st := b.Stats()
	t.Logf("stats %+v", st)
	if st.PinnedTraces == 0 && st.PinnedBytes != 0 {
		t.Errorf("no pins but PinnedBytes = %d (leaked for ever)", st.PinnedBytes)
	}
}

// Pin's scan waits for shard locks; if its pin expires and is swept in the
// meantime, Pin keeps nothing (it filled the dropped pinnedTrace and
// counted its bytes for ever).
func TestPinSweptDuringItsScan(t *testing.T) {
	b, c := newRacingBuffer(t)
	id := traceID(1)
	res := &Resource{}
	res.Set("svc", nil)
	for i := range 3 {
		b.Add(res, &Span{TraceID: id, SpanID: spanID(uint64(i + 1)), Name: "x", Start: ms(1), End: ms(2)}, c.Now())
	}
	ws := make([]Writer, 0, 8)
	for range 8 {
		ws = append(ws, b.Writer())
	}
	done := make(chan bool)
	go func() { done <- b.Pin(id, c.Now()) }()
	time.Sleep(100 * time.Millisecond)
	c.add(time.Minute)
	b.Pinned(id) // sweeps the pin
	for i := range ws {
		ws[i].Close()
	}
	t.Logf("Pin returned %v", <-done)
	c.add(time.Hour)
	b.Pin(traceID(9), c.Now()) // sweeps again
	b.Pinned(traceID(9))
	c.add(time.Hour)
	b.Pinned(traceID(9))
	st := b.Stats()
	t.Logf("stats %+v", st)
	if st.PinnedTraces == 0 && st.PinnedBytes != 0 {
		t.Errorf("no pins but PinnedBytes = %d", st.PinnedBytes)
	}
}
