package engine

import (
	"text/template"
	"time"

	"github.com/kube-sentinel/sentinel/rules"
)

// The engine's defaults, each in one place: a config that leaves a setting
// out passes zero, and the command line's flag defaults name these.
const (
	// DefaultResendDelay is how often a firing alert is sent again.
	DefaultResendDelay = time.Minute
	// DefaultResolveTimeout is the default endsAt horizon: longer than a
	// pod restart takes, image pull and scheduling included, so that a
	// restarted sentinel's resends find its alerts still firing in
	// Alertmanager.
	DefaultResolveTimeout = 15 * time.Minute
	// DefaultMaxGroupsPerRule caps the distinct group_by values of a rule.
	DefaultMaxGroupsPerRule = 1000
	// DefaultMaxSnapshotBytes caps a state snapshot: written and read, it
	// must fit well inside the shipped pod's 512Mi next to the windows it
	// describes.
	DefaultMaxSnapshotBytes = 64 << 20
)

// Settings are what a reload may change in a running engine. Zero values
// take the defaults.
type Settings struct {
	ExternalURL string        // base of generatorURL, e.g. http://sentinel.monitoring:9464
	ResendDelay time.Duration // default DefaultResendDelay
	// ResolveTimeout is how far ahead a firing alert's endsAt is set at
	// each send: how long Alertmanager keeps it firing without hearing
	// from sentinel, e.g. across a restart. Never less than Prometheus's
	// 4 × max(interval, ResendDelay); default DefaultResolveTimeout.
	ResolveTimeout time.Duration
	// DefaultInterval evaluates groups that have no interval of their own
	// (default rules.DefaultEvaluationInterval). A change takes effect at
	// the next Load, for the groups it concerns.
	DefaultInterval time.Duration
	// TraceURLTemplate renders exemplar_trace_urls from {{ .TraceID }} and {{ .SpanID }}.
	TraceURLTemplate string
	// MaxSnapshotBytes caps what WriteSnapshot writes and RestoreSnapshot
	// reads (default DefaultMaxSnapshotBytes).
	MaxSnapshotBytes int64
}

// settings are Settings with defaults applied and the template parsed.
type settings struct {
	Settings
	traceURL *template.Template
}

func newSettings(s Settings) (*settings, error) {
	if s.ResendDelay <= 0 {
		s.ResendDelay = DefaultResendDelay
	}
	if s.ResolveTimeout <= 0 {
		s.ResolveTimeout = DefaultResolveTimeout
	}
	if s.DefaultInterval <= 0 {
		s.DefaultInterval = rules.DefaultEvaluationInterval
	}
	if s.MaxSnapshotBytes <= 0 {
		s.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	out := &settings{Settings: s}
	if s.TraceURLTemplate != "" {
		t, err := ParseTraceURLTemplate(s.TraceURLTemplate)
		if err != nil {
			return nil, err
		}
		out.traceURL = t
	}
	return out, nil
}

// TraceURLData is what a trace_url_template sees.
type TraceURLData = rules.TraceURLData

// ParseTraceURLTemplate parses a trace_url_template and executes it with a
// sample trace (see rules.ParseTraceURLTemplate).
func ParseTraceURLTemplate(text string) (*template.Template, error) {
	return rules.ParseTraceURLTemplate(text)
}

// Settings returns the settings in force, defaults applied.
func (e *Engine) Settings() Settings { return e.settings.Load().Settings }

// Apply replaces the settings in force. Evaluations from now on use them;
// a new DefaultInterval reschedules the groups without an interval of
// their own at the next Load. On error nothing changes.
func (e *Engine) Apply(s Settings) error {
	next, err := newSettings(s)
	if err != nil {
		return err
	}
	e.settings.Store(next)
	return nil
}

func (e *Engine) resendDelay() time.Duration { return e.settings.Load().ResendDelay }

// horizon is how far ahead of ts a firing alert's endsAt lies: the
// resolve timeout, and never less than Prometheus's 4 × max(interval,
// resend delay), so a few lost resends never resolve an alert.
func (e *Engine) horizon(interval time.Duration) time.Duration {
	s := e.settings.Load()
	return max(s.ResolveTimeout, 4*max(interval, s.ResendDelay))
}
