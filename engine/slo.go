package engine

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"github.com/kube-sentinel/sentinel/rules"
)

// An SLO keeps good/bad counters per slot rather than sketches, one ring per
// window length its burn-rate pairs and its period need, each of
// sloSlotsPerWindow slots: memory per group is independent of traffic and
// grows only with the number of distinct windows (see docs/slo.md).
const sloSlotsPerWindow = 30

// counterSlot counts the requests of one slot and how many were bad.
type counterSlot struct {
	epoch      int64
	total, bad uint64
}

// counterRing is a window of counters.
type counterRing struct {
	ring
	slots []counterSlot
}

func newCounterRing(length time.Duration) counterRing {
	width := max(length/sloSlotsPerWindow, time.Second)
	c := counterRing{ring: newRing(length, width)}
	c.slots = make([]counterSlot, c.n)
	for i := range c.slots {
		c.slots[i].epoch = minEpoch
	}
	return c
}

func (c *counterRing) add(end time.Time, count, bad uint64, clock Clock) bool {
	epoch, i, ok := c.place(end, clock)
	if !ok {
		return false
	}
	s := &c.slots[i]
	if s.epoch != epoch {
		if epoch < s.epoch {
			return false
		}
		*s = counterSlot{epoch: epoch}
	}
	s.total += count
	s.bad += bad
	return true
}

func (c *counterRing) sum(now time.Time, length time.Duration) (total, bad uint64) {
	end := now.UnixNano()
	start := end - int64(length)
	for i := range c.slots {
		s := &c.slots[i]
		if c.inWindow(s.epoch, start, end) {
			total += s.total
			bad += s.bad
		}
	}
	return total, bad
}

// sloRule is what an SLO rule needs beyond a latency rule.
type sloRule struct {
	def     *rules.SLO
	budget  float64         // allowed fraction of bad requests
	windows []time.Duration // distinct, ascending; the period is the last
	long    []int           // per pair: index into windows
	short   []int
}

func newSLORule(def *rules.SLO) *sloRule {
	s := &sloRule{def: def, budget: def.ErrorBudget()}
	set := map[time.Duration]bool{def.Period: true}
	for _, b := range def.BurnRateAlerts {
		set[b.LongWindow], set[b.ShortWindow] = true, true
	}
	for w := range set {
		s.windows = append(s.windows, w)
	}
	sort.Slice(s.windows, func(i, j int) bool { return s.windows[i] < s.windows[j] })
	index := func(w time.Duration) int {
		return sort.Search(len(s.windows), func(i int) bool { return s.windows[i] >= w })
	}
	for _, b := range def.BurnRateAlerts {
		s.long = append(s.long, index(b.LongWindow))
		s.short = append(s.short, index(b.ShortWindow))
	}
	return s
}

// sloSeries is one group of an SLO: its counters and one alert per pair.
type sloSeries struct {
	rings      []counterRing // parallel to sloRule.windows
	exemplars  window        // the slowest bad requests of the shortest window
	pairs      []alertState
	pairLabels []map[string]string // per pair, built once

	// as of the last evaluation
	burnRates       []float64 // parallel to sloRule.windows
	totals          []uint64  // requests per window, parallel to sloRule.windows
	budgetRemaining float64
}

func (r *ruleState) newSLOSeries() *sloSeries {
	s := &sloSeries{pairs: make([]alertState, len(r.slo.def.BurnRateAlerts)),
		burnRates: make([]float64, len(r.slo.windows)), totals: make([]uint64, len(r.slo.windows)), budgetRemaining: 1}
	for _, w := range r.slo.windows {
		s.rings = append(s.rings, newCounterRing(w))
	}
	shortest := r.slo.windows[0]
	s.exemplars = newWindow(shortest, max(shortest/sloSlotsPerWindow, time.Second))
	return s
}

// isBad says whether a request spends the error budget: it failed, or it
// was slower than the objective's latency. A metrics observation is bad
// when its bucket reaches past the latency (a latency between two bucket
// bounds counts the whole bucket as slow, as a PromQL le selector would
// have to).
func (r *ruleState) isBad(o *Observation) bool {
	if o.Failed {
		return true
	}
	lat := r.slo.def.Latency
	if lat <= 0 {
		return false
	}
	if o.Source == SourceMetrics {
		return o.UpperBound > lat.Seconds()
	}
	return o.Duration > lat
}

func (s *sloSeries) add(o *Observation, count uint64, bad bool, clock Clock) bool {
	var b uint64
	if bad {
		b = count
	}
	ok := false
	for i := range s.rings {
		ok = s.rings[i].add(o.End, count, b, clock) || ok
	}
	if bad {
		s.exemplars.addExemplar(o, clock)
	}
	return ok
}

// evaluateSLO computes every window's burn rate and the budget left over
// the period, steps each pair's state machine and offers it for sending; it
// reports whether the period held nothing at all.
func (r *ruleState) evaluateSLO(ts time.Time, s *series, g *groupState, send sendFunc, e *Engine) (empty bool) {
	slo, ss := r.slo, s.slo
	for i, w := range slo.windows {
		total, bad := ss.rings[i].sum(ts, w)
		ss.totals[i] = total
		ss.burnRates[i] = 0
		if total > 0 {
			ss.burnRates[i] = float64(bad) / float64(total) / slo.budget
		}
		if i == len(slo.windows)-1 { // the period: validated to be the longest window
			s.observations, s.failed = total, bad
		}
	}
	ss.budgetRemaining = 1
	if s.observations > 0 {
		ss.budgetRemaining = 1 - float64(s.failed)/float64(s.observations)/slo.budget
	}
	ex := ss.exemplars.merge(ts, slo.windows[0], &r.scratch)
	s.exemplars = ex.top.list()
	s.value = ss.burnRates[0]
	// The series is no_data when its shortest window is; a pair when
	// either of its windows is.
	minObs := r.minObservations()
	s.setNoData(ts, ss.totals[0] < minObs)
	// Step every pair first: the explanations are the series', worked out
	// once for all its pairs.
	breaches := make([]bool, len(slo.def.BurnRateAlerts))
	verdicts := make([]verdict, len(slo.def.BurnRateAlerts))
	anyBreach, state := false, StateInactive
	for p, pair := range slo.def.BurnRateAlerts {
		long, short := ss.burnRates[slo.long[p]], ss.burnRates[slo.short[p]]
		breach := long > pair.Factor && short > pair.Factor
		v := verdictOf(breach)
		if ss.totals[slo.long[p]] < minObs || ss.totals[slo.short[p]] < minObs {
			v, breach = verdictNoData, false
		}
		ss.pairs[p].step(ts, v, pair.For, 0, r.def.NoDataTimeout)
		breaches[p], verdicts[p] = breach, v
		anyBreach = anyBreach || breach
		state = max(state, ss.pairs[p].state)
	}
	r.explainSeries(ts, s, anyBreach, state, g, e)
	for p, pair := range slo.def.BurnRateAlerts {
		a := &ss.pairs[p]
		if breaches[p] {
			a.value = ss.burnRates[slo.long[p]]
			a.annotations = r.sloAnnotations(s, p, r.labelsFor(s, p, e), e)
		}
		r.annotateNoData(a, verdicts[p], "the "+rules.FormatDuration(pair.LongWindow)+" or "+rules.FormatDuration(pair.ShortWindow)+" window")
		send(s, a, p)
	}
	return s.observations == 0
}

// pairLabels are an SLO alert's labels: the series' plus which pair fired.
func (r *ruleState) pairLabels(base map[string]string, p int) map[string]string {
	pair := r.slo.def.BurnRateAlerts[p]
	l := make(map[string]string, len(base)+3)
	for k, v := range base {
		l[k] = v
	}
	l["severity"] = pair.Severity
	l["long_window"] = model.Duration(pair.LongWindow).String()
	l["short_window"] = model.Duration(pair.ShortWindow).String()
	return l
}

func (r *ruleState) sloAnnotations(s *series, p int, labels map[string]string, e *Engine) map[string]string {
	slo, ss := r.slo, s.slo
	pair := slo.def.BurnRateAlerts[p]
	long, short := ss.burnRates[slo.long[p]], ss.burnRates[slo.short[p]]
	out := r.renderAnnotations(labels, long, pair.Factor, e)
	out["value"] = formatBurnRate(long)
	out["threshold"] = formatBurnRate(pair.Factor)
	out["burn_rate_long"] = formatBurnRate(long)
	out["burn_rate_short"] = formatBurnRate(short)
	out["budget_remaining"] = strconv.FormatFloat(ss.budgetRemaining*100, 'f', 2, 64) + "%"
	r.exemplarAnnotations(out, s.exemplars, e)
	r.explanationAnnotations(out, s)
	return out
}

func formatBurnRate(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + "x"
}

// SLOStatus is an SLO group's budget and burn rates.
type SLOStatus struct {
	Target          float64
	Period          time.Duration
	BudgetRemaining float64
	BurnRates       map[string]float64 // by window, e.g. "5m"
	Pairs           []PairStatus
}

// PairStatus is one burn-rate pair of an SLO group.
type PairStatus struct {
	Severity    string
	LongWindow  time.Duration
	ShortWindow time.Duration
	Factor      float64
	State       AlertState
}

func (r *ruleState) sloStatus(s *series) *SLOStatus {
	st := &SLOStatus{Target: r.slo.def.Target, Period: r.slo.def.Period, BudgetRemaining: s.slo.budgetRemaining,
		BurnRates: map[string]float64{}}
	for i, w := range r.slo.windows {
		st.BurnRates[model.Duration(w).String()] = s.slo.burnRates[i]
	}
	for p, b := range r.slo.def.BurnRateAlerts {
		st.Pairs = append(st.Pairs, PairStatus{Severity: b.Severity, LongWindow: b.LongWindow, ShortWindow: b.ShortWindow,
			Factor: b.Factor, State: s.slo.pairs[p].state})
	}
	return st
}

func (b *PairStatus) String() string {
	return fmt.Sprintf("%s %s/%s ×%g", b.Severity, model.Duration(b.LongWindow), model.Duration(b.ShortWindow), b.Factor)
}
