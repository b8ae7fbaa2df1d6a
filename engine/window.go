package engine

import (
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// RelativeAccuracy is the sketches' guarantee: a quantile they report is
// within 1% of the true value of an observation at that rank.
const RelativeAccuracy = 0.01

// maxSketchBins bounds a sketch's memory; with 1% accuracy 2048 bins span
// more than 1µs to 10 minutes without collapsing.
const maxSketchBins = 2048

// ExemplarsPerWindow is how many of the slowest exemplars a window keeps and
// an alert carries.
const ExemplarsPerWindow = 5

var sketchMapping = mustMapping()

func mustMapping() mapping.IndexMapping {
	m, err := mapping.NewLogarithmicMapping(RelativeAccuracy)
	if err != nil {
		panic(err) // a constant argument: cannot fail
	}
	return m
}

func newSketch() *ddsketch.DDSketch {
	return ddsketch.NewDDSketch(sketchMapping,
		store.NewCollapsingLowestDenseStore(maxSketchBins),
		store.NewCollapsingLowestDenseStore(maxSketchBins))
}

// Exemplar is one observed request kept because it was among the slowest.
type Exemplar struct {
	TraceID  [16]byte
	SpanID   [8]byte
	Duration time.Duration
	Time     time.Time
}

// topExemplars keeps the slowest exemplars, slowest first, without allocating.
type topExemplars struct {
	n int
	e [ExemplarsPerWindow]Exemplar
}

func (t *topExemplars) offer(traceID [16]byte, spanID [8]byte, d time.Duration, end time.Time) {
	if traceID == ([16]byte{}) {
		return
	}
	if t.n == len(t.e) && d <= t.e[t.n-1].Duration {
		return
	}
	i := t.n
	if i == len(t.e) {
		i--
	} else {
		t.n++
	}
	for ; i > 0 && t.e[i-1].Duration < d; i-- {
		t.e[i] = t.e[i-1]
	}
	t.e[i] = Exemplar{TraceID: traceID, SpanID: spanID, Duration: d, Time: end}
}

func (t *topExemplars) merge(o *topExemplars) {
	for i := 0; i < o.n; i++ {
		x := &o.e[i]
		t.offer(x.TraceID, x.SpanID, x.Duration, x.Time)
	}
}

func (t *topExemplars) list() []Exemplar {
	return append([]Exemplar(nil), t.e[:t.n]...)
}

// slot holds what was observed in one time slot (epoch*width, (epoch+1)*width]:
// a sketch of span durations, or for metrics rules the count per histogram
// bucket.
type slot struct {
	epoch   int64
	sketch  *ddsketch.DDSketch // nil until first used
	buckets []bucketCount      // metrics rules: sorted by upper bound
	total   uint64
	failed  uint64
	top     topExemplars
}

func (s *slot) reset(epoch int64) {
	s.epoch = epoch
	if s.sketch != nil {
		s.sketch.Clear()
	}
	s.buckets = s.buckets[:0]
	s.total, s.failed = 0, 0
	s.top = topExemplars{}
}

// ring maps instants onto the slots of a circular buffer covering a window
// plus room for late and early arrivals. Slots are left-open, as
// Prometheus's range selectors are: slot e holds (e*width, (e+1)*width].
type ring struct {
	width  int64 // slot width in nanoseconds
	n      int64 // number of slots
	newest int64 // the newest epoch written
}

// newRing holds the window, a slot for the one being filled, and room for
// observations up to maxFutureSkew ahead, so that a node whose clock runs
// ahead never pushes the oldest slots of the window out.
func newRing(length, slotWidth time.Duration) ring {
	ahead := int64((maxFutureSkew + slotWidth - 1) / slotWidth)
	return ring{width: int64(slotWidth), n: int64(length/slotWidth) + 2 + ahead, newest: minEpoch}
}

const minEpoch = -1 << 63

func (r *ring) epochOf(t int64) int64 { return floorDiv(t-1, r.width) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// maxFutureSkew is how far past the clock an observation may end: spans
// from a node whose clock runs ahead would otherwise push the window
// forward and make every honest observation look late.
const maxFutureSkew = time.Minute

// place returns the epoch and slot index for an instant; ok is false when
// the instant is older than anything the ring still holds, or too far in
// the future.
func (r *ring) place(end time.Time, clock Clock) (epoch int64, idx int, ok bool) {
	epoch = r.epochOf(end.UnixNano())
	if r.newest != minEpoch && epoch <= r.newest-r.n {
		return 0, 0, false
	}
	if epoch > r.newest {
		// A new slot: rare, so the clock is read here, not per observation.
		if end.After(clock.Now().Add(maxFutureSkew)) {
			return 0, 0, false
		}
		r.newest = epoch
	}
	i := epoch % r.n
	if i < 0 {
		i += r.n
	}
	return epoch, int(i), true
}

// inWindow reports whether slot epoch overlaps (start, end] (nanoseconds).
func (r *ring) inWindow(epoch, start, end int64) bool {
	return epoch != minEpoch && (epoch+1)*r.width > start && epoch*r.width < end
}

// window is a span or metrics rule's ring of slots.
type window struct {
	ring
	slots []slot
}

func newWindow(length, slotWidth time.Duration) window {
	w := window{ring: newRing(length, slotWidth)}
	w.slots = make([]slot, w.n)
	for i := range w.slots {
		w.slots[i].epoch = minEpoch
	}
	return w
}

// add records an observation; it reports false when the observation is
// older than anything the ring still holds, or too far in the future.
func (w *window) add(o *Observation, seconds float64, count uint64, clock Clock) bool {
	epoch, i, ok := w.place(o.End, clock)
	if !ok {
		return false
	}
	s := &w.slots[i]
	if s.epoch != epoch {
		if epoch < s.epoch {
			return false
		}
		s.reset(epoch)
	}
	if o.Source == SourceMetrics {
		s.buckets = addToBucket(s.buckets, o.UpperBound, count)
	} else {
		if s.sketch == nil {
			s.sketch = newSketch()
		}
		_ = s.sketch.AddWithCount(seconds, float64(count)) // seconds ≥ 0 and count ≥ 1: cannot fail
	}
	s.total += count
	if o.Failed {
		s.failed += count
	}
	s.top.offer(o.TraceID, o.SpanID, o.Duration, o.End)
	return true
}

// addExemplar keeps o among the slot's slowest exemplars, counting it too
// (an SLO's bad requests: the window holds no sketch).
func (w *window) addExemplar(o *Observation, clock Clock) {
	epoch, i, ok := w.place(o.End, clock)
	if !ok {
		return
	}
	s := &w.slots[i]
	if s.epoch != epoch {
		if epoch < s.epoch {
			return
		}
		s.reset(epoch)
	}
	s.total++
	s.top.offer(o.TraceID, o.SpanID, o.Duration, o.End)
}

// windowSummary is a window merged at one evaluation time.
type windowSummary struct {
	total, failed uint64
	top           topExemplars
	latest        int64 // the newest epoch seen; minEpoch if none
}

// merged is where a window's slots are folded at evaluation: the sketch for
// span rules, the bucket counts for metrics rules. It is reused.
type merged struct {
	sketch  *ddsketch.DDSketch
	buckets []bucketCount
}

// merge folds the slots of (now-length, now] into into (cleared first).
func (w *window) merge(now time.Time, length time.Duration, into *merged) windowSummary {
	into.sketch.Clear()
	into.buckets = into.buckets[:0]
	sum := windowSummary{latest: minEpoch}
	end := now.UnixNano()
	start := end - int64(length)
	for i := range w.slots {
		s := &w.slots[i]
		if s.epoch == minEpoch {
			continue
		}
		if s.epoch > sum.latest {
			sum.latest = s.epoch
		}
		if !w.inWindow(s.epoch, start, end) || s.total == 0 {
			continue
		}
		if s.sketch != nil {
			_ = into.sketch.MergeWith(s.sketch) // same mapping everywhere: cannot fail
		}
		for _, b := range s.buckets {
			into.buckets = addToBucket(into.buckets, b.upperBound, b.count)
		}
		sum.total += s.total
		sum.failed += s.failed
		sum.top.merge(&s.top)
	}
	return sum
}
