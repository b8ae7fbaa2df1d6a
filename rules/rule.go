package rules

import (
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
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
	Pos      Position
}

// Objective is what a rule must hold: the Quantile of the latency must stay
// at or below Threshold.
type Objective struct {
	Quantile  float64
	Threshold time.Duration
}

// Rule is one latency objective with its alerting behaviour.
type Rule struct {
	Name          string // the alert name
	Source        Source
	Metric        string // for SourceMetrics: the histogram's base name
	Matchers      labels.Matchers
	GroupBy       []string
	Objective     Objective
	Window        time.Duration
	For           time.Duration
	KeepFiringFor time.Duration
	Labels        map[string]string
	Annotations   map[string]*Template
	Pos           Position

	// Fingerprint identifies the rule's definition: two rules with the same
	// fingerprint evaluate the same way, so state may carry over a reload.
	Fingerprint string
}

// NamesLabel reports whether any matcher of the rule selects on name.
func (r *Rule) NamesLabel(name string) bool {
	for _, m := range r.Matchers {
		if m.Name == name {
			return true
		}
	}
	return false
}
