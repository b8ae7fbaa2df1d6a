package engine

import (
	"errors"
	"time"
)

// ruleKind is what differs between the kinds of rule (a latency objective
// over a window, an SLO's burn rates): how a series keeps its observations,
// how it is evaluated, which alerts it has, and how it is saved and shown.
// Everything else (matching, grouping, templates, no-data, explanations)
// is the ruleState's, the same for every kind.
type ruleKind interface {
	// newSeries gives a new series its window or counters.
	newSeries(r *ruleState, s *series)
	// add records an observation in the series; false when it was too late.
	add(r *ruleState, s *series, o *Observation, seconds float64, count uint64) bool
	// evaluate steps the series' alerts at ts and offers each to send; it
	// reports whether the series held nothing at all.
	evaluate(r *ruleState, ts time.Time, s *series, g *groupState, send sendFunc, e *Engine) (empty bool)
	// alerts lists the series' alert states with the pair each stands for
	// (-1 for a latency rule's single alert).
	alerts(s *series) ([]*alertState, []int)
	// blindAfter is how long a rule that never had data runs before it
	// counts as blind: its (shortest) window.
	blindAfter(r *ruleState) time.Duration
	// snapshot and restore save and load the series' kind-specific state.
	snapshot(s *series, ss *seriesSnap)
	restore(r *ruleState, s *series, ss *seriesSnap) error
	// status adds the kind's fields to a rule's and a series' status.
	ruleStatus(st *RuleStatus)
	seriesStatus(r *ruleState, s *series, ss *SeriesStatus)
}

// sendFunc offers an alert of a series (pair -1 for a latency rule's) for sending.
type sendFunc func(s *series, a *alertState, pair int)

// latencyRule is a rule on a quantile of latency over a window.
type latencyRule struct{}

func (latencyRule) newSeries(r *ruleState, s *series) { s.win = newWindow(r.def.Window, r.slotWidth) }

func (latencyRule) add(r *ruleState, s *series, o *Observation, seconds float64, count uint64) bool {
	if o.Source == SourceMetrics && !sameBounds(s.bounds, o.Bounds) {
		s.bounds = unionBounds(s.bounds, o.Bounds)
	}
	return s.win.add(o, seconds, count, r.clock)
}

func (latencyRule) evaluate(r *ruleState, ts time.Time, s *series, g *groupState, send sendFunc, e *Engine) bool {
	return r.evaluateLatency(ts, s, g, send, e)
}

func (latencyRule) alerts(s *series) ([]*alertState, []int) {
	return []*alertState{&s.alert}, []int{-1}
}

func (latencyRule) blindAfter(r *ruleState) time.Duration { return r.def.Window }

func (latencyRule) snapshot(s *series, ss *seriesSnap) { ss.Window = snapWindow(&s.win) }

func (latencyRule) restore(r *ruleState, s *series, ss *seriesSnap) error {
	s.win = newWindow(r.def.Window, r.slotWidth)
	return restoreWindow(&s.win, ss.Window)
}

func (latencyRule) ruleStatus(*RuleStatus) {}

func (latencyRule) seriesStatus(*ruleState, *series, *SeriesStatus) {}

func (k *sloRule) newSeries(r *ruleState, s *series) { s.slo = r.newSLOSeries() }

func (k *sloRule) add(r *ruleState, s *series, o *Observation, _ float64, count uint64) bool {
	return s.slo.add(o, count, r.isBad(o), r.clock)
}

func (k *sloRule) evaluate(r *ruleState, ts time.Time, s *series, g *groupState, send sendFunc, e *Engine) bool {
	return r.evaluateSLO(ts, s, g, send, e)
}

func (k *sloRule) alerts(s *series) ([]*alertState, []int) {
	states := make([]*alertState, len(s.slo.pairs))
	pairs := make([]int, len(s.slo.pairs))
	for i := range s.slo.pairs {
		states[i], pairs[i] = &s.slo.pairs[i], i
	}
	return states, pairs
}

func (k *sloRule) blindAfter(*ruleState) time.Duration { return k.windows[0] }

func (k *sloRule) snapshot(s *series, ss *seriesSnap) {
	sl := &sloSnap{Exemplars: snapWindow(&s.slo.exemplars)}
	for i := range s.slo.rings {
		c := &s.slo.rings[i]
		cs := counterRingSnap{Ring: snapRing(&c.ring)}
		for _, x := range c.slots {
			cs.Slots = append(cs.Slots, counterSlotSnap{Epoch: x.epoch, Total: int64(x.total), Bad: int64(x.bad)})
		}
		sl.Rings = append(sl.Rings, cs)
	}
	for i := range s.slo.pairs {
		sl.Pairs = append(sl.Pairs, snapAlert(&s.slo.pairs[i]))
	}
	ss.SLO = sl
}

func (k *sloRule) restore(r *ruleState, s *series, ss *seriesSnap) error {
	if ss.SLO == nil {
		return errors.New("an SLO series without counters")
	}
	s.slo = r.newSLOSeries()
	return restoreSLO(s.slo, ss.SLO)
}

func (k *sloRule) ruleStatus(st *RuleStatus) { st.Target, st.Period = k.def.Target, k.def.Period }

func (k *sloRule) seriesStatus(r *ruleState, s *series, ss *SeriesStatus) { ss.SLO = r.sloStatus(s) }
