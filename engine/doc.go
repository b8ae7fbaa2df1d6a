// Package engine owns time: for every rule and every group of a rule (its
// group_by values) it keeps a ring of time slots, each holding a mergeable
// relative-error quantile sketch and the slowest exemplars, evaluates the
// rule's objective over its window and runs the alert state machine
// (inactive → pending → firing → resolved) the way Prometheus's rule manager
// does, except that no data is not good news: a window with too few
// observations is no_data, a firing alert keeps its last known state, and
// the built-in SentinelNoData says which rule or span source is blind
// (nodata.go). A rule's kind (latency objective, SLO) is behind one
// interface (kind.go). A breaching series is explained: what its slow
// requests have in common (explain.go, bounded sketches per slot) and where
// its exemplar traces' time went (critical.go, from a TraceStore that pins
// them: the traces buffer, which the engine reads but does not own).
//
// The engine knows nothing of where observations come from (sources call
// Observe) nor of where alerts go (it hands them to a Notifier). It takes a
// Clock so that tests and `sentinel test rules` run on simulated time.
package engine
