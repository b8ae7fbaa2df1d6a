package engine

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-sentinel/sentinel/rules"
)

// Options configure an Engine.
type Options struct {
	Clock      Clock    // default WallClock
	Notifier   Notifier // may be nil: alerts are only kept for the API
	Logger     *slog.Logger
	Registerer prometheus.Registerer // may be nil

	ExternalLabels map[string]string
	ExternalURL    string        // base of generatorURL, e.g. http://sentinel.monitoring:9464
	ResendDelay    time.Duration // default 1m
	// DefaultInterval evaluates groups that have no interval of their own. Default 15s.
	DefaultInterval time.Duration
	// MaxGroupsPerRule caps the distinct group_by values a rule tracks
	// (cardinality); observations beyond it are counted and dropped. Default 1000.
	MaxGroupsPerRule int
	// TraceURLTemplate renders exemplar_trace_urls from {{ .TraceID }} and {{ .SpanID }}.
	TraceURLTemplate string
}

// Engine evaluates a rule set over the observations it is given.
type Engine struct {
	opts     Options
	logger   *slog.Logger
	traceURL *template.Template
	metrics  *metrics

	current  atomic.Pointer[ruleSet]
	loadMu   sync.Mutex
	reloaded chan struct{}
}

type ruleSet struct {
	groups []*groupState
	index  [2]index // by Source
}

type groupState struct {
	name, file string
	schedule   rules.Schedule
	interval   time.Duration
	rules      []*ruleState

	mu           sync.Mutex // one evaluation at a time
	lastEval     time.Time
	lastDuration time.Duration
}

// New returns an engine with no rules; call Load.
func New(opts Options) (*Engine, error) {
	if opts.Clock == nil {
		opts.Clock = WallClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ResendDelay <= 0 {
		opts.ResendDelay = time.Minute
	}
	if opts.DefaultInterval <= 0 {
		opts.DefaultInterval = 15 * time.Second
	}
	if opts.MaxGroupsPerRule <= 0 {
		opts.MaxGroupsPerRule = 1000
	}
	e := &Engine{opts: opts, logger: opts.Logger, reloaded: make(chan struct{}, 1)}
	if opts.TraceURLTemplate != "" {
		t, err := template.New("trace_url_template").Option("missingkey=error").Parse(opts.TraceURLTemplate)
		if err != nil {
			return nil, fmt.Errorf("trace_url_template: %w", err)
		}
		e.traceURL = t
	}
	e.metrics = newMetrics(opts.Registerer, e)
	e.current.Store(&ruleSet{})
	return e, nil
}

// Load replaces the rule set. Rules whose definition is unchanged (same
// group, name and fingerprint) keep their windows and alert states;
// changed rules start fresh; removed rules have their firing alerts
// resolved.
func (e *Engine) Load(set *rules.Set) {
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	old := e.current.Load()
	oldRules := map[string]*ruleState{}
	for _, g := range old.groups {
		for _, r := range g.rules {
			oldRules[g.name+"\x00"+r.def.Name] = r
		}
	}
	rs := &ruleSet{}
	var bySource [2][]*ruleState
	if set != nil {
		for _, gd := range set.Groups {
			g := &groupState{name: gd.Name, file: gd.File, schedule: gd.Interval}
			if g.schedule.IsZero() {
				g.schedule = rules.Every(e.opts.DefaultInterval)
			}
			g.interval = g.schedule.Period(e.opts.Clock.Now())
			e.metrics.evaluations.WithLabelValues(g.name) // exported from the start, at 0
			for _, rd := range gd.Rules {
				if rd.Kind == rules.KindSLO {
					e.logger.Warn("slo rules are parsed but not evaluated yet", "rule", rd.Name)
					continue
				}
				key := gd.Name + "\x00" + rd.Name
				r := oldRules[key]
				if r != nil && r.fingerprint == rd.Fingerprint+g.schedule.Spec {
					delete(oldRules, key)
					r.def = rd
				} else {
					r = e.newRuleState(gd.Name, rd, g)
				}
				g.rules = append(g.rules, r)
				bySource[r.source] = append(bySource[r.source], r)
			}
			rs.groups = append(rs.groups, g)
		}
	}
	for s := range bySource {
		rs.index[s] = buildIndex(bySource[s])
	}
	e.current.Store(rs)

	// Rules that are gone resolve their alerts rather than leave them to expire.
	now := e.opts.Clock.Now()
	var resolved []Alert
	for _, r := range oldRules {
		resolved = append(resolved, r.resolveAll(now, e)...)
	}
	e.send(resolved)
	select {
	case e.reloaded <- struct{}{}:
	default:
	}
}

func (e *Engine) send(alerts []Alert) {
	if len(alerts) > 0 && e.opts.Notifier != nil {
		e.opts.Notifier.Send(alerts...)
	}
}

// Observe files an observation under every rule it matches. It is safe for
// concurrent use and does not allocate once the observation's groups exist.
func (e *Engine) Observe(o *Observation) {
	rs := e.current.Load()
	ix := &rs.index[o.Source&1]
	e.metrics.observations[o.Source&1].Add(1)
	for i, name := range ix.names {
		v, ok := o.Labels.Get(name)
		if !ok {
			continue
		}
		for _, r := range ix.values[i][v] {
			r.observe(o, e.metrics)
		}
	}
	for _, r := range ix.scan {
		r.observe(o, e.metrics)
	}
}

// Evaluate evaluates the named groups (every group when none is named) at
// ts and hands the alerts that need sending to the notifier.
func (e *Engine) Evaluate(ctx context.Context, ts time.Time, groups ...string) {
	rs := e.current.Load()
	for _, g := range rs.groups {
		if len(groups) > 0 && !containsString(groups, g.name) {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		e.evaluateGroup(g, ts)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (e *Engine) evaluateGroup(g *groupState, ts time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	start := time.Now()
	var out []Alert
	for _, r := range g.rules {
		out = append(out, r.evaluate(ts, g.interval, e)...)
	}
	g.lastEval = ts
	g.lastDuration = time.Since(start)
	e.metrics.evaluated(g.name, g.lastDuration, ts)
	e.send(out)
}

// Run evaluates every group on its schedule until ctx is done, picking up
// new rule sets as they are loaded.
func (e *Engine) Run(ctx context.Context) {
	next := map[*groupState]time.Time{}
	for {
		rs := e.current.Load()
		now := e.opts.Clock.Now()
		var earliest time.Time
		live := map[*groupState]time.Time{}
		for _, g := range rs.groups {
			t, ok := next[g]
			if !ok {
				t = g.schedule.Next(now)
			}
			live[g] = t
			if earliest.IsZero() || t.Before(earliest) {
				earliest = t
			}
		}
		next = live
		var timer <-chan time.Time
		var t *time.Timer
		if !earliest.IsZero() {
			t = time.NewTimer(earliest.Sub(now))
			timer = t.C
		}
		stop := func() {
			if t != nil {
				t.Stop()
			}
		}
		select {
		case <-ctx.Done():
			stop()
			return
		case <-e.reloaded:
			stop()
			// A new set: its groups are scheduled afresh above.
		case <-timer:
			now = e.opts.Clock.Now()
			for _, g := range rs.groups {
				if t := next[g]; !t.After(now) {
					e.evaluateGroup(g, now)
					next[g] = g.schedule.Next(now)
				}
			}
		}
	}
}

// ruleState is one rule's windows and alerts, one series per group.
type ruleState struct {
	def         *rules.Rule
	group       string
	fingerprint string
	source      Source
	metric      string
	matchers    []valueMatcher
	indexed     int  // the matcher the index already checked; -1 if none
	serverOnly  bool // span rules that do not name span.kind observe SERVER spans only
	groupBy     []string
	groupNames  []string // groupBy sanitized into label names
	slotWidth   time.Duration
	maxSeries   int
	overflow    prometheus.Counter
	clock       Clock

	mu       sync.Mutex
	series   map[string]*series
	scratch  merged
	lastEval time.Time
	evalTime time.Duration
}

type series struct {
	labels      map[string]string // the group_by values, sanitized names
	bounds      []float64         // metrics rules: the union of the histogram layouts seen
	alertLabels map[string]string
	win         window
	alert       alertState

	// as of the last evaluation
	value        float64
	observations uint64
	failed       uint64
	exemplars    []Exemplar
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
		indexed:     -1,
		groupBy:     rd.GroupBy,
		maxSeries:   e.opts.MaxGroupsPerRule,
		series:      map[string]*series{},
		scratch:     merged{sketch: newSketch()},
		clock:       e.opts.Clock,
		overflow:    e.metrics.overflow.WithLabelValues(group, rd.Name),
	}
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
	r.slotWidth = g.interval
	if r.slotWidth <= 0 || rd.Window/r.slotWidth > maxSlotsPerWindow {
		r.slotWidth = rd.Window / maxSlotsPerWindow
	}
	if r.slotWidth <= 0 {
		r.slotWidth = time.Second
	}
	return r
}

const spanKindLabel = "span.kind"

// observe adds o to the rule if it matches. The hot path: no allocation
// unless o opens a new group.
func (r *ruleState) observe(o *Observation, m *metrics) {
	if r.serverOnly {
		if k, _ := o.Labels.Get(spanKindLabel); k != "server" {
			return
		}
	}
	for i := range r.matchers {
		mt := &r.matchers[i]
		if i == r.indexed {
			continue
		}
		v, _ := o.Labels.Get(mt.name)
		if !mt.matches(v) {
			return
		}
	}
	var buf [256]byte
	key := buf[:0]
	for _, name := range r.groupBy {
		v, _ := o.Labels.Get(name)
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
	if o.Source == SourceMetrics && !sameBounds(s.bounds, o.Bounds) {
		s.bounds = unionBounds(s.bounds, o.Bounds)
	}
	ok := s.win.add(o, secs, count, r.clock)
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
		v, _ := o.Labels.Get(name)
		s.labels[r.groupNames[i]] = v
	}
	s.win = newWindow(r.def.Window, r.slotWidth)
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

// evaluate merges every series' window at ts, steps its state machine and
// returns the alerts that need sending.
func (r *ruleState) evaluate(ts time.Time, interval time.Duration, e *Engine) []Alert {
	start := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	threshold := r.def.Objective.Threshold.Seconds()
	var out []Alert
	for key, s := range r.series {
		sum := s.win.merge(ts, r.def.Window, &r.scratch)
		s.observations, s.failed = sum.total, sum.failed
		breach := false
		if sum.total > 0 {
			v := r.quantile(s)
			s.value = v
			s.exemplars = sum.top.list()
			breach = v > threshold
		} else {
			s.value = math.NaN()
			s.exemplars = nil
		}
		s.alert.step(ts, breach, r.def.For, r.def.KeepFiringFor)
		if breach {
			s.alert.value = s.value
			s.alert.annotations = r.annotations(s, e)
		}
		if s.alert.needsSending(ts, e.opts.ResendDelay) {
			out = append(out, r.toAlert(s, ts, interval, e))
			s.alert.lastSentAt = ts
		}
		// A group that has seen nothing for a whole window and has no alert
		// to remember is forgotten, so memory follows live groups only.
		if s.alert.state == StateInactive && sum.total == 0 &&
			(sum.latest == minEpoch || (sum.latest+1)*s.win.width <= ts.UnixNano()-int64(r.def.Window)) &&
			!s.alert.needsSending(ts, e.opts.ResendDelay) {
			delete(r.series, key)
		}
	}
	r.lastEval = ts
	r.evalTime = time.Since(start)
	return out
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

func (r *ruleState) toAlert(s *series, ts time.Time, interval time.Duration, e *Engine) Alert {
	a := Alert{
		Labels:       r.alertLabels(s, e),
		Annotations:  s.alert.annotations,
		StartsAt:     s.alert.firedAt,
		GeneratorURL: e.generatorURL(r),
	}
	if s.alert.state == StateInactive {
		a.EndsAt = s.alert.resolvedAt
	} else {
		a.EndsAt = ts.Add(4 * max(interval, e.opts.ResendDelay))
	}
	return a
}

// resolveAll resolves every firing alert of a rule that is being removed.
func (r *ruleState) resolveAll(ts time.Time, e *Engine) []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Alert
	for _, s := range r.series {
		if s.alert.state == StateFiring {
			s.alert.state = StateInactive
			s.alert.resolvedAt = ts
			out = append(out, r.toAlert(s, ts, 0, e))
		}
	}
	return out
}

func (r *ruleState) annotations(s *series, e *Engine) map[string]string {
	thr := r.def.Objective.Threshold.Seconds()
	out := make(map[string]string, len(r.def.Annotations)+4)
	data := rules.TemplateData{
		Labels:         r.alertLabels(s, e),
		ExternalLabels: e.opts.ExternalLabels,
		Value:          s.value,
		Threshold:      thr,
	}
	for name, t := range r.def.Annotations {
		text, err := t.Execute(data)
		if err != nil {
			e.logger.Warn("annotation template failed", "rule", r.def.Name, "annotation", name, "err", err)
			text = fmt.Sprintf("<error expanding template: %v>", err)
		}
		out[name] = text
	}
	out["value"] = rules.HumanizeDuration(s.value)
	out["threshold"] = rules.HumanizeDuration(thr)
	if len(s.exemplars) > 0 {
		ids := make([]string, len(s.exemplars))
		var urls []string
		for i, x := range s.exemplars {
			ids[i] = hex.EncodeToString(x.TraceID[:])
			if e.traceURL != nil {
				var b strings.Builder
				err := e.traceURL.Execute(&b, struct{ TraceID, SpanID string }{ids[i], hex.EncodeToString(x.SpanID[:])})
				if err == nil {
					urls = append(urls, b.String())
				}
			}
		}
		out["exemplar_trace_ids"] = strings.Join(ids, ",")
		if len(urls) > 0 {
			out["exemplar_trace_urls"] = strings.Join(urls, ",")
		}
	}
	return out
}

func (e *Engine) generatorURL(r *ruleState) string {
	base := strings.TrimRight(e.opts.ExternalURL, "/")
	return base + "/?group=" + url.QueryEscape(r.group) + "#rule-" + url.PathEscape(r.def.Name)
}
