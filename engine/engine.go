package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
	// MaxGroupsPerRule caps the distinct group_by values a rule tracks
	// (cardinality); observations beyond it are counted and dropped.
	// Default DefaultMaxGroupsPerRule.
	MaxGroupsPerRule int
	// MaxLabelValueBytes bounds each group_by value of a group key, from
	// spans and scrapes alike; a longer value is truncated, ending with
	// TruncationMarker, and counted. Default DefaultMaxLabelValueBytes.
	MaxLabelValueBytes int

	// The initial Settings (see there); Apply changes them later.
	ExternalURL      string
	ResendDelay      time.Duration
	ResolveTimeout   time.Duration
	DefaultInterval  time.Duration
	TraceURLTemplate string
	MaxSnapshotBytes int64
	// NoDataSources configures SentinelNoData per span source (service.name).
	NoDataSources NoDataSourceOptions

	// Traces, when set, is the trace buffer: the exemplar traces of
	// pending and firing series are pinned in it, and a firing alert's
	// critical_path annotations aggregate their critical paths.
	Traces TraceStore
	// PinFor is how long an exemplar trace stays pinned after the last
	// evaluation that found its series pending or firing. Default
	// DefaultPinFor.
	PinFor time.Duration
}

// NoDataSourceOptions configure SentinelNoData{service_name=…}.
type NoDataSourceOptions struct {
	// Timeout is how long a source that has sent for at least as long must
	// be silent before it is no_data. Default 10m.
	Timeout time.Duration
	// ForgetAfter is how long a silent source is remembered (its alert
	// firing) before it is forgotten and its alert resolves. Default 24h.
	ForgetAfter time.Duration
	// MaxSources caps the service.name values tracked; spans of names beyond
	// it are counted in sentinel_nodata_sources_overflow_total. Default 1000.
	MaxSources int
}

// Engine evaluates a rule set over the observations it is given.
type Engine struct {
	opts     Options
	logger   *slog.Logger
	settings atomic.Pointer[settings]
	metrics  *metrics
	sources  *sourceTracker
	// stateChanged has a token when an alert began or stopped firing since
	// it was last drained, so that a snapshot can follow.
	stateChanged chan struct{}

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
	mutes      []rules.Mute

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
	if opts.MaxGroupsPerRule <= 0 {
		opts.MaxGroupsPerRule = DefaultMaxGroupsPerRule
	}
	if opts.PinFor <= 0 {
		opts.PinFor = DefaultPinFor
	}
	if opts.NoDataSources.Timeout <= 0 {
		opts.NoDataSources.Timeout = 10 * time.Minute
	}
	if opts.NoDataSources.ForgetAfter <= 0 {
		opts.NoDataSources.ForgetAfter = 24 * time.Hour
	}
	opts.NoDataSources.ForgetAfter = max(opts.NoDataSources.ForgetAfter, 2*opts.NoDataSources.Timeout)
	if opts.NoDataSources.MaxSources <= 0 {
		opts.NoDataSources.MaxSources = 1000
	}
	if opts.MaxLabelValueBytes <= 0 {
		opts.MaxLabelValueBytes = DefaultMaxLabelValueBytes
	}
	if opts.MaxLabelValueBytes < MinLabelValueBytes {
		return nil, fmt.Errorf("max label value bytes %d is under the minimum of %d", opts.MaxLabelValueBytes, MinLabelValueBytes)
	}
	e := &Engine{opts: opts, logger: opts.Logger, reloaded: make(chan struct{}, 1), stateChanged: make(chan struct{}, 1)}
	e.sources = newSourceTracker(opts.NoDataSources.MaxSources, opts.NoDataSources.Timeout, opts.NoDataSources.ForgetAfter, opts.Clock.Now())
	s, err := newSettings(Settings{ExternalURL: opts.ExternalURL, ResendDelay: opts.ResendDelay, ResolveTimeout: opts.ResolveTimeout, DefaultInterval: opts.DefaultInterval,
		TraceURLTemplate: opts.TraceURLTemplate, MaxSnapshotBytes: opts.MaxSnapshotBytes})
	if err != nil {
		return nil, err
	}
	e.settings.Store(s)
	e.metrics = newMetrics(opts.Registerer, e)
	registerSourceCollector(opts.Registerer, e)
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(newSLICollector(e)); err != nil {
			return nil, fmt.Errorf("engine: register SLI metrics: %w", err)
		}
	}
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
			g := &groupState{name: gd.Name, file: gd.File, schedule: gd.Interval, mutes: gd.Mute}
			if g.schedule.IsZero() {
				g.schedule = rules.Every(e.settings.Load().DefaultInterval)
			}
			// At a fixed instant: a cron spec with uneven gaps must give
			// the same slot width after a restart, or snapshots would not fit.
			g.interval = g.schedule.Period(time.Unix(0, 0).UTC())
			e.metrics.evaluations.WithLabelValues(g.name) // exported from the start, at 0
			for _, rd := range gd.Rules {
				key := gd.Name + "\x00" + rd.Name
				r := oldRules[key]
				if r != nil && r.fingerprint == rd.Fingerprint+g.schedule.Spec {
					delete(oldRules, key)
					r.mu.Lock() // observe reads the definition when it opens a group
					r.def = rd
					r.sli = nil // the rule's labels may have changed
					for _, s := range r.series {
						s.sliValues = nil
					}
					r.mu.Unlock()
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
	if len(resolved) > 0 {
		e.noteStateChange()
	}
	select {
	case e.reloaded <- struct{}{}:
	default:
	}
}

// StateChanged has a value when an alert has begun or stopped firing since
// it was last received from: the daemon snapshots then, so that a firing
// alert's activeAt and startsAt survive a kill.
func (e *Engine) StateChanged() <-chan struct{} { return e.stateChanged }

func (e *Engine) noteStateChange() {
	select {
	case e.stateChanged <- struct{}{}:
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
	if o.Source != SourceSpans || !o.SourceCounted { // else SpansFrom counts them
		e.metrics.observations[o.Source&1].Add(1)
		if o.Source == SourceSpans {
			e.sources.seen(o.Labels)
		}
	}
	for i, name := range ix.names {
		v, ok := o.Labels.Get(name)
		if !ok {
			continue
		}
		for _, x := range ix.values[i][v] {
			x.rule.observe(o, x.skip, e.metrics)
		}
	}
	for _, x := range ix.scan {
		x.rule.observe(o, x.skip, e.metrics)
	}
}

// SpansFrom tells the engine that the span source (service.name) name sent
// n spans that were observed with Observation.SourceCounted set: a
// receiver that counts a resource's spans reports them once, instead of
// the engine looking service.name up (and counting the observation) in
// every span.
func (e *Engine) SpansFrom(name string, n int) {
	if n > 0 {
		e.metrics.observations[SourceSpans].Add(uint64(n))
		e.sources.seenN(name, uint64(n))
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
		out = append(out, r.evaluate(ts, g, e)...)
	}
	out = append(out, e.sources.evaluate(ts, e)...)
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
				// Evaluate at the scheduled instant, not when the timer woke
				// us: `for` is then counted on the evaluation grid, as in
				// Prometheus and in `sentinel test rules`.
				if t := next[g]; !t.After(now) {
					e.evaluateGroup(g, t)
					next[g] = g.schedule.Next(now)
				}
			}
		}
	}
}
