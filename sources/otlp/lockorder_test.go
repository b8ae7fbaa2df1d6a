package otlp

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/traces"
)

// pinningObserver pins each observed span's trace, as the engine pins
// exemplar traces while it holds a rule's lock (which Observe takes):
// Pin locks every shard of the buffer.
type pinningObserver struct {
	buf  *traces.Buffer
	pins int
}

func (o *pinningObserver) Observe(obs *engine.Observation) {
	if o.buf.Pin(traces.TraceID(obs.TraceID), time.Now().Add(time.Minute)) {
		o.pins++
	}
}

// The converter never hands a span to the observer while it holds one of
// the buffer's shards: an observer that pins (locks every shard) from
// Observe would wait for itself. Each request's spans are pinned as they
// are observed, and its spans that the buffer takes afterwards join the
// pins.
func TestObserveNeverUnderABufferLock(t *testing.T) {
	buf, err := traces.New(traces.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := &pinningObserver{buf: buf}
	c := newConverter(DefaultLimits().MaxAttributeValueBytes, nil, buf)
	body := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(5, 6)), 40), false)
	done := make(chan int)
	go func() {
		if _, err := c.dec.Decode(body, DefaultLimits().wire()); err != nil {
			t.Error(err)
		}
		accepted, _ := c.convert(o, time.Now())
		done <- accepted
	}()
	select {
	case accepted := <-done:
		if accepted == 0 || o.pins == 0 {
			t.Fatalf("accepted %d spans, pinned %d", accepted, o.pins)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: Observe was called while the converter held a buffer shard")
	}
	if st := buf.Stats(); st.PinnedTraces == 0 || st.PinnedBytes == 0 {
		t.Fatalf("nothing pinned: %+v", st)
	}
}
