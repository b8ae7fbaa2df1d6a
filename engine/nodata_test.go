package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// sentAlert is an alert as the notifier got it, with when.
type sentAlert struct {
	Alert
	at time.Time
}

// resolve reports whether the alert had ended when it was sent: a firing
// alert's endsAt is always ahead of the evaluation that sends it.
func (a sentAlert) resolve() bool { return !a.EndsAt.After(a.at) }

// timedRecorder records what the engine sends, stamped with the fake
// clock (the engine sends synchronously from Evaluate).
type timedRecorder struct {
	clock *fakeClock
	mu    sync.Mutex
	sent  []sentAlert
}

func (r *timedRecorder) Send(alerts ...Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range alerts {
		r.sent = append(r.sent, sentAlert{a, r.clock.t})
	}
}

// take returns and forgets what was sent with the given alertname, or
// everything when alertname is empty.
func (r *timedRecorder) take(alertname string) []sentAlert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out, rest []sentAlert
	for _, a := range r.sent {
		if alertname == "" || a.Labels["alertname"] == alertname {
			out = append(out, a)
		} else {
			rest = append(rest, a)
		}
	}
	r.sent = rest
	return out
}

// noDataRun evaluates a test engine every 15s, feeding each interval's
// spans first (as the daemon would receive them).
type noDataRun struct {
	e     *Engine
	clock *fakeClock
	rec   *timedRecorder
	at    time.Duration
}

func newNoDataRun(t *testing.T, rule string, opts Options) *noDataRun {
	t.Helper()
	clock := &fakeClock{t: t0}
	rec := &timedRecorder{clock: clock}
	opts.Clock, opts.Notifier = clock, rec
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.Load(loadRules(t, rule))
	return &noDataRun{e: e, clock: clock, rec: rec}
}

// until evaluates every 15s up to to; spans gives the duration of the
// spans (one a second) of each interval, or 0 for none.
func (r *noDataRun) until(to time.Duration, spans func(at time.Duration) time.Duration, l Labels) {
	for r.at < to {
		from := r.at
		r.at += 15 * time.Second
		if d := spans(r.at); d > 0 {
			feed(r.e, l, from, r.at, time.Second, constant(d))
		}
		r.clock.t = t0.Add(r.at)
		r.e.Evaluate(context.Background(), r.clock.t)
	}
}

func (r *noDataRun) rule() RuleStatus { return r.e.Status()[0].Rules[0] }

func slow(time.Duration) time.Duration { return 3 * time.Second }
func none(time.Duration) time.Duration { return 0 }
func fast(time.Duration) time.Duration { return 10 * time.Millisecond }

func resolves(alerts []sentAlert) []sentAlert {
	var out []sentAlert
	for _, a := range alerts {
		if a.resolve() {
			out = append(out, a)
		}
	}
	return out
}

// noResolve fails if any alert sent had ended by the time it was sent.
func noResolve(t *testing.T, alerts []sentAlert, what string) {
	t.Helper()
	if r := resolves(alerts); len(r) > 0 {
		t.Fatalf("%s: sent a resolve: %+v", what, r[0])
	}
}

// TestStalledInputKeepsAlertFiring is the false resolve of issue 9: a firing
// alert whose input stops is not resolved; it is annotated no_data,
// SentinelNoData says the rule is blind, and then either the data returns or
// no_data_timeout passes.
func TestStalledInputKeepsAlertFiring(t *testing.T) {
	get := apiserverSpan("GET", "/api/v1/namespaces/default")
	cases := []struct {
		name  string
		after func(time.Duration) time.Duration // input after the stall (from 30m)
		// at 40m: the alert's state, and when it was resolved (zero: not)
		wantState   AlertState
		wantResolve time.Duration
	}{
		{"input stays away: resolves after no_data_timeout", none, StateInactive, 38 * time.Minute},
		{"slow data returns: keeps firing, no_data gone", slow, StateFiring, 0},
		{"fast data returns: resolves on data", fast, StateInactive, 30*time.Minute + 15*time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rule := strings.Replace(namespacesRule, "for: 30s", "for: 30s\n        no_data_timeout: 35m", 1)
			r := newNoDataRun(t, rule, Options{ExternalLabels: map[string]string{"cluster": "c"}})
			r.until(2*time.Minute, slow, get)
			if st := r.rule().State; st != StateFiring {
				t.Fatalf("not firing after 2m of slow requests: %v", st)
			}
			fired := r.rec.take("NamespacesP99")
			if len(fired) == 0 {
				t.Fatal("nothing sent")
			}
			startsAt := fired[0].StartsAt

			// The input stalls for 28 minutes: the window empties at 3m.
			r.until(30*time.Minute, none, get)
			sent := r.rec.take("NamespacesP99")
			noResolve(t, sent, "input stalled")
			if len(sent) < 25 {
				t.Fatalf("a firing alert is resent every minute; sent %d in 28m", len(sent))
			}
			last := sent[len(sent)-1]
			if !last.StartsAt.Equal(startsAt) {
				t.Errorf("startsAt moved from %v to %v", startsAt, last.StartsAt)
			}
			const wantNoData = "since 2026-01-01T00:03:00Z: no observations in the 1m window; keeps firing until data returns or for 35m"
			if got := last.Annotations[NoDataAnnotation]; got != wantNoData {
				t.Errorf("no_data annotation %q, want %q", got, wantNoData)
			}
			if last.Annotations["summary"] == "" || last.Annotations["exemplar_trace_ids"] == "" {
				t.Errorf("the last known annotations are lost: %v", last.Annotations)
			}
			st := r.rule()
			if st.State != StateFiring || !st.NoData || len(st.Series) != 1 || !st.Series[0].NoData ||
				!st.Series[0].NoDataSince.Equal(t0.Add(3*time.Minute)) || st.Alerts[0].Annotations[NoDataAnnotation] != wantNoData {
				t.Errorf("status while stalled: %+v", st)
			}
			blind := r.rec.take(NoDataAlertName)
			if len(blind) == 0 {
				t.Fatal("no SentinelNoData while the rule is blind")
			}
			noResolve(t, blind, "SentinelNoData while blind")
			wantLabels := map[string]string{"alertname": "SentinelNoData", "rule": "NamespacesP99", "rule_group": "apiserver", "severity": "ticket", "cluster": "c"}
			if fmt.Sprint(blind[0].Labels) != fmt.Sprint(wantLabels) || !blind[0].StartsAt.Equal(t0.Add(3*time.Minute)) {
				t.Errorf("SentinelNoData %+v, want labels %v from 3m", blind[0], wantLabels)
			}

			r.until(40*time.Minute, c.after, get)
			st = r.rule()
			if st.State != c.wantState {
				t.Fatalf("at 40m: %v, want %v", st.State, c.wantState)
			}
			sent = r.rec.take("NamespacesP99")
			res := resolves(sent)
			switch {
			case c.wantResolve == 0 && len(res) > 0:
				t.Fatalf("resolved: %+v", res)
			case c.wantResolve != 0 && (len(res) != 1 || !res[0].EndsAt.Equal(t0.Add(c.wantResolve))):
				t.Fatalf("resolves %+v, want one at %v", res, c.wantResolve)
			}
			if c.after(0) == 0 {
				if res[0].Annotations[NoDataAnnotation] == "" {
					t.Errorf("a resolve for lack of data should say so: %v", res[0].Annotations)
				}
				return
			}
			if a := sent[len(sent)-1]; a.Annotations[NoDataAnnotation] != "" {
				t.Errorf("no_data annotation kept after data returned: %v", a.Annotations)
			}
			if st.NoData || st.Series[0].NoData {
				t.Errorf("status still no_data: %+v", st)
			}
			// SentinelNoData resolves once the rule sees again.
			blind = resolves(r.rec.take(NoDataAlertName))
			if len(blind) != 1 || !blind[0].EndsAt.Equal(t0.Add(30*time.Minute+15*time.Second)) {
				t.Errorf("SentinelNoData resolves %+v, want one when data returned", blind)
			}
		})
	}
}

// TestPendingDoesNotFireOnNoData: an alert pending when its input stops
// goes back to inactive, and does not fire at once when data returns.
func TestPendingDoesNotFireOnNoData(t *testing.T) {
	get := apiserverSpan("GET", "/api/v1/namespaces/default")
	rule := strings.Replace(namespacesRule, "for: 30s", "for: 3m", 1)
	r := newNoDataRun(t, rule, Options{})
	r.until(time.Minute, slow, get)
	if st := r.rule().State; st != StatePending {
		t.Fatalf("at 1m: %v, want pending", st)
	}
	for r.at < 10*time.Minute {
		r.until(r.at+15*time.Second, none, get)
		if st := r.rule().State; st == StateFiring {
			t.Fatalf("fired at %v on no data", r.at)
		}
	}
	if st := r.rule(); st.State != StateInactive || !st.NoData {
		t.Fatalf("at 10m: %+v, want inactive and blind", st)
	}
	// Slow data again: pending afresh, firing only after another 3m.
	r.until(12*time.Minute, slow, get)
	if st := r.rule().State; st != StatePending {
		t.Fatalf("2m after data returned: %v, want pending (for: 3m counts from the return)", st)
	}
	if sent := r.rec.take("NamespacesP99"); len(sent) != 0 {
		t.Fatalf("sent %v", sent)
	}
}

// TestMinObservations: a window with fewer observations than
// min_observations is no_data, neither breach nor clear.
func TestMinObservations(t *testing.T) {
	get := apiserverSpan("GET", "/api/v1/namespaces/default")
	cases := []struct {
		min        string
		wantState  AlertState
		wantNoData bool
	}{
		{"1", StatePending, false},  // the default: 60 spans judge
		{"60", StatePending, false}, // exactly enough
		{"61", StateInactive, true}, // one short: no_data, not pending
	}
	for _, c := range cases {
		t.Run(c.min, func(t *testing.T) {
			rule := strings.Replace(namespacesRule, "for: 30s", "for: 5m\n        min_observations: "+c.min, 1)
			r := newNoDataRun(t, rule, Options{})
			r.until(time.Minute, slow, get)
			st := r.rule()
			if st.State != c.wantState || st.Series[0].NoData != c.wantNoData || st.Series[0].Observations != 60 {
				t.Fatalf("state %v, no_data %v (%d observations); want %v, %v", st.State, st.Series[0].NoData, st.Series[0].Observations, c.wantState, c.wantNoData)
			}
		})
	}
}

// TestNoDataTimeoutZero: no_data_timeout: 0s takes no data for clear, the
// old behaviour: the alert resolves when its window empties.
func TestNoDataTimeoutZero(t *testing.T) {
	get := apiserverSpan("GET", "/api/v1/namespaces/default")
	rule := strings.Replace(namespacesRule, "for: 30s", "for: 30s\n        no_data_timeout: 0s", 1)
	r := newNoDataRun(t, rule, Options{})
	r.until(2*time.Minute, slow, get)
	r.until(4*time.Minute, none, get)
	res := resolves(r.rec.take("NamespacesP99"))
	if len(res) != 1 || !res[0].EndsAt.Equal(t0.Add(3*time.Minute)) || res[0].Annotations[NoDataAnnotation] != "" {
		t.Fatalf("want a plain resolve when the window empties at 3m, got %+v", res)
	}
}

// TestBurnRatePairKeepsFiringOnNoData: a paging burn-rate pair whose
// traffic stops keeps firing (annotated) for no_data_timeout.
func TestBurnRatePairKeepsFiringOnNoData(t *testing.T) {
	r := newNoDataRun(t, budgetRule, Options{})
	e, clock := r.e, r.clock
	sloTraffic(e, clock, 0, 60*time.Minute, 60, 0)
	evalEvery(e, clock, 0, 60*time.Minute)
	for at := 60 * time.Minute; at < 80*time.Minute; at += time.Minute {
		sloTraffic(e, clock, at, at+time.Minute, 60, 1)
		evalEvery(e, clock, at, at+time.Minute)
	}
	isPage := func(l map[string]string) bool {
		return l["alertname"] == "NamespacesBudget" && l["severity"] == "page" && l["short_window"] == "5m"
	}
	pageFiring := func() *AlertStatus {
		for _, a := range e.Alerts() {
			if isPage(a.Labels) && a.State == StateFiring {
				return &a
			}
		}
		return nil
	}
	if pageFiring() == nil {
		t.Fatalf("no page after 20m of errors: %+v", e.Alerts())
	}
	r.rec.take("")
	// Traffic stops at 80m: the 5m window empties at 85m; the pair is no_data
	// from then until 145m (no_data_timeout 1h).
	for at := 80 * time.Minute; at < 144*time.Minute; at += time.Minute {
		evalEvery(e, clock, at, at+time.Minute)
		a := pageFiring()
		if a == nil {
			t.Fatalf("the page resolved at %v on no data", at+time.Minute)
		}
		if at+time.Minute >= 85*time.Minute && !strings.Contains(a.Annotations[NoDataAnnotation], "in the 1h or 5m window") {
			t.Fatalf("at %v: annotations %v, want no_data", at+time.Minute, a.Annotations)
		}
	}
	var pages []sentAlert
	for _, a := range r.rec.take("NamespacesBudget") {
		if isPage(a.Labels) {
			pages = append(pages, a)
		}
	}
	if len(pages) == 0 {
		t.Fatal("the page was not resent while no_data")
	}
	noResolve(t, pages, "no_data page")
	if blind := r.rec.take(NoDataAlertName); len(blind) == 0 {
		t.Error("no SentinelNoData for the blind SLO")
	}
	evalEvery(e, clock, 144*time.Minute, 146*time.Minute)
	if pageFiring() != nil {
		t.Fatal("still firing after no_data_timeout")
	}
}

// TestSourceNoData: a service.name that sent for a while and stops gets
// SentinelNoData{service_name=…}, resolved when it sends again; a name seen
// only once is forgotten without an alert.
func TestSourceNoData(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newNoDataRun(t, namespacesRule, Options{Registerer: reg, NoDataSources: NoDataSourceOptions{Timeout: 5 * time.Minute}})
	etcd := mapLabels{"service.name": "etcd", "span.kind": "server"}
	typo := mapLabels{"service.name": "etcdd", "span.kind": "server"}
	sourceAlerts := func() []sentAlert {
		var out []sentAlert
		for _, a := range r.rec.take(NoDataAlertName) {
			if a.Labels["service_name"] != "" {
				out = append(out, a)
			}
		}
		return out
	}
	ms := func(time.Duration) time.Duration { return time.Millisecond }
	r.e.Observe(&Observation{End: t0, Duration: time.Millisecond, Labels: typo})
	r.until(10*time.Minute, ms, etcd)
	if got := sourceAlerts(); len(got) != 0 {
		t.Fatalf("alerts while etcd sends: %v", got)
	}
	if n := testutil.ToFloat64(gaugeOf(t, reg, "sentinel_nodata_sources")); n != 1 {
		t.Errorf("tracked %v sources, want 1 (etcdd, seen once, is forgotten)", n)
	}
	// etcd stops at 10m: SentinelNoData from 14m45s (a source is stamped with
	// the evaluation before its spans: to within an interval), resent while
	// silent.
	r.until(20*time.Minute, none, etcd)
	got := sourceAlerts()
	if len(got) < 5 {
		t.Fatalf("SentinelNoData for etcd sent %d times from 15m to 20m: %+v", len(got), got)
	}
	noResolve(t, got, "etcd silent")
	want := map[string]string{"alertname": "SentinelNoData", "service_name": "etcd", "severity": "ticket"}
	if fmt.Sprint(got[0].Labels) != fmt.Sprint(want) || !got[0].StartsAt.Equal(t0.Add(14*time.Minute+45*time.Second)) {
		t.Errorf("got %+v, want %v from 14m45s", got[0], want)
	}
	var names []string
	for _, a := range r.e.Alerts() {
		names = append(names, a.Labels["alertname"]+"/"+a.Labels["service_name"]+a.Labels["rule"])
	}
	if fmt.Sprint(names) != "[SentinelNoData/NamespacesP99 SentinelNoData/etcd]" {
		t.Errorf("/api/v1/alerts would show %v", names)
	}
	// etcd is back: resolved.
	r.until(21*time.Minute, ms, etcd)
	got = sourceAlerts()
	if len(got) != 1 || !got[0].resolve() || !got[0].EndsAt.Equal(t0.Add(20*time.Minute+15*time.Second)) {
		t.Fatalf("want one resolve when etcd sends again, got %+v", got)
	}
}

func gaugeOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "", nil, nil), prometheus.GaugeValue, v)
				return
			}
		}
		t.Fatalf("no metric %s", name)
	})
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// TestSourceTrackingIsBounded: 10⁵ distinct service.name values keep the
// tracker at its cap; the rest are counted.
func TestSourceTrackingIsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, _, _ := newTestEngine(t, namespacesRule, Options{Registerer: reg, NoDataSources: NoDataSourceOptions{MaxSources: 500}})
	const n = 100_000
	for i := 0; i < n; i++ {
		e.Observe(&Observation{End: t0, Duration: time.Millisecond, Labels: mapLabels{"service.name": fmt.Sprintf("svc-%d", i)}})
	}
	if got := testutil.ToFloat64(gaugeOf(t, reg, "sentinel_nodata_sources")); got != 500 {
		t.Errorf("tracked %v, want the cap 500", got)
	}
	if got := testutil.ToFloat64(gaugeOf(t, reg, "sentinel_nodata_sources_overflow_total")); got != n-500 {
		t.Errorf("overflow %v, want %d", got, n-500)
	}
	// A tracked name keeps being tracked; metrics observations are not sources.
	e.Observe(&Observation{End: t0, Labels: mapLabels{"service.name": "svc-1"}})
	e.Observe(&Observation{Source: SourceMetrics, End: t0, Labels: mapLabels{"service.name": "scraped"}})
	if got := testutil.ToFloat64(gaugeOf(t, reg, "sentinel_nodata_sources_overflow_total")); got != n-500 {
		t.Errorf("overflow %v after a tracked name and a metric, want %d", got, n-500)
	}
}

// TestRemovedRuleResolvesItsNoData: a reload that removes (or changes) a
// blind rule resolves its SentinelNoData at once rather than leaving it to
// expire at Alertmanager.
func TestRemovedRuleResolvesItsNoData(t *testing.T) {
	r := newNoDataRun(t, namespacesRule, Options{})
	r.until(2*time.Minute, none, nil)
	if blind := r.rec.take(NoDataAlertName); len(blind) == 0 || blind[0].resolve() {
		t.Fatalf("no firing SentinelNoData for a rule that never saw data: %+v", blind)
	}
	r.e.Load(loadRules(t, strings.Replace(namespacesRule, "threshold: 1s", "threshold: 5s", 1)))
	got := r.rec.take(NoDataAlertName)
	if len(got) != 1 || !got[0].resolve() || got[0].Labels["rule"] != "NamespacesP99" {
		t.Fatalf("want the old rule's SentinelNoData resolved on reload, got %+v", got)
	}
}
