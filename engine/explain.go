package engine

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kube-sentinel/sentinel/rules"
)

// What slow requests have in common (docs/explain.md): per series and
// slot, for each explaining attribute, a Space-Saving sketch of its values
// among all requests and one among the slow ones (slower than the
// threshold). At evaluation the slots of the window are merged and a value
// is named when its share of the slow requests exceeds its share of all
// requests by more than chance explains for the counts seen.

const (
	// explainCounters is the Space-Saving sketch's size k: per attribute
	// and slot, the k most frequent values are counted, each within
	// (requests in the slot)/k of its true count.
	explainCounters = 8
	// ExplainValueBytes caps a value the sketches keep; longer ones are
	// cut (at a UTF-8 boundary) and counted.
	ExplainValueBytes = 64
	// explainSlotsPerWindow: the comparison needs no finer time than this.
	explainSlotsPerWindow = 6
	// minExplainSlot keeps the ring's room for clocks running ahead
	// (maxFutureSkew) to 4 slots: with the window's 6 and 2 more, a series
	// has at most 12 explain slots.
	minExplainSlot = maxFutureSkew / 4

	// ExplainAlpha bounds the chance that slow_requests_by names anything
	// in an evaluation where slow requests are in truth a random sample of
	// all requests (Bonferroni over every value tested).
	ExplainAlpha = 0.001
	// explainMinSlow is the fewest slow requests a window needs before
	// anything is named: fewer are an anecdote, not a pattern.
	explainMinSlow = 10
	// explainMinLift is the least difference between a value's share of
	// the slow requests and of all requests for it to be named: with many
	// requests a difference of a point is significant but tells nothing.
	explainMinLift = 0.10
	// maxSlowRequestsBy is how many values the annotation names at most.
	maxSlowRequestsBy = 3
)

// heavyHitters is a Space-Saving sketch (Metwally et al. 2005) of fixed
// size: each value held is counted within err of its true count (over,
// never under), and a value not held has a count of at most the smallest
// held. The values' tags (length and last bytes) sit together, so that a
// lookup reads one cache line and compares a value only when its tag is
// the same.
type heavyHitters struct {
	used  int
	tag   [explainCounters]uint64
	count [explainCounters]uint64
	err   [explainCounters]uint64
	n     [explainCounters]uint8
	val   [explainCounters][ExplainValueBytes]byte
}

// tagOf packs a value's length and its last seven bytes, where the names
// of nodes, zones and instances usually differ: values of up to seven
// bytes are equal when their tags are.
func tagOf(v string) uint64 {
	n := len(v)
	if n >= 8 {
		_ = v[n-8]
		// The shifts of bytes at constant offsets compile to one load.
		t := uint64(v[n-8]) | uint64(v[n-7])<<8 | uint64(v[n-6])<<16 | uint64(v[n-5])<<24 |
			uint64(v[n-4])<<32 | uint64(v[n-3])<<40 | uint64(v[n-2])<<48 | uint64(v[n-1])<<56
		return t>>8 | uint64(n)<<56
	}
	t := uint64(n) << 56
	for i := 0; i < n; i++ {
		t |= uint64(v[i]) << (8 * i)
	}
	return t
}

func (h *heavyHitters) value(i int) string { return string(h.val[i][:h.n[i]]) }

// add counts v; evicted says a held value made room for it.
func (h *heavyHitters) add(v string, count uint64) (evicted bool) {
	tag := tagOf(v)
	short := len(v) < 8
	for i := 0; i < h.used; i++ {
		if h.tag[i] == tag && (short || string(h.val[i][:len(v)]) == v) {
			h.count[i] += count
			return false
		}
	}
	i := h.used
	if i < explainCounters {
		h.used++
		h.count[i], h.err[i] = count, 0
	} else {
		i = 0
		for j := 1; j < explainCounters; j++ {
			if h.count[j] < h.count[i] {
				i = j
			}
		}
		h.err[i] = h.count[i]
		h.count[i] += count
		evicted = true
	}
	h.tag[i] = tag
	h.n[i] = uint8(copy(h.val[i][:], v))
	return evicted
}

// min is the most a value not held may have been counted.
func (h *heavyHitters) min() uint64 {
	if h.used < explainCounters {
		return 0
	}
	return slices.Min(h.count[:])
}

// find returns the index of v, or -1.
func (h *heavyHitters) find(v string) int {
	tag := tagOf(v)
	for i := 0; i < h.used; i++ {
		if h.tag[i] == tag && h.value(i) == v {
			return i
		}
	}
	return -1
}

// explainDim is one attribute's counts in one slot: requests that had it,
// slow ones among them, and the sketches of its values.
type explainDim struct {
	allN, slowN uint64
	all, slow   heavyHitters
}

type explainSlot struct {
	epoch int64
	dims  []explainDim // nil until first used, then reused
}

// explainRing is a series' ring of explain slots.
type explainRing struct {
	ring
	slots []explainSlot
}

// explainer is what a rule needs to explain its series: the attributes and
// what counts as slow. It is the rule's, used under the rule's lock.
type explainer struct {
	dims      []string
	threshold time.Duration // a request slower than this is slow
	window    time.Duration
	width     time.Duration

	// An attribute the rule's requests do not carry (a default such as
	// cloud.region where nobody sets it) would cost a lookup per request
	// for nothing: after explainAbsentAfter misses in a row it is looked
	// up in one request of explainProbeEvery only, until it is found
	// again. Which requests are probed depends on a counter, not on the
	// request, so slow and all requests are thinned alike and the shares
	// compared stay what they were.
	misses []uint32 // per attribute: lookups in a row that found nothing
	tick   uint32
}

const (
	explainAbsentAfter = 256
	explainProbeEvery  = 64
)

// newExplainer returns nil when the rule explains nothing (explain_by: [],
// or an SLO without a latency).
func newExplainer(dims []string, threshold, window, minWidth time.Duration) *explainer {
	if len(dims) == 0 || threshold <= 0 || window <= 0 {
		return nil
	}
	width := max(window/explainSlotsPerWindow, minWidth, minExplainSlot)
	return &explainer{dims: dims, threshold: threshold, window: window, width: width, misses: make([]uint32, len(dims))}
}

func (x *explainer) newRing() explainRing {
	r := explainRing{ring: newRing(x.window, x.width)}
	r.slots = make([]explainSlot, r.n)
	for i := range r.slots {
		r.slots[i].epoch = minEpoch
	}
	return r
}

// slow says whether o was slower than the threshold: for a histogram
// bucket, whether it reaches past it (as an SLO's bad requests).
func (x *explainer) slow(o *Observation) bool {
	if o.Source == SourceMetrics {
		return o.UpperBound > x.threshold.Seconds()
	}
	return o.Duration > x.threshold
}

// add counts o's attribute values. The hot path: no allocation after the
// slot's first use.
func (x *explainer) add(er *explainRing, o *Observation, count uint64, clock Clock, m *metrics) {
	epoch, i, ok := er.place(o.End, clock)
	if !ok {
		return
	}
	s := &er.slots[i]
	if s.epoch != epoch {
		if epoch < s.epoch {
			return
		}
		s.epoch = epoch
		if s.dims == nil {
			s.dims = make([]explainDim, len(x.dims))
		} else {
			clear(s.dims)
		}
	}
	slow := x.slow(o)
	x.tick++
	probe := x.tick%explainProbeEvery == 0
	for d, name := range x.dims {
		if x.misses[d] >= explainAbsentAfter && !probe {
			continue
		}
		v, ok := o.Labels.Get(name)
		if !ok || v == "" {
			if x.misses[d] < explainAbsentAfter {
				x.misses[d]++
			}
			continue
		}
		x.misses[d] = 0
		if len(v) > ExplainValueBytes {
			v = truncateUTF8(v, ExplainValueBytes)
			m.explainTruncated.Add(1)
		}
		dim := &s.dims[d]
		dim.allN += count
		if dim.all.add(v, count) {
			m.explainEvicted.Add(1)
		}
		if slow {
			dim.slowN += count
			if dim.slow.add(v, count) {
				m.explainEvicted.Add(1)
			}
		}
	}
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// SlowShare is a value that slow requests have in common: its share of
// the slow requests against its share of all requests in the window.
type SlowShare struct {
	Attribute string
	Value     string
	SlowShare float64
	AllShare  float64
	// Evidence is -ln of the bound on the chance of so many slow requests
	// having the value if slow requests were a random sample of all:
	// larger is stronger.
	Evidence float64

	dim       int    // the attribute's place in the rule's list: ties go to the first
	slow, all uint64 // the counts behind the shares
}

// candidate is a value merged over the window's slots: slow is a lower
// bound of its slow requests, all an upper bound of all its requests.
type candidate struct {
	dim       int
	value     string
	slow, all uint64
}

// explain merges the window (now-window, now] and returns the values that
// stand out, strongest first, at most maxSlowRequestsBy.
func (x *explainer) explain(er *explainRing, now time.Time) []SlowShare {
	end := now.UnixNano()
	start := end - int64(x.window)
	var out []SlowShare
	tested := 0
	type dimSum struct {
		allN, slowN uint64
		cands       []candidate
	}
	sums := make([]dimSum, len(x.dims))
	for d := range x.dims {
		ds := &sums[d]
		index := map[string]int{}
		for i := range er.slots {
			s := &er.slots[i]
			if s.dims == nil || !er.inWindow(s.epoch, start, end) {
				continue
			}
			dim := &s.dims[d]
			ds.allN += dim.allN
			ds.slowN += dim.slowN
			for j := 0; j < dim.slow.used; j++ {
				v := dim.slow.value(j)
				k, ok := index[v]
				if !ok {
					k = len(ds.cands)
					index[v] = k
					ds.cands = append(ds.cands, candidate{dim: d, value: v})
				}
				ds.cands[k].slow += dim.slow.count[j] - dim.slow.err[j] // a lower bound
			}
		}
		// All requests of each candidate: an upper bound, a slot that did
		// not hold the value counting its sketch's smallest count.
		for k := range ds.cands {
			cd := &ds.cands[k]
			for i := range er.slots {
				s := &er.slots[i]
				if s.dims == nil || !er.inWindow(s.epoch, start, end) {
					continue
				}
				dim := &s.dims[d]
				if j := dim.all.find(cd.value); j >= 0 {
					cd.all += dim.all.count[j]
				} else {
					cd.all += dim.all.min()
				}
			}
			cd.all = min(max(cd.all, cd.slow), ds.allN)
		}
		if ds.slowN >= explainMinSlow {
			tested += len(ds.cands)
		}
	}
	if tested == 0 {
		return nil
	}
	// Named when the bound on the chance is below ExplainAlpha / tested.
	need := math.Log(float64(tested) / ExplainAlpha)
	for d := range sums {
		ds := &sums[d]
		if ds.slowN < explainMinSlow || ds.allN == 0 {
			continue
		}
		for _, cd := range ds.cands {
			q := float64(cd.slow) / float64(ds.slowN)
			p := float64(cd.all) / float64(ds.allN)
			if q-p < explainMinLift {
				continue
			}
			ev := float64(ds.slowN) * klBernoulli(q, p)
			if ev < need {
				continue
			}
			out = append(out, SlowShare{Attribute: x.dims[d], Value: cd.value, SlowShare: q, AllShare: p, Evidence: ev, dim: d,
				slow: cd.slow, all: cd.all})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.Evidence != b.Evidence {
			return a.Evidence > b.Evidence
		}
		if a.SlowShare-a.AllShare != b.SlowShare-b.AllShare {
			return a.SlowShare-a.AllShare > b.SlowShare-b.AllShare
		}
		if a.dim != b.dim {
			return a.dim < b.dim
		}
		return a.Value < b.Value
	})
	out = dropAliases(out)
	if len(out) > maxSlowRequestsBy {
		out = out[:maxSlowRequestsBy]
	}
	return out
}

// dropAliases keeps one of the values of different attributes that count
// exactly the same slow and the same total requests: as far as the counts
// can tell they describe the same requests (the zone of a node that is
// alone in its zone), and naming both says nothing more. The one kept is
// the stronger, or the earlier in explain_by when they tie.
func dropAliases(out []SlowShare) []SlowShare {
	kept := out[:0]
	for _, v := range out {
		alias := false
		for _, k := range kept {
			if k.dim != v.dim && k.slow == v.slow && k.all == v.all {
				alias = true
				break
			}
		}
		if !alias {
			kept = append(kept, v)
		}
	}
	return kept
}

// klBernoulli is the Kullback-Leibler divergence of Bernoulli(q) from
// Bernoulli(p), for q > p: n·KL(q‖p) is the Chernoff-Hoeffding exponent of
// the chance that n draws of probability p have a share of at least q,
// with or without replacement (Hoeffding 1963, §6).
func klBernoulli(q, p float64) float64 {
	if p <= 0 {
		return math.Inf(1)
	}
	kl := 0.0
	if q > 0 {
		kl += q * math.Log(q/p)
	}
	if q < 1 {
		if p >= 1 {
			return 0
		}
		kl += (1 - q) * math.Log((1-q)/(1-p))
	}
	return max(kl, 0)
}

// FormatSlowShares renders slow_requests_by: `k8s.node.name=cp-2 (100% of
// slow, 33% of all)`, strongest first. A value that is not a plain word is
// quoted, since whoever sends spans chooses it.
func FormatSlowShares(shares []SlowShare) string {
	parts := make([]string, 0, len(shares))
	for _, s := range shares {
		v := s.Value
		if needsQuoting(v) {
			v = strconv.Quote(v)
		}
		parts = append(parts, s.Attribute+"="+v+" ("+formatPercent(s.SlowShare)+" of slow, "+formatPercent(s.AllShare)+" of all)")
	}
	return strings.Join(parts, ", ")
}

func needsQuoting(v string) bool {
	for _, r := range v {
		switch {
		case r == ',' || r == '(' || r == ')' || r == '=' || r == '"' || r == '\\':
			return true
		case r <= ' ' || r == utf8.RuneError || r == 0x7f:
			return true
		}
	}
	return v == ""
}

// formatPercent rounds to a whole percent, never showing a share that is
// neither nothing nor everything as 0% or 100%.
func formatPercent(f float64) string {
	switch {
	case f <= 0:
		return "0%"
	case f >= 1:
		return "100%"
	case f < 0.005:
		return "<1%"
	case f >= 0.995:
		return ">99%"
	}
	return strconv.Itoa(int(math.Round(f*100))) + "%"
}

// explainerFor builds the rule's explainer from its definition: the
// latency objective's threshold, or an SLO's latency target over its
// shortest window.
func explainerFor(rd *rules.Rule, minWidth time.Duration, slo *sloRule) *explainer {
	if slo != nil {
		return newExplainer(rd.ExplainDimensions(), slo.def.Latency, slo.windows[0], minWidth)
	}
	return newExplainer(rd.ExplainDimensions(), rd.Objective.Threshold, rd.Window, minWidth)
}
