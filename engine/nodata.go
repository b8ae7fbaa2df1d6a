package engine

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kube-sentinel/sentinel/rules"
)

// No data is not good news. A series whose window holds fewer than the
// rule's min_observations is no_data: it neither breaches nor clears, so a
// firing alert keeps its last known state (for at most no_data_timeout)
// instead of resolving because its input stalled. The built-in alert
// SentinelNoData says so, per rule (every series of it is no_data) and per
// span source (a service.name that stopped sending).

const (
	// NoDataAlertName is the built-in alert that says a rule or a source is blind.
	NoDataAlertName = "SentinelNoData"
	// NoDataAnnotation marks a firing alert whose data stopped.
	NoDataAnnotation = "no_data"

	noDataSeverity   = "ticket"
	noDataRunbook    = "https://github.com/kube-sentinel/sentinel/blob/main/docs/runbooks/SentinelNoData.md"
	serviceNameLabel = "service.name"
)

func (r *ruleState) minObservations() uint64 {
	if r.def.MinObservations == 0 {
		return rules.DefaultMinObservations
	}
	return r.def.MinObservations
}

// setNoData records whether the series is no_data at ts and returns it.
func (s *series) setNoData(ts time.Time, noData bool) bool {
	s.noData = noData
	switch {
	case !noData:
		s.noDataSince = time.Time{}
	case s.noDataSince.IsZero():
		s.noDataSince = ts
	}
	return noData
}

// annotateNoData adds the no_data annotation to a firing alert on no data
// and takes it away once data is back. Annotation maps are shared with
// alerts already handed to the notifier, so they are copied, never changed.
func (r *ruleState) annotateNoData(a *alertState, v verdict, where string) {
	_, marked := a.annotations[NoDataAnnotation]
	switch {
	case v == verdictNoData && a.state == StateFiring && !a.noDataSince.IsZero():
		text := fmt.Sprintf("since %s: %s in %s; keeps firing until data returns or for %s",
			a.noDataSince.UTC().Format(time.RFC3339), tooFew(r.minObservations()), where, rules.FormatDuration(r.def.NoDataTimeout))
		if a.annotations[NoDataAnnotation] != text {
			a.annotations = withAnnotation(a.annotations, NoDataAnnotation, text)
		}
	case v != verdictNoData && marked:
		a.annotations = withAnnotation(a.annotations, NoDataAnnotation, "")
	}
}

// tooFew says what no_data means for a rule: "no observations", or "fewer
// than 20 observations".
func tooFew(minObservations uint64) string {
	if minObservations <= 1 {
		return "no observations"
	}
	return fmt.Sprintf("fewer than %d observations", minObservations)
}

// withAnnotation returns a copy of m with name set to text, or removed
// when text is empty.
func withAnnotation(m map[string]string, name, text string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	if text == "" {
		delete(out, name)
	} else {
		out[name] = text
	}
	return out
}

// blindState is a rule's SentinelNoData: firing while every series of the
// rule is no_data (or it has none), once the rule has had data or has run
// for one window without any.
type blindState struct {
	loadedAt time.Time
	hadData  bool
	since    time.Time // when the rule became blind; zero while it sees
	alert    alertState
	labels   map[string]string
}

// blindAfter is how long a rule that never had data runs before it counts
// as blind: its (shortest) window, the time any input takes to show.
func (r *ruleState) blindAfter() time.Duration { return r.kind.blindAfter(r) }

// evaluateBlind steps the rule's SentinelNoData; live says whether some
// series had enough observations. Called with r.mu held.
func (r *ruleState) evaluateBlind(ts time.Time, live, muted bool, out *[]Alert, e *Engine) {
	b := &r.blind
	if live {
		b.hadData = true
	}
	blind := !live && (b.hadData || ts.Sub(b.loadedAt) >= r.blindAfter())
	switch {
	case !blind:
		b.since = time.Time{}
	case b.since.IsZero():
		b.since = ts
	}
	wasFiring := b.alert.state == StateFiring
	b.alert.step(ts, verdictOf(blind), 0, 0, 0)
	if b.alert.state == StateFiring && !wasFiring {
		b.alert.value = float64(len(r.series))
		b.alert.annotations = map[string]string{
			"summary": fmt.Sprintf("rule %s (group %s) is blind: %s in any of its series since %s",
				r.def.Name, r.group, tooFew(r.minObservations()), b.since.UTC().Format(time.RFC3339)),
			"description": "The rule cannot tell a breach from a stalled input: its firing alerts keep their last known state " +
				"(annotated no_data) for no_data_timeout, then resolve. Check that the rule's source still sends.",
			"runbook_url": noDataRunbook,
		}
	}
	if !b.alert.needsSending(ts, e.resendDelay()) {
		return
	}
	if muted && b.alert.lastSentAt.IsZero() {
		e.metrics.muted.Inc()
		return
	}
	if b.labels == nil {
		b.labels = e.noDataLabels("rule", r.def.Name, "rule_group", r.group)
	}
	*out = append(*out, noDataAlert(&b.alert, b.labels, ts, e.generatorURL(r), e))
	b.alert.lastSentAt = ts
}

// noDataLabels are a SentinelNoData alert's labels: its own, the severity
// and the external labels.
func (e *Engine) noDataLabels(kv ...string) map[string]string {
	l := make(map[string]string, len(kv)/2+2+len(e.opts.ExternalLabels))
	for k, v := range e.opts.ExternalLabels {
		l[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	l["alertname"] = NoDataAlertName
	l["severity"] = noDataSeverity
	return l
}

func noDataAlert(a *alertState, labels map[string]string, ts time.Time, generatorURL string, e *Engine) Alert {
	out := Alert{Labels: labels, Annotations: a.annotations, StartsAt: a.firedAt, GeneratorURL: generatorURL}
	if a.state == StateInactive {
		out.EndsAt = a.resolvedAt
	} else {
		out.EndsAt = ts.Add(4 * max(e.settings.Load().DefaultInterval, e.resendDelay()))
	}
	return out
}

// sourceTracker remembers when each span source (service.name) last sent,
// for at most max names; names beyond are counted, not tracked. A source
// that sent for at least timeout and then fell silent for timeout fires
// SentinelNoData{service_name=…}; one silent for forgetAfter is forgotten
// (its alert resolved), as is a source silent before it was established,
// so one-off names (a typo, a flood of made-up names) never page and never
// pin the table.
type sourceTracker struct {
	max         int
	timeout     time.Duration
	forgetAfter time.Duration

	tick     atomic.Int64 // the latest evaluation time, unix nanos: what Observe stamps
	full     atomic.Bool
	overflow atomic.Uint64

	mu      sync.RWMutex
	sources map[string]*sourceEntry
}

type sourceEntry struct {
	firstSeen int64
	lastSeen  atomic.Int64
	spans     atomic.Uint64 // for sentinel_source_spans_total
	alert     alertState    // guarded by sourceTracker.mu (write lock)
	labels    map[string]string
}

func newSourceTracker(max int, timeout, forgetAfter time.Duration, now time.Time) *sourceTracker {
	t := &sourceTracker{max: max, timeout: timeout, forgetAfter: forgetAfter, sources: map[string]*sourceEntry{}}
	t.tick.Store(now.UnixNano())
	return t
}

// seen stamps the observation's service.name with the current tick. It does
// not allocate once the name is tracked.
func (t *sourceTracker) seen(l Labels) {
	name, ok := l.Get(serviceNameLabel)
	if !ok {
		return
	}
	t.seenN(name, 1)
}

// seenN stamps the source name, which sent n spans, with the current tick.
func (t *sourceTracker) seenN(name string, n uint64) {
	if name == "" || n == 0 {
		return
	}
	now := t.tick.Load()
	t.mu.RLock()
	s := t.sources[name]
	t.mu.RUnlock()
	if s != nil {
		s.spans.Add(n)
		if s.lastSeen.Load() != now { // spare the cache line when nothing changes
			s.lastSeen.Store(now)
		}
		return
	}
	if t.full.Load() {
		t.overflow.Add(1)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.sources[name]; s != nil {
		s.spans.Add(n)
		s.lastSeen.Store(now)
		return
	}
	if len(t.sources) >= t.max {
		t.full.Store(true)
		t.overflow.Add(1)
		return
	}
	s = &sourceEntry{firstSeen: now}
	s.spans.Store(n)
	s.lastSeen.Store(now)
	t.sources[strings.Clone(name)] = s // the label's bytes may be reused by the source
}

// evaluate steps every source's SentinelNoData at ts and returns the
// alerts that need sending.
func (t *sourceTracker) evaluate(ts time.Time, e *Engine) []Alert {
	now := ts.UnixNano()
	for {
		prev := t.tick.Load()
		if prev >= now || t.tick.CompareAndSwap(prev, now) {
			break
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Alert
	for name, s := range t.sources {
		last := s.lastSeen.Load()
		silent := time.Duration(now - last)
		established := time.Duration(last-s.firstSeen) >= t.timeout
		forget := silent >= t.forgetAfter || (!established && silent >= t.timeout)
		blind := established && silent >= t.timeout && !forget
		wasFiring := s.alert.state == StateFiring
		s.alert.step(ts, verdictOf(blind), 0, 0, 0)
		if s.alert.state == StateFiring && !wasFiring {
			since := time.Unix(0, last).UTC().Format(time.RFC3339)
			s.alert.annotations = map[string]string{
				"summary": fmt.Sprintf("no spans from service.name %q since %s", name, since),
				"description": "Rules over this source's spans are blind: their firing alerts keep their last known state " +
					"(annotated no_data) for no_data_timeout, then resolve. Check the source's tracing and the Collector.",
				"runbook_url": noDataRunbook,
			}
		}
		if s.alert.needsSending(ts, e.resendDelay()) {
			if s.labels == nil {
				s.labels = e.noDataLabels("service_name", name)
			}
			out = append(out, noDataAlert(&s.alert, s.labels, ts, e.settings.Load().ExternalURL, e))
			s.alert.lastSentAt = ts
		}
		if forget && s.alert.state == StateInactive {
			delete(t.sources, name)
			t.full.Store(false)
		}
	}
	return out
}

// tracked returns the number of sources tracked.
func (t *sourceTracker) tracked() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.sources)
}

// alerts lists the sources' pending and firing SentinelNoData alerts.
func (t *sourceTracker) alerts() []AlertStatus {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []AlertStatus
	for _, s := range t.sources {
		if s.alert.state != StateInactive && s.labels != nil {
			out = append(out, AlertStatus{Labels: s.labels, Annotations: s.alert.annotations, State: s.alert.state,
				ActiveAt: s.alert.activeAt, FiredAt: s.alert.firedAt})
		}
	}
	sort.Slice(out, func(i, j int) bool { return labelsLess(out[i].Labels, out[j].Labels) })
	return out
}

// countAlerts counts the sources' SentinelNoData alerts in state.
func (t *sourceTracker) countAlerts(state AlertState) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := 0
	for _, s := range t.sources {
		if s.alert.state == state {
			n++
		}
	}
	return n
}
