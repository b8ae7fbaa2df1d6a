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
	noDataSince     time.Time // when a firing alert's data stopped; zero while there is data
	lastSentAt      time.Time
	value           float64
	annotations     map[string]string
}

// verdict is what one evaluation says about an alert's condition.
type verdict int

const (
	verdictClear  verdict = iota // the objective holds
	verdictBreach                // the objective is breached
	verdictNoData                // too few observations to say either
)

func verdictOf(breach bool) verdict {
	if breach {
		return verdictBreach
	}
	return verdictClear
}

// step advances the state machine at ts, as Prometheus's AlertingRule.Eval
// does, with one addition: no data is not good news. On no data a pending
// alert goes back to inactive (it never fires on no data), and a firing one
// keeps its last known state for noDataTimeout before it resolves (unless
// keep_firing_for was already running out when the data stopped: the last
// known state was then clear). A noDataTimeout of 0 takes no data for clear.
// It reports whether the alert just resolved.
func (a *alertState) step(ts time.Time, v verdict, hold, keepFiringFor, noDataTimeout time.Duration) (resolved bool) {
	if v == verdictNoData && noDataTimeout <= 0 {
		v = verdictClear
	}
	if v != verdictNoData {
		a.noDataSince = time.Time{}
	}
	switch v {
	case verdictBreach:
		if a.state == StateInactive {
			*a = alertState{state: StatePending, activeAt: ts}
		}
		a.keepFiringSince = time.Time{}
		if a.state == StatePending && ts.Sub(a.activeAt) >= hold {
			a.state = StateFiring
			a.firedAt = ts
		}
		return false
	case verdictNoData:
		switch a.state {
		case StatePending:
			*a = alertState{}
		case StateFiring:
			if a.noDataSince.IsZero() {
				a.noDataSince = ts
			}
			keptEnough := !a.keepFiringSince.IsZero() && ts.Sub(a.keepFiringSince) >= keepFiringFor
			if keptEnough || ts.Sub(a.noDataSince) >= noDataTimeout {
				a.state = StateInactive
				a.resolvedAt = ts
				return true
			}
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
