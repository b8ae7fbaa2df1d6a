package scrape

import (
	"bytes"
	"math"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/kube-sentinel/sentinel/engine"
)

// Request counters (apiserver_request_total{code,verb,resource,...}) feed
// availability SLOs: every scrape's increase of a counter series is one
// observation of that many requests, failed when the series' code label
// is an HTTP 5xx.
//
// Only counters with a code label are read: a counter without one can
// never count a failed request, so an SLO over it could only ever burn 0×,
// and a real apiserver /metrics has thousands of such counters (workqueue,
// watch events, etcd, client-go) whose label sets would cost a
// textparse.Labels call (an allocation) and a map entry at every scrape for
// nothing. The filter is a byte search of the sample's text for "code",
// which is free next to the parse; only a sample that passes it has its
// labels read.

// codeLabel is the label whose value is the request's HTTP status code, as
// on apiserver_request_total and rest_client_requests_total.
const codeLabel = "code"

// totalSuffix ends the name of a counter sample: the text format names the
// family after it, OpenMetrics names the family without it.
const totalSuffix = "_total"

// counterState is what the previous scrape showed of one counter series.
type counterState struct {
	lset   labels.Labels // the series' labels; __name__ is the full name (x_total)
	last   float64       // the value at the previous scrape
	base   float64       // the value the observations so far account for: last, less a fraction not yet emitted
	failed bool          // code is 5xx
	// skip marks a series that has "code" in its text but no code label
	// (grpc_code="OK"): remembered so that its labels are read once.
	skip bool
	gen  uint64
}

// curCounter is one counter series of the scrape being read: its state
// when the previous scrape had it, else its labels.
type curCounter struct {
	hash uint64
	st   *counterState
	lset labels.Labels
	v    float64
}

// isCounter says whether a sample named name, read in the family famName
// of type famType, is a counter: its family is declared a counter (the
// text format's "# TYPE x_total counter", or OpenMetrics' "# TYPE x
// counter" for x_total), or it is untyped (undeclared, or declared
// untyped/unknown) and its name ends in _total.
func isCounter(name, famName []byte, famType model.MetricType) bool {
	total := bytes.HasSuffix(name, []byte(totalSuffix))
	if !total && famType != model.MetricTypeCounter {
		return false // the common case: a histogram bucket, a gauge
	}
	inFamily := len(famName) > 0 && (bytes.Equal(name, famName) ||
		(total && bytes.Equal(name[:len(name)-len(totalSuffix)], famName)))
	if !inFamily {
		return total
	}
	switch famType {
	case model.MetricTypeCounter:
		return true
	case model.MetricTypeUnknown:
		return total
	}
	return false // a gauge, a histogram, a summary named _total
}

// addCounter reads a counter sample into h.curCtr when it has a code
// label. A series is known by the hash of its text (name and labels as the
// target writes them, which a target does not reorder from scrape to
// scrape), so that the labels of a series the previous scrape had are not
// read again: in the steady state a counter costs a hash and a map lookup,
// and no allocation.
func (h *histograms) addCounter(p textparse.Parser, series []byte, v float64) {
	if !bytes.Contains(series, []byte(codeLabel)) {
		return
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return // unreadable: the series is forgotten
	}
	hash := xxhash.Sum64(series)
	if st := h.counters[hash]; st != nil {
		h.curCtr = append(h.curCtr, curCounter{hash: hash, st: st, v: v})
		return
	}
	p.Labels(&h.lset)
	h.curCtr = append(h.curCtr, curCounter{hash: hash, lset: h.lset, v: v})
}

// applyCounters emits each counter series' increase since the previous
// scrape, with the same rules as histograms: the first scrape of a series,
// a decrease (a counter reset) and a scrape after a gap longer than the
// staleness bound are baselines; a series the scrape no longer shows is
// forgotten.
func (h *histograms) applyCounters(now time.Time, stale bool, target *targetLabels, observer engine.Observer) (n int) {
	for i := range h.curCtr {
		c := &h.curCtr[i]
		st := c.st
		switch {
		case st == nil:
			if h.counters[c.hash] != nil {
				continue // a new series twice in one scrape: the first counts
			}
			st = newCounterState(c.lset)
			h.counters[c.hash] = st
			st.last, st.base = c.v, c.v
		case st.gen == h.gen:
			continue // the same series twice in one scrape: the first counts
		case st.skip:
		case stale || c.v < st.last:
			st.last, st.base = c.v, c.v
		default:
			n += h.emitCounter(st, c.v, now, target, observer)
		}
		st.gen = h.gen
	}
	for k, s := range h.counters {
		if s.gen != h.gen {
			delete(h.counters, k)
		}
	}
	return n
}

func newCounterState(lset labels.Labels) *counterState {
	code := lset.Get(codeLabel)
	if code == "" {
		return &counterState{skip: true}
	}
	return &counterState{lset: lset, failed: code[0] == '5'}
}

// emitCounter sends the increase of a series from its previous value to v
// as one observation of that many requests. Only whole requests are sent;
// a fraction (a counter of floats) is carried to the next scrape.
func (h *histograms) emitCounter(st *counterState, v float64, now time.Time, target *targetLabels, observer engine.Observer) int {
	st.last = v
	inc := v - st.base
	if inc < 1 {
		return 0
	}
	count := uint64(min(inc, 1<<62))
	st.base += float64(count)
	if v-st.base >= 1 || st.base > v {
		st.base = v // a clamped or imprecise (past 2^53) increase: carry nothing
	}
	h.view = seriesLabels{series: &st.lset, target: target}
	h.obs = engine.Observation{
		Source:     engine.SourceMetrics,
		End:        now,
		Count:      count,
		UpperBound: math.Inf(1),
		Failed:     st.failed,
		Labels:     &h.view,
	}
	observer.Observe(&h.obs)
	return 1
}
