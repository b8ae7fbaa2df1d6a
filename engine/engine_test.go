package engine

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kube-sentinel/sentinel/rules"
)

// mapLabels is the simplest Labels: a map.
type mapLabels map[string]string

func (m mapLabels) Get(name string) (string, bool) { v, ok := m[name]; return v, ok }

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

type recorder struct {
	mu     sync.Mutex
	alerts []Alert
}

func (r *recorder) Send(alerts ...Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, alerts...)
}

func (r *recorder) take() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.alerts
	r.alerts = nil
	return out
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const namespacesRule = `
groups:
  - name: apiserver
    interval: 15s
    rules:
      - alert: NamespacesP99
        source: spans
        matchers: ['service.name="apiserver"', 'resource="namespaces"', 'verb=~"GET|LIST"']
        group_by: [verb]
        objective: {quantile: 0.99, threshold: 1s}
        window: 1m
        for: 30s
        labels: {severity: page}
        annotations:
          summary: "p99 of {{ $labels.verb }} is {{ $value | humanizeDuration }} over {{ $threshold }}s"
`

func loadRules(t testing.TB, text string) *rules.Set {
	t.Helper()
	groups, err := rules.Parse("test.yaml", []byte(text), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &rules.Set{Groups: groups}
}

func newTestEngine(t testing.TB, text string, opts Options) (*Engine, *fakeClock, *recorder) {
	t.Helper()
	clock := &fakeClock{t: t0}
	rec := &recorder{}
	opts.Clock, opts.Notifier = clock, rec
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.Load(loadRules(t, text))
	return e, clock, rec
}

func apiserverSpan(verb, path string) mapLabels {
	res := ""
	if parts := strings.Split(strings.Trim(path, "/"), "/"); len(parts) >= 3 {
		res = parts[2]
	}
	return mapLabels{"service.name": "apiserver", "span.kind": "server", "verb": verb, "resource": res, "http.target": path}
}

func traceID(i int) [16]byte {
	var id [16]byte
	id[0], id[14], id[15] = 0xab, byte(i>>8), byte(i)
	return id
}

// feed sends one observation per step in (from, to], as a window (from, to] holds them.
func feed(e *Engine, l Labels, from, to, step time.Duration, dur func(i int) time.Duration) {
	i := 0
	for at := from + step; at <= to; at += step {
		e.Observe(&Observation{End: t0.Add(at), Duration: dur(i), TraceID: traceID(i), Labels: l})
		i++
	}
}

func constant(d time.Duration) func(int) time.Duration { return func(int) time.Duration { return d } }

func TestAlertLifecycle(t *testing.T) {
	e, clock, rec := newTestEngine(t, namespacesRule, Options{ResendDelay: time.Minute, ExternalLabels: map[string]string{"cluster": "test"}})
	get := apiserverSpan("GET", "/api/v1/namespaces/default")

	type step struct {
		at          time.Duration
		spansFrom   time.Duration
		dur         time.Duration
		wantState   AlertState
		wantSent    int // alerts handed to the notifier at this evaluation
		wantResolve bool
	}
	steps := []step{
		{at: 60 * time.Second, spansFrom: 0, dur: 50 * time.Millisecond, wantState: StateInactive},
		{at: 75 * time.Second, spansFrom: 60 * time.Second, dur: 3 * time.Second, wantState: StatePending},
		{at: 90 * time.Second, spansFrom: 75 * time.Second, dur: 3 * time.Second, wantState: StatePending},
		{at: 105 * time.Second, spansFrom: 90 * time.Second, dur: 3 * time.Second, wantState: StateFiring, wantSent: 1},
		{at: 120 * time.Second, spansFrom: 105 * time.Second, dur: 3 * time.Second, wantState: StateFiring}, // within resend delay
		{at: 165 * time.Second, spansFrom: 120 * time.Second, dur: 3 * time.Second, wantState: StateFiring, wantSent: 1},
		{at: 240 * time.Second, spansFrom: 165 * time.Second, dur: 10 * time.Millisecond, wantState: StateInactive, wantSent: 1, wantResolve: true},
		{at: 255 * time.Second, spansFrom: 240 * time.Second, dur: 10 * time.Millisecond, wantState: StateInactive},
	}
	var firstStart time.Time
	for _, s := range steps {
		feed(e, get, s.spansFrom, s.at, time.Second, constant(s.dur))
		clock.t = t0.Add(s.at)
		e.Evaluate(context.Background(), clock.t)
		st := e.Status()[0].Rules[0]
		if st.State != s.wantState {
			t.Fatalf("at %v: state %v, want %v", s.at, st.State, s.wantState)
		}
		sent := rec.take()
		if len(sent) != s.wantSent {
			t.Fatalf("at %v: sent %d alerts, want %d: %+v", s.at, len(sent), s.wantSent, sent)
		}
		for _, a := range sent {
			if firstStart.IsZero() {
				firstStart = a.StartsAt
			}
			if !a.StartsAt.Equal(firstStart) {
				t.Errorf("at %v: startsAt %v changed from %v", s.at, a.StartsAt, firstStart)
			}
			wantLabels := map[string]string{"alertname": "NamespacesP99", "severity": "page", "verb": "GET", "cluster": "test"}
			if fmt.Sprint(a.Labels) != fmt.Sprint(wantLabels) {
				t.Errorf("labels %v, want %v", a.Labels, wantLabels)
			}
			if s.wantResolve {
				if !a.EndsAt.Equal(clock.t) {
					t.Errorf("resolved endsAt %v, want resolve time %v", a.EndsAt, clock.t)
				}
				continue
			}
			if want := clock.t.Add(DefaultResolveTimeout); !a.EndsAt.Equal(want) {
				t.Errorf("firing endsAt %v, want now + the default resolve timeout = %v", a.EndsAt, want)
			}
			var v float64
			if _, err := fmt.Sscanf(a.Annotations["summary"], "p99 of GET is %gs over 1s", &v); err != nil || math.Abs(v-3) > 0.03 {
				t.Errorf("summary %q: want p99 of 3s within 1%%", a.Annotations["summary"])
			}
			if ids := strings.Split(a.Annotations["exemplar_trace_ids"], ","); len(ids) != ExemplarsPerWindow || len(ids[0]) != 32 {
				t.Errorf("exemplar_trace_ids %q", a.Annotations["exemplar_trace_ids"])
			}
		}
	}
	if firstStart != t0.Add(105*time.Second) {
		t.Errorf("startsAt %v, want the evaluation at which it fired", firstStart)
	}
}

// TestEndsAtHorizon: a firing alert's endsAt lies the resolve timeout
// ahead (15m by default, longer than a pod restart), never less than
// Prometheus's 4 × max(interval, resend_delay).
func TestEndsAtHorizon(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		want time.Duration
	}{
		{"default", Options{}, 15 * time.Minute},
		{"default with resend_delay 1m", Options{ResendDelay: time.Minute}, 15 * time.Minute},
		{"resolve_timeout set", Options{ResendDelay: time.Minute, ResolveTimeout: 30 * time.Minute}, 30 * time.Minute},
		{"resolve_timeout below 4 × resend_delay", Options{ResendDelay: time.Minute, ResolveTimeout: 2 * time.Minute}, 4 * time.Minute},
		{"long resend_delay", Options{ResendDelay: 10 * time.Minute}, 40 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, clock, rec := newTestEngine(t, namespacesRule, c.opts)
			get := apiserverSpan("GET", "/api/v1/namespaces/default")
			var sent []Alert
			for at := 15 * time.Second; at <= 5*time.Minute && len(sent) == 0; at += 15 * time.Second {
				feed(e, get, at-15*time.Second, at, time.Second, constant(3*time.Second))
				clock.t = t0.Add(at)
				e.Evaluate(context.Background(), clock.t)
				sent = rec.take()
			}
			if len(sent) != 1 {
				t.Fatalf("sent %d alerts, want the one firing", len(sent))
			}
			if got := sent[0].EndsAt.Sub(clock.t); got != c.want {
				t.Errorf("endsAt is %v ahead, want %v", got, c.want)
			}
		})
	}
}

func TestOnlyMatchingSpansCount(t *testing.T) {
	cases := []struct {
		name   string
		labels mapLabels
		counts bool
	}{
		{"GET namespaces", apiserverSpan("GET", "/api/v1/namespaces/default"), true},
		{"LIST namespaces", apiserverSpan("LIST", "/api/v1/namespaces"), true},
		{"WATCH namespaces", apiserverSpan("WATCH", "/api/v1/namespaces"), false},
		{"GET pods", mapLabels{"service.name": "apiserver", "span.kind": "server", "verb": "GET", "resource": "pods"}, false},
		{"internal child", mapLabels{"service.name": "apiserver", "span.kind": "internal", "verb": "GET", "resource": "namespaces"}, false},
		{"etcd server", mapLabels{"service.name": "etcd", "span.kind": "server", "verb": "GET", "resource": "namespaces"}, false},
		{"no kind", mapLabels{"service.name": "apiserver", "verb": "GET", "resource": "namespaces"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, clock, _ := newTestEngine(t, namespacesRule, Options{})
			feed(e, c.labels, 0, 60*time.Second, time.Second, constant(5*time.Second))
			clock.t = t0.Add(60 * time.Second)
			e.Evaluate(context.Background(), clock.t)
			st := e.Status()[0].Rules[0]
			got := len(st.Series) == 1 && st.Series[0].Observations == 60 && st.State == StatePending
			if got != c.counts {
				t.Fatalf("counted=%v, want %v (status %+v)", got, c.counts, st)
			}
		})
	}
}

func TestSpanKindRuleSeesClientSpans(t *testing.T) {
	const rule = `
groups:
  - name: kubelet
    rules:
      - alert: CRISlow
        matchers: ['service.name="kubelet"', 'span.kind="client"', 'span.name=~"runtime.v1.RuntimeService/.*"']
        group_by: [span.name, k8s.node.name]
        objective: {quantile: 0.9, threshold: 500ms}
        window: 1m
`
	e, clock, rec := newTestEngine(t, rule, Options{})
	l := mapLabels{"service.name": "kubelet", "span.kind": "client", "span.name": "runtime.v1.RuntimeService/RunPodSandbox", "k8s.node.name": "node-1"}
	feed(e, l, 0, 60*time.Second, time.Second, constant(2*time.Second))
	feed(e, mapLabels{"service.name": "kubelet", "span.kind": "server", "span.name": "runtime.v1.RuntimeService/RunPodSandbox"}, 0, 60*time.Second, time.Second, constant(2*time.Second))
	clock.t = t0.Add(time.Minute)
	e.Evaluate(context.Background(), clock.t)
	sent := rec.take()
	if len(sent) != 1 {
		t.Fatalf("sent %d, want 1", len(sent))
	}
	want := map[string]string{"alertname": "CRISlow", "span_name": "runtime.v1.RuntimeService/RunPodSandbox", "k8s_node_name": "node-1"}
	if fmt.Sprint(sent[0].Labels) != fmt.Sprint(want) {
		t.Errorf("labels %v, want %v", sent[0].Labels, want)
	}
}

func TestKeepFiringFor(t *testing.T) {
	rule := strings.Replace(namespacesRule, "for: 30s", "for: 0s\n        keep_firing_for: 45s", 1)
	e, clock, rec := newTestEngine(t, rule, Options{})
	get := apiserverSpan("GET", "/api/v1/namespaces/default")
	feed(e, get, 0, 60*time.Second, time.Second, constant(2*time.Second))
	fedTo := 60 * time.Second
	eval := func(at time.Duration) AlertState {
		if at > fedTo {
			feed(e, get, fedTo, at, time.Second, constant(10*time.Millisecond))
			fedTo = at
		}
		clock.t = t0.Add(at)
		e.Evaluate(context.Background(), clock.t)
		return e.Status()[0].Rules[0].State
	}
	if s := eval(60 * time.Second); s != StateFiring {
		t.Fatalf("for: 0s should fire at once, got %v", s)
	}
	// Fast requests from 60s on: the slow ones have left the window at
	// 120s, no breach, but it keeps firing for 45s.

	for _, at := range []time.Duration{135, 150, 165} {
		if s := eval(at * time.Second); s != StateFiring {
			t.Fatalf("at %ds: %v, want still firing", at, s)
		}
	}
	rec.take()
	if s := eval(180 * time.Second); s != StateInactive {
		t.Fatalf("at 180s: %v, want resolved after keep_firing_for", s)
	}
	if sent := rec.take(); len(sent) != 1 || !sent[0].EndsAt.Equal(clock.t) {
		t.Fatalf("want one resolved alert ending now, got %+v", sent)
	}
}

// TestNeverFedRuleIsBlind: a rule that sees nothing never alerts itself
// (an empty window is no breach) but, one window after it was loaded, says
// it is blind with SentinelNoData, resent like any firing alert.
func TestNeverFedRuleIsBlind(t *testing.T) {
	e, clock, rec := newTestEngine(t, namespacesRule, Options{ExternalLabels: map[string]string{"cluster": "c"}})
	var sentAt []time.Duration
	for at := 15 * time.Second; at <= 5*time.Minute; at += 15 * time.Second {
		clock.t = t0.Add(at)
		e.Evaluate(context.Background(), clock.t)
		for _, a := range rec.take() {
			want := map[string]string{"alertname": "SentinelNoData", "rule": "NamespacesP99", "rule_group": "apiserver", "severity": "ticket", "cluster": "c"}
			if fmt.Sprint(a.Labels) != fmt.Sprint(want) || a.Resolved(clock.t) {
				t.Fatalf("at %v: sent %+v, want only a firing %v", at, a, want)
			}
			sentAt = append(sentAt, at)
		}
	}
	if want := []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute, 5 * time.Minute}; fmt.Sprint(sentAt) != fmt.Sprint(want) {
		t.Errorf("SentinelNoData sent at %v, want %v (one window after load, then every resend_delay)", sentAt, want)
	}
	st := e.Status()[0].Rules[0]
	if st.State != StateInactive || len(st.Series) != 0 || !st.NoData || !st.NoDataSince.Equal(t0.Add(time.Minute)) {
		t.Fatalf("status %+v", st)
	}
}

func TestQuantileWithinRelativeError(t *testing.T) {
	for _, q := range []string{"0.5", "0.9", "0.99", "0.999"} {
		t.Run(q, func(t *testing.T) {
			rule := strings.Replace(namespacesRule, "quantile: 0.99", "quantile: "+q, 1)
			e, clock, _ := newTestEngine(t, rule, Options{})
			rng := rand.New(rand.NewPCG(1, 2))
			var durs []float64
			get := apiserverSpan("GET", "/api/v1/namespaces/x")
			for i := 0; i < 20000; i++ {
				d := time.Duration(rng.ExpFloat64() * float64(80*time.Millisecond))
				durs = append(durs, d.Seconds())
				e.Observe(&Observation{End: t0.Add(time.Duration(i) * 2 * time.Millisecond), Duration: d, Labels: get})
			}
			clock.t = t0.Add(45 * time.Second)
			e.Evaluate(context.Background(), clock.t)
			sort.Float64s(durs)
			var qf float64
			fmt.Sscan(q, &qf)
			exact := durs[int(math.Ceil(qf*float64(len(durs))))-1]
			got := e.Status()[0].Rules[0].Series[0].Value
			if rel := math.Abs(got-exact) / exact; rel > RelativeAccuracy {
				t.Fatalf("q%s: got %v, exact %v, relative error %.4f > %v", q, got, exact, rel, RelativeAccuracy)
			}
		})
	}
}

func TestExemplarsAreTheSlowest(t *testing.T) {
	e, clock, rec := newTestEngine(t, strings.Replace(namespacesRule, "for: 30s", "for: 0s", 1), Options{})
	get := apiserverSpan("GET", "/api/v1/namespaces/default")
	// Durations 1..60 × 100ms, shuffled by index order; the slowest 5 are 56..60.
	perm := rand.New(rand.NewPCG(3, 4)).Perm(60)
	for i, p := range perm {
		e.Observe(&Observation{End: t0.Add(time.Duration(i) * time.Second), Duration: time.Duration(p+1) * 100 * time.Millisecond,
			TraceID: traceID(p), Labels: get})
	}
	clock.t = t0.Add(time.Minute)
	e.Evaluate(context.Background(), clock.t)
	sent := rec.take()
	if len(sent) != 1 {
		t.Fatalf("sent %d", len(sent))
	}
	var want []string
	for p := 59; p >= 55; p-- {
		id := traceID(p)
		want = append(want, hex.EncodeToString(id[:]))
	}
	if got := sent[0].Annotations["exemplar_trace_ids"]; got != strings.Join(want, ",") {
		t.Fatalf("exemplar_trace_ids %s, want %s", got, strings.Join(want, ","))
	}
}

func TestTraceURLsAndGeneratorURL(t *testing.T) {
	e, clock, rec := newTestEngine(t, strings.Replace(namespacesRule, "for: 30s", "for: 0s", 1), Options{
		TraceURLTemplate: "https://tracing.example/trace/{{ .TraceID }}", ExternalURL: "http://sentinel:9464/"})
	feed(e, apiserverSpan("GET", "/api/v1/namespaces/a"), 0, 60*time.Second, time.Second, constant(2*time.Second))
	clock.t = t0.Add(time.Minute)
	e.Evaluate(context.Background(), clock.t)
	a := rec.take()[0]
	urls := strings.Split(a.Annotations["exemplar_trace_urls"], ",")
	ids := strings.Split(a.Annotations["exemplar_trace_ids"], ",")
	if len(urls) != len(ids) || urls[0] != "https://tracing.example/trace/"+ids[0] {
		t.Errorf("urls %v ids %v", urls, ids)
	}
	if a.GeneratorURL != "http://sentinel:9464/?group=apiserver#rule-NamespacesP99" {
		t.Errorf("generatorURL %q", a.GeneratorURL)
	}
}

func TestCardinalityCap(t *testing.T) {
	const rule = `
groups:
  - name: g
    rules:
      - alert: PerNode
        matchers: ['service.name="apiserver"']
        group_by: [k8s.node.name]
        objective: {quantile: 0.5, threshold: 1s}
        window: 1m
`
	reg := prometheus.NewRegistry()
	e, _, _ := newTestEngine(t, rule, Options{MaxGroupsPerRule: 3, Registerer: reg})
	for i := 0; i < 10; i++ {
		e.Observe(&Observation{End: t0, Duration: time.Millisecond,
			Labels: mapLabels{"service.name": "apiserver", "span.kind": "server", "k8s.node.name": fmt.Sprint("node-", i)}})
	}
	if n := len(e.Status()[0].Rules[0].Series); n != 3 {
		t.Fatalf("%d groups, want the cap of 3", n)
	}
	if got := testutil.ToFloat64(e.metrics.overflow.WithLabelValues("g", "PerNode")); got != 7 {
		t.Fatalf("overflow counted %v, want 7", got)
	}
}

func TestReloadKeepsUnchangedRules(t *testing.T) {
	e, clock, rec := newTestEngine(t, namespacesRule, Options{})
	feed(e, apiserverSpan("GET", "/api/v1/namespaces/a"), 0, 60*time.Second, time.Second, constant(2*time.Second))
	for _, at := range []time.Duration{30, 45, 60} {
		clock.t = t0.Add(at * time.Second)
		e.Evaluate(context.Background(), clock.t)
	}
	if st := e.Status()[0].Rules[0].State; st != StateFiring {
		t.Fatalf("before reload: %v", st)
	}
	rec.take()

	e.Load(loadRules(t, namespacesRule)) // unchanged
	if st := e.Status()[0].Rules[0]; st.State != StateFiring || st.Series[0].Observations == 0 {
		t.Fatalf("unchanged rule lost its state: %+v", st)
	}

	changed := strings.Replace(namespacesRule, "threshold: 1s", "threshold: 5s", 1)
	e.Load(loadRules(t, changed))
	if st := e.Status()[0].Rules[0]; st.State != StateInactive || len(st.Series) != 0 {
		t.Fatalf("changed rule kept old state: %+v", st)
	}
	if sent := rec.take(); len(sent) != 1 || !sent[0].EndsAt.Equal(clock.t) {
		t.Fatalf("replaced rule's firing alert should resolve now, got %+v", sent)
	}
}

func TestLateObservationsAreDropped(t *testing.T) {
	e, clock, _ := newTestEngine(t, namespacesRule, Options{})
	get := apiserverSpan("GET", "/api/v1/namespaces/a")
	clock.t = t0.Add(11 * time.Minute)
	feed(e, get, 10*time.Minute, 11*time.Minute, time.Second, constant(time.Millisecond))
	e.Observe(&Observation{End: t0.Add(time.Minute), Duration: 9 * time.Second, Labels: get})
	clock.t = t0.Add(11 * time.Minute)
	e.Evaluate(context.Background(), clock.t)
	if st := e.Status()[0].Rules[0].Series[0]; st.Observations != 60 || st.Value > 0.01 {
		t.Fatalf("late observation counted: %+v", st)
	}
	if e.metrics.late.Load() != 1 {
		t.Fatalf("late = %d", e.metrics.late.Load())
	}
	// A span from a clock far ahead is refused rather than allowed to push the window on.
	e.Observe(&Observation{End: clock.t.Add(time.Hour), Duration: 9 * time.Second, Labels: get})
	feed(e, get, 11*time.Minute, 12*time.Minute, time.Second, constant(time.Millisecond))
	clock.t = t0.Add(12 * time.Minute)
	e.Evaluate(context.Background(), clock.t)
	if st := e.Status()[0].Rules[0].Series[0]; st.Observations != 60 || e.metrics.late.Load() != 2 {
		t.Fatalf("future span: %+v, late %d", st, e.metrics.late.Load())
	}
}

func TestObserveDoesNotAllocate(t *testing.T) {
	e, _, _ := newTestEngine(t, namespacesRule, Options{})
	get := apiserverSpan("GET", "/api/v1/namespaces/a")
	other := apiserverSpan("GET", "/api/v1/pods")
	o := &Observation{End: t0, Duration: 20 * time.Millisecond, TraceID: traceID(1), Labels: get}
	e.Observe(o) // opens the group and its slot
	allocs := testing.AllocsPerRun(1000, func() {
		o.Labels = get
		e.Observe(o)
		o.Labels = other
		e.Observe(o)
	})
	if allocs != 0 {
		t.Fatalf("Observe allocates %v times per call", allocs)
	}
}

func TestCompiledMatchersAgreeWithAlertmanager(t *testing.T) {
	const rule = `
groups:
  - name: g
    rules:
      - alert: A
        matchers: ['a="x"', 'b!="y"', 'c=~"GET|LIST"', 'd!~"WATCH|CONNECT"', 'e=~"pod.*"', 'f=~"LIST|LISTEN"', 'g=""']
        objective: {quantile: 0.5, threshold: 1s}
        window: 1m
`
	set := loadRules(t, rule)
	values := []string{"", "x", "y", "GET", "LIST", "LISTEN", "get", "WATCH", "CONNECT", "pods", "xpod", "GET|LIST"}
	for _, m := range set.Groups[0].Rules[0].Matchers {
		cm := compileMatcher(m)
		for _, v := range values {
			if got, want := cm.matches(v), m.Matches(v); got != want {
				t.Errorf("%s on %q: compiled %v, alertmanager %v", m, v, got, want)
			}
		}
	}
}

// TestConcurrentObserveEvaluateLoad runs the three entry points at once;
// with -race it proves they share nothing unguarded.
func TestConcurrentObserveEvaluateLoad(t *testing.T) {
	e, _, _ := newTestEngine(t, namespacesRule, Options{})
	set := loadRules(t, namespacesRule)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e.Observe(&Observation{End: t0.Add(time.Duration(i) * time.Millisecond), Duration: time.Second, TraceID: traceID(i),
					Labels: apiserverSpan([]string{"GET", "LIST"}[(i+w)%2], "/api/v1/namespaces/x")})
			}
		}(w)
	}
	for i := 0; i < 50; i++ {
		e.Evaluate(context.Background(), t0.Add(time.Duration(i)*time.Second))
		e.Load(set)
		_ = e.Status()
	}
	close(stop)
	wg.Wait()
}

// Regression tests from review.

func TestMetricsRuleChecksItsMetric(t *testing.T) {
	const twoRules = `
groups:
  - name: m
    interval: 15s
    rules:
      - alert: NamespacesP99
        source: metrics
        metric: apiserver_request_duration_seconds
        matchers: ['resource="namespaces"']
        objective: {quantile: 0.99, threshold: 1s}
        window: 5m
      - alert: PodsP99
        source: metrics
        metric: apiserver_request_duration_seconds
        matchers: ['resource="pods"']
        objective: {quantile: 0.99, threshold: 1s}
        window: 5m
`
	e, clock, _ := newTestEngine(t, twoRules, Options{})
	clock.t = t0.Add(time.Minute)
	e.Observe(&Observation{Source: SourceMetrics, End: t0.Add(50 * time.Second), Count: 100, UpperBound: 0.1,
		Bounds: []float64{0.1, 1, 60}, Labels: mapLabels{"__name__": "apiserver_request_duration_seconds", "resource": "namespaces"}})
	// Another metric with the same labels: a request counter.
	e.Observe(&Observation{Source: SourceMetrics, End: t0.Add(50 * time.Second), Count: 100, UpperBound: math.Inf(1),
		Labels: mapLabels{"__name__": "apiserver_request_total", "resource": "namespaces", "code": "200"}})
	e.Evaluate(context.Background(), clock.t)
	if st := e.Status()[0].Rules[0]; len(st.Series) != 1 || st.Series[0].Observations != 100 || st.State != StateInactive {
		t.Fatalf("another metric leaked into the rule: %+v", st)
	}
}

func TestFutureSkewKeepsTheWindow(t *testing.T) {
	e, clock, _ := newTestEngine(t, namespacesRule, Options{})
	clock.t = t0.Add(time.Minute)
	get := apiserverSpan("GET", "/api/v1/namespaces/a")
	feed(e, get, 0, time.Minute, time.Second, constant(2*time.Second))
	// A node whose clock runs 59s ahead: accepted, and it must not push
	// the oldest slots of the window out.
	e.Observe(&Observation{End: clock.t.Add(59 * time.Second), Duration: time.Millisecond, Labels: get})
	e.Evaluate(context.Background(), clock.t)
	if n := e.Status()[0].Rules[0].Series[0].Observations; n != 60 {
		t.Fatalf("%d observations in the window, want 60", n)
	}
}

func TestRepeatedAlternativeCountsOnce(t *testing.T) {
	rule := strings.Replace(namespacesRule, `'verb=~"GET|LIST"'`, `'verb=~"GET|LIST|GET"'`, 1)
	e, clock, _ := newTestEngine(t, rule, Options{})
	e.Observe(&Observation{End: t0.Add(time.Second), Duration: time.Second, Labels: apiserverSpan("GET", "/api/v1/namespaces/a")})
	clock.t = t0.Add(15 * time.Second)
	e.Evaluate(context.Background(), clock.t)
	if n := e.Status()[0].Rules[0].Series[0].Observations; n != 1 {
		t.Fatalf("one span counted %d times", n)
	}
}

func TestUnevenCronRestoresAfterRestart(t *testing.T) {
	const rule = `
groups:
  - name: cron
    interval: "0,45 * * * * *"
    rules:
      - alert: P99
        matchers: ['service.name="apiserver"']
        objective: {quantile: 0.99, threshold: 1s}
        window: 5m
`
	e1, clock1, _ := newTestEngine(t, rule, Options{})
	feed(e1, mapLabels{"service.name": "apiserver", "span.kind": "server"}, 0, time.Minute, time.Second, constant(time.Second))
	clock1.t = t0.Add(time.Minute)
	var buf bytes.Buffer
	if err := e1.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	e2, clock2, _ := newTestEngine(t, rule, Options{})
	clock2.t = t0.Add(time.Minute + 50*time.Second) // another gap of the cron spec is next
	if n, err := e2.RestoreSnapshot(&buf); err != nil || n != 1 {
		t.Fatalf("restored %d: %v", n, err)
	}
}

// TestLiteralAlternationAgreesWithTheRegex checks the expansion of regex
// matchers into sets against the anchored regex itself: on every string
// of the set, and on strings one edit away from them (a byte dropped,
// added or changed, the case flipped), membership is a match.
func TestLiteralAlternationAgreesWithTheRegex(t *testing.T) {
	tests := []struct {
		expr string
		want int // strings in the set; 0: not expanded (run as a regex)
	}{
		{"GET|LIST", 2},
		{"POST|PUT|PATCH|DELETE", 4}, // parsed as P(?:OST|UT|ATCH)|DELETE
		{"GET|LIST|GET", 2},
		{"v[12]|v1beta1", 3},
		{"pods(/log)?", 2},
		{"(pods|nodes)/(status|log)", 4},
		{"a[b-d]e", 3},
		{"(?i)get", 0},
		{"pod.*", 0},
		{"x+", 0},
		{"|GET", 0},     // matches the empty value: an absent label
		{"a?", 0},       // likewise
		{"[a-z]{3}", 0}, // too many strings
		{"\uFFFD|x", 0}, // the regex matches invalid UTF-8 as U+FFFD
		{"[\uFFF0-\uFFFF]", 0},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			vs, ok := literalAlternation(tt.expr)
			if got := len(vs); !ok && got != 0 || got != tt.want {
				t.Fatalf("literalAlternation(%q) = %q, %v; want %d strings", tt.expr, vs, ok, tt.want)
			}
			if !ok {
				return
			}
			re := regexp.MustCompile("^(?:" + tt.expr + ")$")
			var probes []string
			for _, v := range vs {
				probes = append(probes, v, strings.ToLower(v), strings.ToUpper(v), v+"x", "x"+v, v+v, "\xff"+v)
				for i := range len(v) {
					probes = append(probes, v[:i]+v[i+1:], v[:i]+"e"+v[i+1:], v[:i]+"\xff"+v[i+1:])
				}
			}
			for _, p := range probes {
				if in, match := slices.Contains(vs, p), re.MatchString(p); in != match {
					t.Errorf("%q: in the set %v, regex match %v", p, in, match)
				}
			}
		})
	}
}

// TestObservationsCountedOnce: spans whose source the receiver counts
// (SourceCounted, then SpansFrom once per resource) and spans it does not
// are each counted once in sentinel_observations_total.
func TestObservationsCountedOnce(t *testing.T) {
	e, _, _ := newTestEngine(t, namespacesRule, Options{})
	for i := range 5 {
		e.Observe(&Observation{End: t0, Duration: time.Second, TraceID: traceID(i), SourceCounted: i < 3,
			Labels: apiserverSpan("GET", "/api/v1/namespaces/x")})
	}
	e.SpansFrom("apiserver", 3)
	e.Observe(&Observation{Source: SourceMetrics, End: t0, Count: 4, Labels: mapLabels{"__name__": "m"}})
	if got := e.metrics.observations[SourceSpans].Load(); got != 5 {
		t.Errorf("spans observed: %d, want 5", got)
	}
	if got := e.metrics.observations[SourceMetrics].Load(); got != 1 {
		t.Errorf("metrics observations: %d, want 1", got)
	}
}
