package engine

import (
	"strconv"
	"time"

	"github.com/kube-sentinel/sentinel/traces"
)

// TraceStore is the trace buffer as the engine uses it: it pins the
// exemplar traces of pending and firing series and reads the pinned ones
// back to aggregate their critical paths (a trace whose pin was refused
// is not looked for among the buffer's recent spans: that costs a scan,
// and evaluations must not pay one per exemplar). *traces.Buffer
// satisfies it.
type TraceStore interface {
	Pin(id traces.TraceID, until time.Time) bool
	PinnedTrace(id traces.TraceID) (traces.Trace, bool)
}

// DefaultPinFor is how long an exemplar trace stays pinned after the last
// evaluation at which its series was pending or firing: the page that
// linked it is read some minutes later.
const DefaultPinFor = 15 * time.Minute

// CriticalPath is where the time of a series' exemplar traces went: the
// sum of their critical paths' time per service (and per service and span
// name) over the sum of their roots' durations.
type CriticalPath struct {
	Traces     int // exemplar traces whose paths were aggregated
	Incomplete int // of those, the traces with spans missing
	Services   []PathShare
	Spans      []PathShare // by "service/span name"
}

// PathShare is a service's or an operation's share of the path time.
type PathShare struct {
	Name  string
	Share float64
}

// pinExemplars keeps the exemplars' traces while an alert refers to them,
// and PinFor after.
func (e *Engine) pinExemplars(ts time.Time, interval time.Duration, exemplars []Exemplar) {
	ts0 := e.opts.Traces
	if ts0 == nil {
		return
	}
	until := ts.Add(2*interval + e.opts.PinFor)
	for _, x := range exemplars {
		if !ts0.Pin(traces.TraceID(x.TraceID), until) {
			e.metrics.pinRefused.Add(1)
		}
	}
}

// criticalPath aggregates the critical paths of the exemplars' traces the
// store still holds; nil when it holds none with a root.
func (e *Engine) criticalPath(exemplars []Exemplar) *CriticalPath {
	store := e.opts.Traces
	if store == nil || len(exemplars) == 0 {
		return nil
	}
	var b traces.Breakdown
	incomplete := 0
	for _, x := range exemplars {
		t, ok := store.PinnedTrace(traces.TraceID(x.TraceID))
		if !ok {
			continue
		}
		before := b.Traces
		b.Add(traces.CriticalPath(t))
		if b.Traces > before && !t.Complete {
			incomplete++
		}
	}
	if b.Traces == 0 {
		return nil
	}
	cp := &CriticalPath{Traces: b.Traces, Incomplete: incomplete}
	for _, s := range b.Services() {
		cp.Services = append(cp.Services, PathShare{Name: s.Name, Share: s.Fraction})
	}
	for _, s := range b.Operations() {
		cp.Spans = append(cp.Spans, PathShare{Name: s.Name, Share: s.Fraction})
	}
	return cp
}

// annotate adds critical_path and critical_path_spans, each marked when
// some of the traces are incomplete.
func (cp *CriticalPath) annotate(out map[string]string) {
	if cp == nil {
		return
	}
	suffix := ""
	if cp.Incomplete > 0 {
		suffix = " (" + strconv.Itoa(cp.Incomplete) + " of " + strconv.Itoa(cp.Traces) + " traces incomplete)"
	}
	out["critical_path"] = traces.FormatShares(toShares(cp.Services)) + suffix
	out["critical_path_spans"] = traces.FormatShares(toShares(cp.Spans)) + suffix
}

func toShares(ps []PathShare) []traces.Share {
	out := make([]traces.Share, len(ps))
	for i, p := range ps {
		out[i] = traces.Share{Name: p.Name, Fraction: p.Share}
	}
	return out
}
