package engine

import (
	"context"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/rules"
)

const budgetRule = `
groups:
  - name: budget
    interval: 1m
    rules:
      - slo: NamespacesBudget
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        objective: {target: 99.0, latency: 1s}
        period: 28d
        burn_rate_alerts: default
        labels: {team: control-plane}
        annotations:
          summary: "burning {{ $value }}x the budget (pair threshold {{ $threshold }})"
`

// sloTraffic sends perMinute requests per minute in (from, to], a fraction
// bad of them slower than the 1s objective.
func sloTraffic(e *Engine, clock *fakeClock, from, to time.Duration, perMinute int, bad float64) {
	l := apiserverSpan("GET", "/api/v1/namespaces/default")
	step := time.Minute / time.Duration(perMinute)
	i := 0
	for at := from + step; at <= to; at += step {
		d := 50 * time.Millisecond
		if float64(i%100) < bad*100 {
			d = 2 * time.Second
		}
		clock.t = t0.Add(at)
		e.Observe(&Observation{End: t0.Add(at), Duration: d, TraceID: traceID(i), Labels: l})
		i++
	}
}

// evalEvery evaluates every minute in (from, to] and returns the firing
// pairs (severity/long/short) at the end.
func evalEvery(e *Engine, clock *fakeClock, from, to time.Duration) []string {
	for at := from + time.Minute; at <= to; at += time.Minute {
		clock.t = t0.Add(at)
		e.Evaluate(context.Background(), clock.t)
	}
	var firing []string
	for _, a := range e.Alerts() {
		if a.State == StateFiring {
			firing = append(firing, a.Labels["severity"]+"/"+a.Labels["long_window"]+"/"+a.Labels["short_window"])
		}
	}
	sort.Strings(firing)
	return firing
}

func TestBurnRatePairs(t *testing.T) {
	cases := []struct {
		name   string
		run    func(e *Engine, c *fakeClock) []string
		firing []string
	}{
		{"fast burn on both windows pages after for (2m)", func(e *Engine, c *fakeClock) []string {
			sloTraffic(e, c, 0, 24*time.Hour, 60, 0)
			evalEvery(e, c, 0, 24*time.Hour)
			// Every request bad: the 1h window passes 14.4× after ~9 minutes.
			sloTraffic(e, c, 24*time.Hour, 24*time.Hour+14*time.Minute, 60, 1)
			return evalEvery(e, c, 24*time.Hour, 24*time.Hour+14*time.Minute)
		}, []string{"page/1h/5m"}},
		{"not before its for", func(e *Engine, c *fakeClock) []string {
			sloTraffic(e, c, 0, 24*time.Hour, 60, 0)
			evalEvery(e, c, 0, 24*time.Hour)
			sloTraffic(e, c, 24*time.Hour, 24*time.Hour+10*time.Minute, 60, 1)
			return evalEvery(e, c, 24*time.Hour, 24*time.Hour+10*time.Minute)
		}, nil},
		{"short window only does not fire", func(e *Engine, c *fakeClock) []string {
			sloTraffic(e, c, 0, 24*time.Hour, 60, 0)
			evalEvery(e, c, 0, 24*time.Hour)
			sloTraffic(e, c, 24*time.Hour, 24*time.Hour+55*time.Minute, 60, 0)
			sloTraffic(e, c, 24*time.Hour+55*time.Minute, 25*time.Hour, 60, 1) // 5m at 100×: 1h at 8.3×
			return evalEvery(e, c, 24*time.Hour, 25*time.Hour)
		}, nil},
		{"all four pairs at once", func(e *Engine, c *fakeClock) []string {
			sloTraffic(e, c, 0, 4*24*time.Hour, 60, 0.5) // 50× everywhere, for days
			return evalEvery(e, c, 0, 4*24*time.Hour)
		}, []string{"page/1h/5m", "page/6h/30m", "ticket/1d/2h", "ticket/3d/6h"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, clock, _ := newTestEngine(t, budgetRule, Options{})
			got := c.run(e, clock)
			if strings.Join(got, ",") != strings.Join(c.firing, ",") {
				t.Fatalf("firing %v, want %v", got, c.firing)
			}
		})
	}
}

// TestLongWindowOnlyIsQuiet: a burn that has stopped keeps the long window
// high, but the clean short window holds the page back.
func TestLongWindowOnlyIsQuiet(t *testing.T) {
	e, clock, rec := newTestEngine(t, budgetRule, Options{})
	sloTraffic(e, clock, 0, 50*time.Minute, 60, 0.3)
	evalEvery(e, clock, 0, 50*time.Minute)
	rec.take()
	sloTraffic(e, clock, 50*time.Minute, 60*time.Minute, 60, 0)
	for at := 50*time.Minute + time.Minute; at <= 60*time.Minute; at += time.Minute {
		clock.t = t0.Add(at)
		e.Evaluate(context.Background(), clock.t)
		st := e.Status()[0].Rules[0].Series[0].SLO
		if at >= 56*time.Minute && (st.BurnRates["1h"] < 14.4 || st.BurnRates["5m"] != 0) {
			t.Fatalf("at %v: burn rates %v: the setup is not long-only", at, st.BurnRates)
		}
		if at >= 56*time.Minute && st.Pairs[0].State != StateInactive {
			t.Fatalf("at %v: the 1h/5m pair is %v with a clean short window", at, st.Pairs[0].State)
		}
	}
}

func TestBudgetAndAlertShape(t *testing.T) {
	// A 30-day period: the default pairs' factors are then the workbook's
	// 14.4, 6, 3 and 1, and the 1h pair is the first to page.
	monthly := strings.Replace(budgetRule, "period: 28d", "period: 30d", 1)
	e, clock, rec := newTestEngine(t, monthly, Options{ExternalLabels: map[string]string{"cluster": "c"}})
	// 10000 requests, 50 of them slow: half the 1% budget is spent.
	sloTraffic(e, clock, 0, 100*time.Minute, 100, 0)
	l := apiserverSpan("GET", "/api/v1/namespaces/default")
	for i := 0; i < 50; i++ {
		e.Observe(&Observation{End: t0.Add(100 * time.Minute), Duration: 3 * time.Second, TraceID: traceID(1000 + i), Labels: l})
	}
	clock.t = t0.Add(100 * time.Minute)
	e.Evaluate(context.Background(), clock.t)
	st := e.Status()[0].Rules[0]
	s := st.Series[0]
	if st.Kind != "slo" || s.Observations != 10050 || s.Failed != 50 {
		t.Fatalf("status %+v", s)
	}
	if want := 1 - 50.0/10050/0.01; math.Abs(s.SLO.BudgetRemaining-want) > 1e-9 {
		t.Fatalf("budget remaining %v, want %v", s.SLO.BudgetRemaining, want)
	}
	// Exhaust it: another 51 bad requests put it below zero.
	for i := 0; i < 60; i++ {
		e.Observe(&Observation{End: t0.Add(101 * time.Minute), Duration: 3 * time.Second, TraceID: traceID(2000 + i), Labels: l})
	}
	for _, at := range []time.Duration{101, 102, 103} {
		clock.t = t0.Add(at * time.Minute)
		e.Evaluate(context.Background(), clock.t)
	}
	s = e.Status()[0].Rules[0].Series[0]
	if s.SLO.BudgetRemaining >= 0 {
		t.Fatalf("budget not exhausted: %v", s.SLO.BudgetRemaining)
	}
	// Then a fast burn pages.
	rec.take()
	sloTraffic(e, clock, 103*time.Minute, 125*time.Minute, 100, 1)
	evalEvery(e, clock, 103*time.Minute, 125*time.Minute)
	// Fed ahead of the evaluations, the 5m ring holds only the last
	// minutes at first: the rule is blind until then (SentinelNoData).
	var sent []Alert
	for _, a := range rec.take() {
		if a.Labels["alertname"] == "NamespacesBudget" {
			sent = append(sent, a)
		}
	}
	if len(sent) == 0 {
		t.Fatal("no alert")
	}
	a := sent[0]
	want := map[string]string{"alertname": "NamespacesBudget", "team": "control-plane", "cluster": "c",
		"severity": "page", "long_window": "1h", "short_window": "5m"}
	for k, v := range want {
		if a.Labels[k] != v {
			t.Errorf("label %s=%q, want %q (%v)", k, a.Labels[k], v, a.Labels)
		}
	}
	for _, k := range []string{"burn_rate_long", "burn_rate_short", "budget_remaining", "value", "threshold", "exemplar_trace_ids", "summary"} {
		if a.Annotations[k] == "" {
			t.Errorf("annotation %s missing: %v", k, a.Annotations)
		}
	}
	if a.Annotations["threshold"] != "14.4x" || !strings.HasPrefix(a.Annotations["summary"], "burning ") {
		t.Errorf("annotations %v", a.Annotations)
	}
	if id := a.Annotations["exemplar_trace_ids"][:32]; !strings.HasPrefix(id, "ab") {
		t.Errorf("exemplar %s", id)
	}
}

func TestMuteHoldsNotificationsBack(t *testing.T) {
	rule := strings.Replace(namespacesRule, "    interval: 15s\n", "    interval: 15s\n    mute: [{schedule: \"0 0 * * *\", duration: 90s}]\n", 1)
	rule = strings.Replace(rule, "for: 30s", "for: 0s", 1)
	e, clock, rec := newTestEngine(t, rule, Options{})
	feed(e, apiserverSpan("GET", "/api/v1/namespaces/a"), 0, 2*time.Minute, time.Second, constant(2*time.Second))
	for _, at := range []time.Duration{15, 30, 45, 60, 75} {
		clock.t = t0.Add(at * time.Second)
		e.Evaluate(context.Background(), clock.t)
		if st := e.Status()[0].Rules[0].State; st != StateFiring {
			t.Fatalf("evaluation must go on during the mute: %v", st)
		}
	}
	if sent := rec.take(); len(sent) != 0 {
		t.Fatalf("sent during the maintenance window: %v", sent)
	}
	clock.t = t0.Add(90 * time.Second)
	e.Evaluate(context.Background(), clock.t)
	if sent := rec.take(); len(sent) != 1 || !sent[0].StartsAt.Equal(t0.Add(15*time.Second)) {
		t.Fatalf("after the window: %+v", sent)
	}
}

func TestSLOMemoryPerGroup(t *testing.T) {
	groups, err := rules.Parse("f.yaml", []byte(budgetRule), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &ruleState{slo: newSLORule(groups[0].Rules[0].SLO)}
	s := r.newSLOSeries()
	bytes := 0
	for _, ring := range s.rings {
		bytes += len(ring.slots) * 24
	}
	bytes += len(s.exemplars.slots) * 360 // a slot with its five exemplars
	// Seven windows (5m … 3d) plus the 28d period, 32 counter slots each,
	// and one exemplar ring: the bound docs/slo.md states.
	if len(s.rings) != 8 || bytes > 20<<10 {
		t.Fatalf("%d rings, %d bytes per SLO group", len(s.rings), bytes)
	}
}
