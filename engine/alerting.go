package engine

import "time"

// AlertState is where an alert stands in Prometheus's state machine.
type AlertState int

const (
	StateInactive AlertState = iota
	StatePending
	StateFiring
)

func (s AlertState) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateFiring:
		return "firing"
	}
	return "inactive"
}

// alertState is the state machine of one group of one rule.
type alertState struct {
	state           AlertState
	activeAt        time.Time // when the condition first held
	firedAt         time.Time // when it became firing
	resolvedAt      time.Time // when it stopped firing; zero while active
	keepFiringSince time.Time // when the condition stopped holding while firing
	lastSentAt      time.Time
	value           float64
	annotations     map[string]string
}

// step advances the state machine at ts given whether the objective is
// breached, as Prometheus's AlertingRule.Eval does. It reports whether the
// alert just resolved.
func (a *alertState) step(ts time.Time, breach bool, hold, keepFiringFor time.Duration) (resolved bool) {
	if breach {
		if a.state == StateInactive {
			*a = alertState{state: StatePending, activeAt: ts}
		}
		a.keepFiringSince = time.Time{}
		if a.state == StatePending && ts.Sub(a.activeAt) >= hold {
			a.state = StateFiring
			a.firedAt = ts
		}
		return false
	}
	switch a.state {
	case StatePending:
		*a = alertState{}
	case StateFiring:
		if keepFiringFor > 0 {
			if a.keepFiringSince.IsZero() {
				a.keepFiringSince = ts
			}
			if ts.Sub(a.keepFiringSince) < keepFiringFor {
				return false
			}
		}
		a.state = StateInactive
		a.resolvedAt = ts
		return true
	}
	return false
}

// needsSending reports whether the alert should go to the notifier at ts:
// a firing alert every resendDelay, a resolved one once.
func (a *alertState) needsSending(ts time.Time, resendDelay time.Duration) bool {
	switch {
	case a.state == StatePending:
		return false
	case a.state == StateInactive:
		return !a.resolvedAt.IsZero() && a.lastSentAt.Before(a.resolvedAt)
	}
	return a.lastSentAt.IsZero() || !a.lastSentAt.Add(resendDelay).After(ts)
}
