package rules

import (
	"slices"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"
)

// Source is the kind of input a rule evaluates.
type Source string

const (
	SourceSpans   Source = "spans"
	SourceMetrics Source = "metrics"
)

// Position locates a rule or group in its file, for errors and links.
type Position struct {
	File      string
	Line, Col int
}

// Set is every group of every rule file, validated and ready to run.
type Set struct {
	Files  []string
	Groups []*Group
}

// Group is a named list of rules evaluated together on one schedule.
type Group struct {
	Name     string
	File     string
	Interval Schedule // zero means the configured default
	Rules    []*Rule
	Mute     []Mute
	Pos      Position
}

// Mute is a maintenance window: from every firing of a cron schedule, for
// Duration, alerts are evaluated but not sent.
type Mute struct {
	Spec     string
	Duration time.Duration
	schedule cron.Schedule
}

// Active reports whether t falls inside one of the mute's windows.
func (m Mute) Active(t time.Time) bool {
	if m.schedule == nil || m.Duration <= 0 {
		return false
	}
	// The window that could hold t started in (t-Duration, t].
	start := m.schedule.Next(t.Add(-m.Duration))
	return !start.After(t)
}

// SLO is an error-budget objective: Target percent of requests are good
// (faster than Latency when it is set, and not failed) over Period.
type SLO struct {
	Target         float64 // percent, e.g. 99.9
	Latency        time.Duration
	Period         time.Duration
	BurnRateAlerts []BurnRateAlert
}

// ErrorBudget is the fraction of requests that may be bad.
func (s *SLO) ErrorBudget() float64 { return 1 - s.Target/100 }

// BurnRateAlert is one multi-window pair: it fires when the burn rate over
// both windows exceeds Factor, for For.
type BurnRateAlert struct {
	Severity    string
	LongWindow  time.Duration
	ShortWindow time.Duration
	Factor      float64
	For         time.Duration
}

// Objective is what a rule must hold: the Quantile of the latency must stay
// at or below Threshold.
type Objective struct {
	Quantile  float64
	Threshold time.Duration
}

// Kind says whether a rule is a latency objective that alerts on its own
// ("alerting") or an error-budget SLO with burn-rate alerts ("slo").
type Kind string

const (
	KindAlerting Kind = "alerting"
	KindSLO      Kind = "slo"
)

// Rule is one objective with its alerting behaviour.
type Rule struct {
	Kind          Kind
	Name          string // the alert name, or for SLOs the slo name
	Source        Source
	Metric        string // for SourceMetrics: the histogram's base name
	Matchers      labels.Matchers
	GroupBy       []string
	Objective     Objective
	Window        time.Duration
	For           time.Duration
	KeepFiringFor time.Duration
	// MinObservations is how many observations a window needs to be judged;
	// with fewer, the series is no_data (neither breach nor clear) and a
	// firing alert keeps its last known state. Default 1.
	MinObservations uint64
	// NoDataTimeout is how long a firing alert whose series is no_data keeps
	// firing before it resolves; 0 resolves it at once (after
	// keep_firing_for), as an empty window did before. Default 1h.
	NoDataTimeout time.Duration
	Labels        map[string]string
	Annotations   map[string]*Template
	SLO           *SLO   // for KindSLO
	Mute          []Mute // maintenance windows: alerts are not sent during them
	// ExplainBy are the attributes whose values slow_requests_by compares
	// between slow and all requests, as the rule file gives them (see
	// ExplainDimensions); ExplainBySet says explain_by was given at all
	// (an empty list turns the comparison off).
	ExplainBy    []string
	ExplainBySet bool
	Pos          Position

	// Fingerprint identifies the rule's definition: two rules with the same
	// fingerprint evaluate the same way, so state may carry over a reload.
	Fingerprint string
}

// Defaults of the no-data fields.
const (
	DefaultMinObservations = 1
	DefaultNoDataTimeout   = time.Hour
)

// NamesLabel reports whether any matcher of the rule selects on name.
func (r *Rule) NamesLabel(name string) bool {
	for _, m := range r.Matchers {
		if m.Name == name {
			return true
		}
	}
	return false
}

// DefaultExplainBy are the resource attributes slow_requests_by compares
// when a rule does not say explain_by: where a request ran.
var DefaultExplainBy = []string{"k8s.node.name", "cloud.availability_zone", "cloud.region", "service.instance.id"}

// MaxExplainBy bounds the attributes a rule explains by: each costs memory
// in every slot of every series.
const MaxExplainBy = 8

// ExplainDimensions are the attributes slow_requests_by compares for the
// rule: its explain_by if given, else DefaultExplainBy and the names of its
// matchers that can match more than one value and are not group_by (a
// group's own labels, or a single value, cannot stand out), at most
// MaxExplainBy.
func (r *Rule) ExplainDimensions() []string {
	if r.ExplainBySet {
		return r.ExplainBy
	}
	out := append([]string(nil), DefaultExplainBy...)
	for _, m := range r.Matchers {
		if m.Type == labels.MatchEqual || m.Name == "span.kind" || m.Name == model.MetricNameLabel ||
			slices.Contains(r.GroupBy, m.Name) || slices.Contains(out, m.Name) {
			continue
		}
		out = append(out, m.Name)
	}
	out = slices.DeleteFunc(out, func(n string) bool { return slices.Contains(r.GroupBy, n) })
	if len(out) > MaxExplainBy {
		out = out[:MaxExplainBy]
	}
	return out
}
