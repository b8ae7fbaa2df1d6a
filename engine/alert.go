package engine

import "time"

// Alert is what the engine hands to notifiers: the shape of an Alertmanager
// v2 postable alert, with no dependency on its client.
type Alert struct {
	Labels       map[string]string
	Annotations  map[string]string
	StartsAt     time.Time
	EndsAt       time.Time // in the future while firing; the resolve time once resolved
	GeneratorURL string
}

// Resolved reports whether the alert had ended at time t.
func (a *Alert) Resolved(t time.Time) bool {
	return !a.EndsAt.IsZero() && !a.EndsAt.After(t)
}

// Notifier delivers alerts. It must not block for long: implementations
// queue and send asynchronously.
type Notifier interface {
	Send(alerts ...Alert)
}

// IsGeneratedAnnotation reports whether the engine writes the named
// annotation itself, beside a rule's own: value, threshold, the exemplar
// trace IDs and URLs, for SLOs the burn rates and the budget remaining, and
// no_data on a firing alert whose data stopped, and the explanations
// (critical_path, critical_path_spans, slow_requests_by).
func IsGeneratedAnnotation(name string) bool {
	switch name {
	case "value", "threshold", "exemplar_trace_ids", "exemplar_trace_urls", NoDataAnnotation,
		"burn_rate_long", "burn_rate_short", "budget_remaining", "critical_path", "critical_path_spans", "slow_requests_by":
		return true
	}
	return false
}
