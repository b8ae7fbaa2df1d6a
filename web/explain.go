package web

import (
	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/traces"
)

// ExplainFunc reads why a series is slow from its engine status: the
// critical path of its exemplars' traces and what its slow requests have
// in common. nil when the status says nothing (no pinned trace yet, a
// rule that is not explained). The daemon maps the engine's fields into
// an Explanation; the web layer renders it beside a pending or firing
// series and in /api/v1/rules.
type ExplainFunc func(engine.SeriesStatus) *Explanation

// Explanation is why a series is slow, as /api/v1/rules has it.
type Explanation struct {
	CriticalPath   *CriticalPath     `json:"criticalPath,omitempty"`
	SlowRequestsBy []Overrepresented `json:"slowRequestsBy,omitempty"`
}

// CriticalPath is the critical path of a series' exemplar traces,
// aggregated: path time by service.name and by "service/span name" over
// the sum of the roots' durations, largest first.
type CriticalPath struct {
	Traces     int     `json:"traces"`     // how many traces it sums
	Incomplete int     `json:"incomplete"` // of those, the traces with spans missing
	Services   []Share `json:"services"`
	Spans      []Share `json:"spans"` // by "service/span name"
}

// Share is a service's or an operation's part of the path time.
type Share struct {
	Name  string  `json:"name"`
	Share float64 `json:"share"` // 0 to 1
}

// Overrepresented is an attribute value more common among a series' slow
// requests (over the objective's threshold) than among all of them.
type Overrepresented struct {
	Attribute string  `json:"attribute"` // k8s.node.name, a rule label, …
	Value     string  `json:"value"`
	SlowShare float64 `json:"slowShare"` // share of the slow requests with the value, 0 to 1
	AllShare  float64 `json:"allShare"`  // share of all requests with it
}

// String shows it as the slow_requests_by annotation does:
// "k8s.node.name=cp-2 (100% of slow, 33% of all)".
func (o Overrepresented) String() string {
	return o.Attribute + "=" + o.Value + " (" + percent(o.SlowShare) + " of slow, " + percent(o.AllShare) + " of all)"
}

// formatShares shows shares as the critical_path annotation does
// (traces.FormatShares): the first three, then "other" with the rest.
func formatShares(shares []Share) string {
	ts := make([]traces.Share, len(shares))
	for i, s := range shares {
		ts[i] = traces.Share{Name: s.Name, Fraction: s.Share}
	}
	return traces.FormatShares(ts)
}

// SharesOf converts the traces package's shares (a Path's or a
// Breakdown's) for the API.
func SharesOf(shares []traces.Share) []Share {
	out := make([]Share, len(shares))
	for i, s := range shares {
		out[i] = Share{Name: s.Name, Share: s.Fraction}
	}
	return out
}

// percent is a share as the annotations show it.
func percent(f float64) string { return traces.FormatShare(f) }

// EngineExplanation is the ExplainFunc of sentinel's engine: its series
// status carries the critical path of the exemplars' traces and the
// over-represented attribute values (docs/explain.md).
func EngineExplanation(s engine.SeriesStatus) *Explanation {
	if s.CriticalPath == nil && len(s.SlowRequestsBy) == 0 {
		return nil
	}
	e := &Explanation{}
	if cp := s.CriticalPath; cp != nil {
		shares := func(ps []engine.PathShare) []Share {
			out := make([]Share, len(ps))
			for i, p := range ps {
				out[i] = Share{Name: p.Name, Share: p.Share}
			}
			return out
		}
		e.CriticalPath = &CriticalPath{Traces: cp.Traces, Incomplete: cp.Incomplete, Services: shares(cp.Services), Spans: shares(cp.Spans)}
	}
	for _, o := range s.SlowRequestsBy {
		e.SlowRequestsBy = append(e.SlowRequestsBy, Overrepresented{Attribute: o.Attribute, Value: o.Value, SlowShare: o.SlowShare, AllShare: o.AllShare})
	}
	return e
}
