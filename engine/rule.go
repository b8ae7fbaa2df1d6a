package engine

import (
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-sentinel/sentinel/rules"
)

// ruleState is one rule's windows and alerts, one series per group.
type ruleState struct {
	def         *rules.Rule
	group       string
	fingerprint string
	source      Source
	metric      string
	matchers    []valueMatcher
	serverOnly  bool // span rules that do not name span.kind observe SERVER spans only
	groupBy     []string
	groupNames  []string // groupBy sanitized into label names
	slotWidth   time.Duration
	maxSeries   int
	overflow    prometheus.Counter
	clock       Clock
	kind        ruleKind
	slo         *sloRule   // the kind of SLO rules, nil for latency rules
	explain     *explainer // nil when the rule explains nothing
	sli         *sliDescs  // built at the first scrape of /metrics

	maxLabelValue int // group_by values longer than this are truncated (boundLabelValue)

	mu       sync.Mutex
	series   map[string]*series
	blind    blindState // SentinelNoData for this rule
	scratch  merged
	lastEval time.Time
	evalTime time.Duration
}

// series is one group of a rule: its window (or an SLO's counters) and
// its alert state.
type series struct {
	labels      map[string]string // the group_by values, sanitized names
	alertLabels map[string]string
	bounds      []float64 // metrics rules: the union of the histogram layouts seen
	win         window
	alert       alertState
	slo         *sloSeries // SLO rules: counters and one alert per burn-rate pair

	explain explainRing // slow_requests_by's sketches, when the rule explains

	// as of the last evaluation
	slowBy       []SlowShare   // while breaching: what slow requests have in common
	criticalPath *CriticalPath // while breaching: where the exemplars' time went
	annotated    []Exemplar    // the exemplars of the last breach: the alert's annotations name them
	noData       bool          // too few observations to judge
	noDataSince  time.Time     // when noData began
	value        float64
	observations uint64
	failed       uint64
	exemplars    []Exemplar
	evaluated    bool     // the fields above hold an evaluation's results
	sliValues    []string // the SLI metrics' label values, built at the first scrape
}

// maxSlotsPerWindow bounds memory for long windows: beyond it, slots grow
// wider than the evaluation interval.
const maxSlotsPerWindow = 60

func (e *Engine) newRuleState(group string, rd *rules.Rule, g *groupState) *ruleState {
	r := &ruleState{
		def:         rd,
		group:       group,
		fingerprint: rd.Fingerprint + g.schedule.Spec,
		metric:      rd.Metric,
		groupBy:     rd.GroupBy,
		maxSeries:   e.opts.MaxGroupsPerRule,
		series:      map[string]*series{},
		scratch:     merged{sketch: newSketch()},
		clock:       e.opts.Clock,
		overflow:    e.metrics.overflow.WithLabelValues(group, rd.Name),
		blind:       blindState{loadedAt: e.opts.Clock.Now()},
	}
	r.maxLabelValue = e.opts.MaxLabelValueBytes
	if rd.Source == rules.SourceMetrics {
		r.source = SourceMetrics
	} else {
		r.serverOnly = !rd.NamesLabel(spanKindLabel)
	}
	for _, m := range rd.Matchers {
		r.matchers = append(r.matchers, compileMatcher(m))
	}
	for _, n := range rd.GroupBy {
		r.groupNames = append(r.groupNames, rules.SanitizeLabelName(n))
	}
	if rd.Kind == rules.KindSLO {
		r.slo = newSLORule(rd.SLO)
		r.kind = r.slo
		r.explain = explainerFor(rd, time.Second, r.slo)
		return r
	}
	r.kind = latencyRule{}
	r.slotWidth = g.interval
	if r.slotWidth <= 0 || rd.Window/r.slotWidth > maxSlotsPerWindow {
		r.slotWidth = rd.Window / maxSlotsPerWindow
	}
	if r.slotWidth <= 0 {
		r.slotWidth = time.Second
	}
	r.explain = explainerFor(rd, r.slotWidth, nil)
	return r
}

const spanKindLabel = "span.kind"

// observe adds o to the rule if it matches; matcher skip was checked by
// the index already. The hot path: no allocation unless o opens a new group.
func (r *ruleState) observe(o *Observation, skip int, m *metrics) {
	if r.serverOnly {
		if k, _ := o.Labels.Get(spanKindLabel); k != "server" {
			return
		}
	}
	if r.metric != "" {
		// The index may have filed the rule under another label (say
		// resource); other metrics carry that label too.
		if name, _ := o.Labels.Get(metricNameLabel); name != r.metric {
			return
		}
	}
	for i := range r.matchers {
		if i == skip {
			continue
		}
		mt := &r.matchers[i]
		v, _ := o.Labels.Get(mt.name)
		if !mt.matches(v) {
			return
		}
	}
	var buf [256]byte
	key := buf[:0]
	for _, name := range r.groupBy {
		v, cut := r.groupValue(o, name)
		if cut {
			m.truncated.Add(1)
		}
		key = append(key, v...)
		key = append(key, 0xff)
	}
	count := o.Count
	if count == 0 {
		count = 1
	}
	secs := o.Duration.Seconds()
	if secs < 0 {
		secs = 0
	}
	r.mu.Lock()
	s := r.series[string(key)]
	if s == nil {
		if len(r.series) >= r.maxSeries {
			r.mu.Unlock()
			r.overflow.Inc()
			return
		}
		s = r.newSeries(string(key), o)
	}
	ok := r.kind.add(r, s, o, secs, count)
	if ok && r.explain != nil {
		r.explain.add(&s.explain, o, count, r.clock, m)
	}
	r.mu.Unlock()
	if ok {
		m.matched.Add(count)
	} else {
		m.late.Add(count)
	}
}

func (r *ruleState) newSeries(key string, o *Observation) *series {
	s := &series{labels: make(map[string]string, len(r.groupBy)), value: math.NaN()}
	for i, name := range r.groupBy {
		v, _ := r.groupValue(o, name)
		s.labels[r.groupNames[i]] = strings.Clone(v) // o's strings may be reused after Observe
	}
	r.kind.newSeries(r, s)
	r.newExplainRing(s)
	r.series[key] = s
	return s
}

func (r *ruleState) alertLabels(s *series, e *Engine) map[string]string {
	if s.alertLabels != nil {
		return s.alertLabels
	}
	l := make(map[string]string, len(s.labels)+len(r.def.Labels)+len(e.opts.ExternalLabels)+1)
	for k, v := range s.labels {
		if v != "" {
			l[k] = v
		}
	}
	for k, v := range r.def.Labels {
		l[k] = v
	}
	l["alertname"] = r.def.Name
	for k, v := range e.opts.ExternalLabels {
		if _, ok := l[k]; !ok {
			l[k] = v
		}
	}
	s.alertLabels = l
	return l
}

// muted reports whether ts is inside a maintenance window of the rule or
// its group.
func (r *ruleState) muted(ts time.Time, groupMutes []rules.Mute) bool {
	for _, list := range [][]rules.Mute{r.def.Mute, groupMutes} {
		for _, m := range list {
			if m.Active(ts) {
				return true
			}
		}
	}
	return false
}

// evaluate evaluates every series at ts, steps its state machines and
// returns the alerts that need sending (none during a maintenance window:
// they go out once it ends).
func (r *ruleState) evaluate(ts time.Time, g *groupState, e *Engine) []Alert {
	start := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	muted := r.muted(ts, g.mutes)
	var out []Alert
	live := false // some series had enough observations
	resend := e.resendDelay()
	send := sendFunc(func(s *series, a *alertState, pair int) {
		if (a.state == StateFiring && a.firedAt.Equal(ts)) || (a.state == StateInactive && a.resolvedAt.Equal(ts)) {
			e.noteStateChange()
		}
		if !a.needsSending(ts, resend) {
			return
		}
		// A maintenance window holds back new notifications; an alert
		// Alertmanager already has keeps being refreshed (or resolved), so
		// that it neither expires during the window nor pages anew after.
		if muted && a.lastSentAt.IsZero() {
			e.metrics.muted.Inc()
			return
		}
		out = append(out, r.toAlert(s, a, pair, ts, g.interval, e))
		a.lastSentAt = ts
	})
	for key, s := range r.series {
		empty := r.kind.evaluate(r, ts, s, g, send, e)
		s.evaluated = true
		if !s.noData {
			live = true
		}
		// A group that has seen nothing for a whole window and has no alert
		// to remember is forgotten, so memory follows live groups only.
		if empty && r.quiet(s, ts, resend) {
			delete(r.series, key)
		}
	}
	r.evaluateBlind(ts, live, muted, &out, e)
	r.lastEval = ts
	r.evalTime = time.Since(start)
	return out
}

// quiet reports whether no alert of the series is active or owed a send.
func (r *ruleState) quiet(s *series, ts time.Time, resend time.Duration) bool {
	states, _ := r.kind.alerts(s)
	for _, a := range states {
		if a.state != StateInactive || a.needsSending(ts, resend) {
			return false
		}
	}
	return true
}

// evaluateLatency computes the rule's quantile over the window and steps
// the alert; it reports whether the window held nothing at all. A window
// with fewer than min_observations is no_data: neither breach nor clear.
func (r *ruleState) evaluateLatency(ts time.Time, s *series, g *groupState, send sendFunc, e *Engine) (empty bool) {
	sum := s.win.merge(ts, r.def.Window, &r.scratch)
	s.observations, s.failed = sum.total, sum.failed
	breach := false
	if sum.total > 0 {
		s.value = r.quantile(s)
		s.exemplars = sum.top.list()
		breach = s.value > r.def.Objective.Threshold.Seconds()
	} else {
		s.value = math.NaN()
		s.exemplars = nil
	}
	v := verdictOf(breach)
	if s.setNoData(ts, sum.total < r.minObservations()) {
		v, breach = verdictNoData, false
	}
	s.alert.step(ts, v, r.def.For, r.def.KeepFiringFor, r.def.NoDataTimeout)
	r.explainSeries(ts, s, breach, s.alert.state, g, e)
	if breach {
		s.alert.value = s.value
		s.alert.annotations = r.latencyAnnotations(s, e)
	}
	r.annotateNoData(&s.alert, v, "the "+rules.FormatDuration(r.def.Window)+" window")
	send(s, &s.alert, -1)
	return sum.total == 0 && (sum.latest == minEpoch || (sum.latest+1)*s.win.width <= ts.UnixNano()-int64(r.def.Window))
}

// quantile is the rule's quantile of the merged window: from the sketch
// for spans, by Prometheus's bucket interpolation for metrics.
func (r *ruleState) quantile(s *series) float64 {
	q := r.def.Objective.Quantile
	if r.source == SourceMetrics {
		return HistogramQuantile(q, s.bounds, r.scratch.buckets)
	}
	v, err := r.scratch.sketch.GetValueAtQuantile(q)
	if err != nil {
		return math.NaN()
	}
	return v
}

// sameBounds reports whether every bound of b is in a (both ascending).
func sameBounds(a, b []float64) bool {
	if len(b) > len(a) {
		return false
	}
	i := 0
	for _, x := range b {
		for i < len(a) && a[i] < x {
			i++
		}
		if i == len(a) || a[i] != x {
			return false
		}
	}
	return true
}

func unionBounds(a, b []float64) []float64 {
	out := append([]float64(nil), a...)
	for _, x := range b {
		i := sort.SearchFloat64s(out, x)
		if i < len(out) && out[i] == x {
			continue
		}
		out = append(out, 0)
		copy(out[i+1:], out[i:])
		out[i] = x
	}
	return out
}

// labelsFor is the label set of an alert: the series' own, or for an SLO
// pair (pair ≥ 0) those plus the pair's severity and windows.
func (r *ruleState) labelsFor(s *series, pair int, e *Engine) map[string]string {
	base := r.alertLabels(s, e)
	if pair < 0 {
		return base
	}
	if s.slo.pairLabels == nil {
		s.slo.pairLabels = make([]map[string]string, len(s.slo.pairs))
	}
	if s.slo.pairLabels[pair] == nil {
		s.slo.pairLabels[pair] = r.pairLabels(base, pair)
	}
	return s.slo.pairLabels[pair]
}

func (r *ruleState) toAlert(s *series, a *alertState, pair int, ts time.Time, interval time.Duration, e *Engine) Alert {
	out := Alert{
		Labels:       r.labelsFor(s, pair, e),
		Annotations:  a.annotations,
		StartsAt:     a.firedAt,
		GeneratorURL: e.generatorURL(r),
	}
	if a.state == StateInactive {
		out.EndsAt = a.resolvedAt
	} else {
		out.EndsAt = ts.Add(e.horizon(interval))
	}
	return out
}

// resolveAll resolves every firing alert of a rule that is being removed.
func (r *ruleState) resolveAll(ts time.Time, e *Engine) []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Alert
	for _, s := range r.series {
		states, pairs := r.kind.alerts(s)
		for i, a := range states {
			if a.state == StateFiring {
				a.state = StateInactive
				a.resolvedAt = ts
				a.lastSentAt = ts // sent here, once: an evaluation still running must not send it again
				out = append(out, r.toAlert(s, a, pairs[i], ts, 0, e))
			}
		}
	}
	if b := &r.blind; b.alert.state == StateFiring && b.labels != nil {
		b.alert.state, b.alert.resolvedAt, b.alert.lastSentAt = StateInactive, ts, ts
		out = append(out, noDataAlert(&b.alert, b.labels, ts, e.generatorURL(r), e))
	}
	return out
}

func (r *ruleState) latencyAnnotations(s *series, e *Engine) map[string]string {
	thr := r.def.Objective.Threshold.Seconds()
	out := r.renderAnnotations(r.alertLabels(s, e), s.value, thr, e)
	out["value"] = rules.HumanizeDuration(s.value)
	out["threshold"] = rules.HumanizeDuration(thr)
	r.exemplarAnnotations(out, s.exemplars, e)
	r.explanationAnnotations(out, s)
	return out
}

// renderAnnotations expands the rule's own annotation templates.
func (r *ruleState) renderAnnotations(labels map[string]string, value, threshold float64, e *Engine) map[string]string {
	out := make(map[string]string, len(r.def.Annotations)+6)
	data := rules.TemplateData{Labels: labels, ExternalLabels: e.opts.ExternalLabels, Value: value, Threshold: threshold}
	for name, t := range r.def.Annotations {
		text, err := t.Execute(data)
		if err != nil {
			e.templateFailed(r, name, err)
			text = fmt.Sprintf("<error expanding template: %v>", err)
		}
		out[name] = text
	}
	return out
}

// exemplarAnnotations adds exemplar_trace_ids (slowest first) and, with a
// trace_url_template, exemplar_trace_urls.
func (r *ruleState) exemplarAnnotations(out map[string]string, exemplars []Exemplar, e *Engine) {
	if len(exemplars) == 0 {
		return
	}
	ids := make([]string, len(exemplars))
	var urls []string
	traceURL := e.settings.Load().traceURL
	for i, x := range exemplars {
		ids[i] = hex.EncodeToString(x.TraceID[:])
		if traceURL != nil {
			var b strings.Builder
			if err := traceURL.Execute(&b, TraceURLData{TraceID: ids[i], SpanID: hex.EncodeToString(x.SpanID[:])}); err != nil {
				e.templateFailed(r, "trace_url_template", err)
				continue
			}
			urls = append(urls, b.String())
		}
	}
	out["exemplar_trace_ids"] = strings.Join(ids, ",")
	if len(urls) > 0 {
		out["exemplar_trace_urls"] = strings.Join(urls, ",")
	}
}

// ExemplarURL renders the trace_url_template in force for an exemplar of
// the named rule: "" without a template, or when it fails (logged with
// the rule and counted, as at evaluation).
func (e *Engine) ExemplarURL(group, rule string, x Exemplar) string {
	t := e.settings.Load().traceURL
	if t == nil {
		return ""
	}
	var b strings.Builder
	if err := t.Execute(&b, TraceURLData{TraceID: hex.EncodeToString(x.TraceID[:]), SpanID: hex.EncodeToString(x.SpanID[:])}); err != nil {
		e.metrics.templateErr.WithLabelValues(group, rule).Inc()
		e.logger.Warn("template expansion failed", "rule_group", group, "rule", rule, "template", "trace_url_template", "err", err)
		return ""
	}
	return b.String()
}

// templateFailed logs and counts a template that could not be expanded for
// a rule; the alert goes out without that text rather than not at all.
func (e *Engine) templateFailed(r *ruleState, name string, err error) {
	e.metrics.templateErr.WithLabelValues(r.group, r.def.Name).Inc()
	e.logger.Warn("template expansion failed", "rule_group", r.group, "rule", r.def.Name, "template", name, "err", err)
}

func (e *Engine) generatorURL(r *ruleState) string {
	base := strings.TrimRight(e.settings.Load().ExternalURL, "/")
	return base + "/?group=" + url.QueryEscape(r.group) + "#rule-" + url.PathEscape(r.def.Name)
}

func (r *ruleState) newExplainRing(s *series) {
	if r.explain != nil {
		s.explain = r.explain.newRing()
	}
}

// explainSeries pins the exemplars' traces while the series' alert is
// pending or firing and, while it breaches, works out what its slow
// requests have in common and where its exemplars' time went.
func (r *ruleState) explainSeries(ts time.Time, s *series, breach bool, state AlertState, g *groupState, e *Engine) {
	if breach {
		s.annotated = s.exemplars
	}
	if state == StatePending || state == StateFiring {
		e.pinExemplars(ts, g.interval, s.annotated)
	}
	if !breach {
		if state == StateInactive {
			s.slowBy, s.criticalPath, s.annotated = nil, nil, nil
		}
		return
	}
	s.slowBy = nil
	if r.explain != nil {
		s.slowBy = r.explain.explain(&s.explain, ts)
	}
	s.criticalPath = e.criticalPath(s.exemplars)
}

// explanationAnnotations adds critical_path, critical_path_spans and
// slow_requests_by, each only when there is something to say.
func (r *ruleState) explanationAnnotations(out map[string]string, s *series) {
	s.criticalPath.annotate(out)
	if len(s.slowBy) > 0 {
		out["slow_requests_by"] = FormatSlowShares(s.slowBy)
	}
}
