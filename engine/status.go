package engine

import (
	"math"
	"sort"
	"time"
)

// GroupStatus is a rule group as the API shows it.
type GroupStatus struct {
	Name           string
	File           string
	Interval       time.Duration
	LastEvaluation time.Time
	EvaluationTime time.Duration
	Rules          []RuleStatus
}

// RuleStatus is one rule with its state and one entry per group.
type RuleStatus struct {
	Name           string
	Kind           string // "alerting" or "slo"
	Quantile       float64
	Threshold      time.Duration
	Window         time.Duration
	Target         float64       // SLOs: percent
	Period         time.Duration // SLOs
	State          AlertState    // the most severe of its series
	NoData         bool          // blind: every series is no_data (SentinelNoData fires)
	NoDataSince    time.Time     // when it became blind
	NoDataAlert    *AlertStatus  // the rule's SentinelNoData, while pending or firing
	LastEvaluation time.Time
	EvaluationTime time.Duration
	Series         []SeriesStatus
	Alerts         []AlertStatus
}

// SeriesStatus is one group of a rule at its last evaluation.
type SeriesStatus struct {
	Labels       map[string]string
	Value        float64 // seconds; NaN when the window was empty
	Observations uint64
	Failed       uint64
	NoData       bool      // fewer than min_observations: neither breach nor clear
	NoDataSince  time.Time // when NoData began
	Exemplars    []Exemplar
	SLO          *SLOStatus // SLO rules: budget and burn rates; Value is then the shortest window's burn rate
	// While the series breaches: where its exemplar traces' time went (nil
	// without a trace buffer or when it holds none of them), and which
	// attribute values its slow requests have in common (strongest first,
	// none when nothing stands out). See docs/explain.md.
	CriticalPath   *CriticalPath
	SlowRequestsBy []SlowShare
}

// AlertStatus is a pending or firing alert.
type AlertStatus struct {
	Labels      map[string]string
	Annotations map[string]string
	State       AlertState
	ActiveAt    time.Time
	FiredAt     time.Time
	Value       float64
}

// Status returns every group and rule with its current state, in file order.
func (e *Engine) Status() []GroupStatus {
	rs := e.current.Load()
	out := make([]GroupStatus, 0, len(rs.groups))
	for _, g := range rs.groups {
		g.mu.Lock()
		gs := GroupStatus{Name: g.name, File: g.file, Interval: g.interval,
			LastEvaluation: g.lastEval, EvaluationTime: g.lastDuration}
		g.mu.Unlock()
		for _, r := range g.rules {
			gs.Rules = append(gs.Rules, r.status(e))
		}
		out = append(out, gs)
	}
	return out
}

func (r *ruleState) status(e *Engine) RuleStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := RuleStatus{Name: r.def.Name, Kind: string(r.def.Kind), Quantile: r.def.Objective.Quantile, Threshold: r.def.Objective.Threshold,
		Window: r.def.Window, LastEvaluation: r.lastEval, EvaluationTime: r.evalTime,
		NoData: !r.blind.since.IsZero(), NoDataSince: r.blind.since}
	if a := &r.blind.alert; a.state != StateInactive && r.blind.labels != nil {
		st.NoDataAlert = &AlertStatus{Labels: r.blind.labels, Annotations: a.annotations, State: a.state,
			ActiveAt: a.activeAt, FiredAt: a.firedAt, Value: a.value}
	}
	r.kind.ruleStatus(&st)
	for _, s := range r.series {
		ss := SeriesStatus{Labels: s.labels, Value: s.value,
			Observations: s.observations, Failed: s.failed, Exemplars: s.exemplars,
			NoData: s.noData, NoDataSince: s.noDataSince, CriticalPath: s.criticalPath, SlowRequestsBy: s.slowBy}
		r.kind.seriesStatus(r, s, &ss)
		st.Series = append(st.Series, ss)
		states, pairs := r.kind.alerts(s)
		for i, a := range states {
			if a.state > st.State {
				st.State = a.state
			}
			if a.state != StateInactive {
				st.Alerts = append(st.Alerts, AlertStatus{Labels: r.labelsFor(s, pairs[i], e), Annotations: a.annotations,
					State: a.state, ActiveAt: a.activeAt, FiredAt: a.firedAt, Value: a.value})
			}
		}
	}
	sort.Slice(st.Series, func(i, j int) bool { return labelsLess(st.Series[i].Labels, st.Series[j].Labels) })
	sort.Slice(st.Alerts, func(i, j int) bool { return labelsLess(st.Alerts[i].Labels, st.Alerts[j].Labels) })
	return st
}

// Alerts returns every pending and firing alert, the built-in
// SentinelNoData alerts included.
func (e *Engine) Alerts() []AlertStatus {
	var out []AlertStatus
	for _, g := range e.Status() {
		for _, r := range g.Rules {
			out = append(out, r.Alerts...)
			if r.NoDataAlert != nil {
				out = append(out, *r.NoDataAlert)
			}
		}
	}
	return append(out, e.sources.alerts()...)
}

func (e *Engine) countAlerts(state AlertState) int {
	n := 0
	rs := e.current.Load()
	for _, g := range rs.groups {
		for _, r := range g.rules {
			r.mu.Lock()
			if r.blind.alert.state == state {
				n++
			}
			for _, s := range r.series {
				states, _ := r.kind.alerts(s)
				for _, a := range states {
					if a.state == state {
						n++
					}
				}
			}
			r.mu.Unlock()
		}
	}
	return n + e.sources.countAlerts(state)
}

func labelsLess(a, b map[string]string) bool {
	return canonical(a) < canonical(b)
}

func canonical(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		s += k + "\xff" + l[k] + "\xfe"
	}
	return s
}

// Seconds returns v for JSON, with NaN (an empty window) as nil.
func Seconds(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}
