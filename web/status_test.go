package web

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/golden"
	"github.com/kube-sentinel/sentinel/internal/testkit"
	"github.com/kube-sentinel/sentinel/rules"
)

func TestStatusHistoryRecord(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	status := func(eval time.Time, values ...float64) []engine.GroupStatus {
		r := engine.RuleStatus{Name: "R", Window: 10 * time.Minute, LastEvaluation: eval} // charts an hour
		for i, v := range values {
			r.Series = append(r.Series, engine.SeriesStatus{Labels: map[string]string{"verb": strconv.Itoa(i)}, Value: v})
		}
		return []engine.GroupStatus{{Name: "g", Rules: []engine.RuleStatus{r}}}
	}
	key := func(i int) string { return historyKey("g", "R", map[string]string{"verb": strconv.Itoa(i)}) }

	h := newStatusHistory()
	h.record(status(time.Time{}, 1), t0) // never evaluated: nothing to chart
	if got := h.points(key(0)); len(got) != 0 {
		t.Fatalf("unevaluated rule recorded %v", got)
	}
	h.record(status(t0, 1, 2), t0)
	h.record(status(t0, 1, 2), t0.Add(time.Second)) // the same evaluation, seen twice
	h.record(status(t0.Add(15*time.Second), math.NaN(), 3), t0.Add(16*time.Second))
	if got := h.points(key(0)); len(got) != 2 || got[0].Value != 1 || !math.IsNaN(got[1].Value) {
		t.Errorf("series 0: %v", got)
	}
	if got := h.points(key(1)); len(got) != 2 || got[0].Value != 2 || got[1].Value != 3 {
		t.Errorf("series 1: %v", got)
	}

	// An hour later the first points are gone; a series that left the
	// status is forgotten.
	h.record(status(t0.Add(time.Hour+10*time.Second), 4), t0.Add(time.Hour+10*time.Second))
	if got := h.points(key(0)); len(got) != 2 || !got[0].Time.Equal(t0.Add(15*time.Second)) || got[1].Value != 4 {
		t.Errorf("after an hour: %v", got)
	}
	if got := h.points(key(1)); len(got) != 0 {
		t.Errorf("series 1 should be forgotten: %v", got)
	}

	// Memory stays bounded whatever the evaluation interval: an
	// evaluation every second for two hours keeps the last hour, thinned
	// to historyMaxPoints, and the newest value.
	start := t0.Add(2 * time.Hour)
	var now time.Time
	for i := range 7200 {
		now = start.Add(time.Duration(i) * time.Second)
		h.record(status(now, float64(i)), now)
	}
	got := h.points(key(0))
	if len(got) > historyMaxPoints+1 || len(got) < historyMaxPoints/2 || got[len(got)-1].Value != 7199 {
		t.Fatalf("%d points kept, last %v", len(got), got[len(got)-1])
	}
	if oldest := now.Sub(got[0].Time); oldest > time.Hour || oldest < 59*time.Minute {
		t.Errorf("the oldest point is %v old, want about the chart's hour", oldest)
	}
}

func TestChartRange(t *testing.T) {
	for _, c := range []struct{ window, want time.Duration }{
		{8 * time.Second, 5 * time.Minute}, // at least five minutes
		{5 * time.Minute, 30 * time.Minute},
		{time.Hour, 6 * time.Hour},
		{28 * 24 * time.Hour, 24 * time.Hour}, // at most a day
	} {
		if got := chartRange(c.window); got != c.want {
			t.Errorf("chartRange(%v) = %v, want %v", c.window, got, c.want)
		}
	}
}

// TestStatusPageChart draws charts to golden SVG files: a latency
// quantile with its objective and exemplar dots over a range that fits
// its window, and an SLO's burn rate against a factor.
func TestStatusPageChart(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	pts := []statusPoint{
		{now.Add(-28 * time.Minute), 0.5}, {now.Add(-20 * time.Minute), 0.7},
		{now.Add(-15 * time.Minute), math.NaN()},
		{now.Add(-10 * time.Minute), 2}, {now.Add(-5 * time.Minute), 1.2}, {now, 1.5},
	}
	exemplars := []engine.Exemplar{
		{TraceID: traceID(0x10), Duration: 2500 * time.Millisecond, Time: now.Add(-2 * time.Minute)},
		{TraceID: traceID(0x20), Duration: 1900 * time.Millisecond, Time: now.Add(-9 * time.Minute)},
		{TraceID: traceID(0x30), Duration: time.Second, Time: now.Add(-2 * time.Hour)}, // out of range: not drawn
	}
	cases := []struct {
		name   string
		chart  chart
		has    []string
		lacks  []string
		golden string
	}{
		{"latency", chart{Points: pts, Line: 1, Format: rules.HumanizeDuration, What: "p99 over 5m", Range: chartRange(5 * time.Minute), Now: now, Exemplars: exemplars},
			[]string{`aria-label="last 30m"`, `class="objective"`, "dashed: 1s", `<polyline points="`,
				`<a href="trace/` + hex.EncodeToString(exemplars[0].TraceID[:]) + `" class="exemplar"`, ">−30m</text>", ">−15m</text>", ">now</text>", ">0s</text>"},
			[]string{"NaN", hex.EncodeToString(exemplars[2].TraceID[:])}, "chart_latency.svg"},
		// An SLO's chart is of a burn rate against a factor, not of
		// seconds, and has no exemplar dots.
		{"slo", chart{Points: pts, Line: 14.4, Format: formatBurnRate, What: "burn rate over 5m", Range: chartRange(5 * time.Minute), Now: now},
			[]string{"dashed: 14.4×", ">0×</text>"}, []string{"14.4s", `class="exemplar"`}, "chart_slo.svg"},
		{"empty", chart{Line: 0.25, Format: rules.HumanizeDuration, What: "p90 over 1m", Range: chartRange(30 * time.Second), Now: now},
			[]string{`aria-label="last 5m"`, "dashed: 250ms"}, []string{"<polyline", "NaN"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svg := string(c.chart.svg())
			for _, want := range c.has {
				if !strings.Contains(svg, want) {
					t.Errorf("chart lacks %s:\n%s", want, svg)
				}
			}
			for _, bad := range c.lacks {
				if strings.Contains(svg, bad) {
					t.Errorf("chart has %s:\n%s", bad, svg)
				}
			}
			if c.golden != "" {
				golden.Check(t, "testdata/"+c.golden, strings.ReplaceAll(svg, "><", ">\n<")+"\n")
			}
		})
	}
	if got := quantileName(0.999); got != "p99.9" {
		t.Errorf("quantileName(0.999) = %q", got)
	}
}

// TestStatusPageSLO renders an SLO the way the engine reports one, without
// a daemon: budget, burn rates by window and pairs, not a latency quantile.
func TestStatusPageSLO(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	groups := []engine.GroupStatus{{Name: "budgets", Interval: time.Minute, LastEvaluation: now, Rules: []engine.RuleStatus{{
		Name: "Budget", Kind: "slo", Target: 99, Period: 28 * 24 * time.Hour, State: engine.StateFiring, LastEvaluation: now,
		Series: []engine.SeriesStatus{{Labels: map[string]string{}, Value: 20, Observations: 1000, Failed: 120,
			SLO: &engine.SLOStatus{Target: 99, Period: 28 * 24 * time.Hour, BudgetRemaining: -11,
				BurnRates: map[string]float64{"5m": 20, "1h": 15.5, "30m": 2, "6h": 1, "2h": 0.5, "1d": 0.25, "3d": 0.1, "4w": 12},
				Pairs: []engine.PairStatus{
					{Severity: "page", LongWindow: time.Hour, ShortWindow: 5 * time.Minute, Factor: 14.4, State: engine.StateFiring},
					{Severity: "page", LongWindow: 6 * time.Hour, ShortWindow: 30 * time.Minute, Factor: 6, State: engine.StateInactive},
					{Severity: "ticket", LongWindow: 24 * time.Hour, ShortWindow: 2 * time.Hour, Factor: 3, State: engine.StateInactive},
					{Severity: "ticket", LongWindow: 72 * time.Hour, ShortWindow: 6 * time.Hour, Factor: 1, State: engine.StateInactive},
				}}}},
		Alerts: []engine.AlertStatus{{Labels: map[string]string{"alertname": "Budget", "severity": "page", "long_window": "1h", "short_window": "5m"}, State: engine.StateFiring}},
	}}}}
	h := newStatusHistory()
	h.record(groups, now)
	var b strings.Builder
	if err := statusTemplate.Execute(&b, buildStatusPage(groups, h, nil, nil, now, "test")); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	rows := parsePage(t, page)
	if len(rows) != 1 {
		t.Fatalf("%d rows:\n%s", len(rows), page)
	}
	row := rows[0]
	if row.kind != "slo" || row.state != "firing" || row.value != nil || row.objective != "target 99%" || row.over != "over 4w" {
		t.Errorf("row %+v", row)
	}
	if row.budget == nil || *row.budget != -11 || row.shown != "-1100.00%" {
		t.Errorf("budget remaining %v shown %q, want -11 as -1100.00%%", deref(row.budget), row.shown)
	}
	if got := strings.Join(row.windows, " "); got != "5m 30m 1h 2h 6h 1d 3d 4w" {
		t.Errorf("burn rates in the order %s, want by window length", got)
	}
	if row.burnRates["5m"] != 20 || row.burnShown["5m"] != "20×" || row.burnShown["1h"] != "15.5×" {
		t.Errorf("burn rates %v shown %v", row.burnRates, row.burnShown)
	}
	if len(row.pairs) != 4 || row.pairs[0] != (pagePair{"page", "1h", "5m", 14.4, "firing"}) || row.pairs[3] != (pagePair{"ticket", "3d", "6h", 1, "inactive"}) {
		t.Errorf("pairs %+v", row.pairs)
	}
	for _, bad := range []string{"p0", "0s over", "over 0s", "20s", "14.4s"} {
		if strings.Contains(page, bad) {
			t.Errorf("the SLO is shown as a latency rule (%q on the page)", bad)
		}
	}
	if !strings.Contains(page, "dashed: 14.4×") {
		t.Errorf("the chart is not of the 5m burn rate against the 1h/5m pair's factor")
	}
}

// TestStatusPageNoData: a firing series without data keeps its state and
// shows a "no data" badge, as does a blind rule without series; the API
// says noData with since-when, and the header counts the blind rules.
func TestStatusPageNoData(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	since := now.Add(-10 * time.Minute)
	groups := []engine.GroupStatus{{Name: "g", Interval: 15 * time.Second, LastEvaluation: now, Rules: []engine.RuleStatus{
		{Name: "Stalled", Kind: "alerting", Quantile: 0.99, Threshold: time.Second, Window: 5 * time.Minute, State: engine.StateFiring,
			LastEvaluation: now, NoData: true, NoDataSince: since,
			Series: []engine.SeriesStatus{{Labels: map[string]string{"verb": "GET"}, Value: math.NaN(), NoData: true, NoDataSince: since}},
			Alerts: []engine.AlertStatus{{Labels: map[string]string{"alertname": "Stalled", "verb": "GET"}, State: engine.StateFiring,
				Annotations: map[string]string{"no_data": "since 2025-01-01T11:50:00Z"}}}},
		{Name: "Live", Kind: "alerting", Quantile: 0.99, Threshold: time.Second, Window: 5 * time.Minute, LastEvaluation: now,
			Series: []engine.SeriesStatus{{Labels: map[string]string{"verb": "LIST"}, Value: 0.2, Observations: 300}}},
		{Name: "NeverFed", Kind: "alerting", Quantile: 0.9, Threshold: time.Second, Window: 5 * time.Minute, LastEvaluation: now,
			NoData: true, NoDataSince: since},
	}}}
	data := buildStatusPage(groups, newStatusHistory(), nil, nil, now, "test")
	data.SilentSources = silentSources([]engine.AlertStatus{
		{Labels: map[string]string{"alertname": "SentinelNoData", "service_name": "etcd"}, State: engine.StateFiring, FiredAt: since,
			Annotations: map[string]string{"summary": `no spans from service.name "etcd" since 2025-01-01T11:40:00Z`}},
		{Labels: map[string]string{"alertname": "SentinelNoData", "rule": "Stalled"}, State: engine.StateFiring},
		{Labels: map[string]string{"alertname": "Stalled", "service_name": "apiserver"}, State: engine.StateFiring},
	})
	var b strings.Builder
	if err := statusTemplate.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if !strings.Contains(page, `<tr class="silent-source" data-service-name="etcd">`) || strings.Count(page, `class="silent-source"`) != 1 {
		t.Errorf("the page should list etcd, and only etcd, as a silent span source")
	}
	rows := parsePage(t, page)
	want := map[string]struct {
		state  string
		noData bool
	}{"Stalled": {"firing", true}, "Live": {"inactive", false}, "NeverFed": {"inactive", true}}
	if len(rows) != len(want) {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if w := want[r.rule]; r.state != w.state || r.noData != w.noData {
			t.Errorf("%s: state %q no data %v, want %q %v", r.rule, r.state, r.noData, w.state, w.noData)
		}
	}
	if !strings.Contains(page, `<span id="count-no-data" class="badge no-data">2 without data</span>`) {
		t.Errorf("the header does not count the 2 blind rules")
	}

	body, err := json.Marshal(rulesData(groups, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{
		`"name":"Stalled","type":"alerting","state":"firing"`,
		`"noData":true,"noDataSince":"2025-01-01T11:50:00Z","series":[{"labels":{"verb":"GET"},"value":null`,
		`"failed":0,"noData":true,"noDataSince":"2025-01-01T11:50:00Z","exemplars":[]`,
		`"labels":{"verb":"LIST"},"value":0.2,"threshold":1,"observations":300,"failed":0,"noData":false,"exemplars":[]`,
	} {
		if !strings.Contains(string(body), frag) {
			t.Errorf("/api/v1/rules lacks %s:\n%s", frag, body)
		}
	}
}

// pageRow is one series row of the status page as a browser shows it.
type pageRow struct {
	rule, kind, labels, state string
	value                     *float64 // data-value (latency rules)
	shown                     string   // the value (SLOs: the budget remaining) as displayed
	objective, over           string   // "p99 ≤ 1s", "over 2m"; "target 99%", "over 1h"
	observations              string
	noData                    bool     // data-no-data, with a visible "no data" badge
	traceIDs, traceURLs       []string // the external tracing UI's links
	viewIDs                   []string // links to sentinel's trace view
	// SLOs
	budget    *float64           // data-budget-remaining
	windows   []string           // the burn rates' windows, in page order
	burnRates map[string]float64 // data-burn-rate by window
	burnShown map[string]string  // as displayed
	pairs     []pagePair
}

type pagePair struct {
	severity, long, short string
	factor                float64
	state                 string
}

var (
	rowRe      = regexp.MustCompile(`(?s)<tr class="series[^"]*"(.*?)>(.*?)</tr>`)
	attrRe     = regexp.MustCompile(`(data-[a-z-]+)="([^"]*)"`)
	shownRe    = regexp.MustCompile(`<span class="value[^"]*"[^>]*>([^<]*)</span>`)
	objRe      = regexp.MustCompile(`<td class="objective-cell">([^<]*) <span class="nodata">([^<]*)</span>`)
	burnRe     = regexp.MustCompile(`<li class="burn-rate[^"]*" data-window="([^"]*)" data-burn-rate="([^"]*)">[^<]*<b>([^<]*)</b>`)
	pairRe     = regexp.MustCompile(`<li class="pair" data-severity="([^"]*)" data-long-window="([^"]*)" data-short-window="([^"]*)" data-factor="([^"]*)" data-state="([^"]*)">`)
	traceRe    = regexp.MustCompile(`<a class="trace" href="([^"]*)" data-trace-id="([0-9a-f]+)"`)
	viewRe     = regexp.MustCompile(`<a class="trace-view" href="trace/([0-9a-f]{32})"`)
	scriptRe   = regexp.MustCompile(`(?i)<script|<link|<iframe|\ssrc=`)
	externalRe = regexp.MustCompile(`(?i)(href|src)="(https?:)?//`)
)

func parsePage(t *testing.T, dom string) []pageRow {
	t.Helper()
	var rows []pageRow
	for _, m := range rowRe.FindAllStringSubmatch(dom, -1) {
		attrs := map[string]string{}
		for _, a := range attrRe.FindAllStringSubmatch(m[1], -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		row := pageRow{rule: attrs["data-rule"], kind: attrs["data-kind"], labels: attrs["data-labels"], state: attrs["data-state"],
			observations: attrs["data-observations"], burnRates: map[string]float64{}, burnShown: map[string]string{},
			noData: attrs["data-no-data"] == "true"}
		if badge := strings.Contains(m[2], `<span class="badge no-data"`); badge != row.noData {
			t.Errorf("row %s: data-no-data %v but badge shown %v", row.rule, row.noData, badge)
		}
		num := func(what, v string) float64 {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s %q: %v", what, v, err)
			}
			return f
		}
		if v, ok := attrs["data-value"]; ok {
			f := num("data-value", v)
			row.value = &f
		}
		if v, ok := attrs["data-budget-remaining"]; ok {
			f := num("data-budget-remaining", v)
			row.budget = &f
		}
		if s := shownRe.FindStringSubmatch(m[2]); s != nil {
			row.shown = html.UnescapeString(s[1])
		}
		if o := objRe.FindStringSubmatch(m[2]); o != nil {
			row.objective, row.over = html.UnescapeString(o[1]), html.UnescapeString(o[2])
		}
		for _, b := range burnRe.FindAllStringSubmatch(m[2], -1) {
			row.windows = append(row.windows, b[1])
			row.burnRates[b[1]] = num("data-burn-rate", b[2])
			row.burnShown[b[1]] = html.UnescapeString(b[3])
		}
		for _, p := range pairRe.FindAllStringSubmatch(m[2], -1) {
			row.pairs = append(row.pairs, pagePair{p[1], p[2], p[3], num("data-factor", p[4]), p[5]})
		}
		for _, v := range viewRe.FindAllStringSubmatch(m[2], -1) {
			row.viewIDs = append(row.viewIDs, v[1])
		}
		for _, tr := range traceRe.FindAllStringSubmatch(m[2], -1) {
			row.traceURLs = append(row.traceURLs, html.UnescapeString(tr[1]))
			row.traceIDs = append(row.traceIDs, tr[2])
		}
		rows = append(rows, row)
	}
	return rows
}

// comparePage checks that the page shows what /api/v1/rules says.
func comparePage(t *testing.T, rows []pageRow, api []Rule) {
	t.Helper()
	byRule := map[string][]pageRow{}
	for _, r := range rows {
		byRule[r.rule] = append(byRule[r.rule], r)
	}
	if len(byRule) != len(api) {
		t.Errorf("page shows %d rules, the API %d", len(byRule), len(api))
	}
	for _, r := range api {
		got := byRule[r.Name]
		if len(r.Series) == 0 {
			if len(got) != 1 || got[0].value != nil || got[0].shown != "no data" || got[0].state != r.State || got[0].noData != r.NoData {
				t.Errorf("%s: API has no series, page shows %+v", r.Name, got)
			}
			continue
		}
		if len(got) != len(r.Series) {
			t.Errorf("%s: page shows %d series, the API %d", r.Name, len(got), len(r.Series))
			continue
		}
		for i, s := range r.Series {
			row := got[i]
			if want := labelString(s.Labels); row.labels != want {
				t.Errorf("%s: labels %q, API %q", r.Name, row.labels, want)
			}
			if row.state != r.State {
				t.Errorf("%s: state %q, API %q", r.Name, row.state, r.State)
			}
			if row.noData != s.NoData {
				t.Errorf("%s: no data %v, API noData %v", r.Name, row.noData, s.NoData)
			}
			if row.kind != r.Type {
				t.Errorf("%s: kind %q, API type %q", r.Name, row.kind, r.Type)
			}
			if r.Type == "slo" {
				compareSLORow(t, r, s, row)
				compareExemplars(t, r.Name, s, row)
				continue
			}
			if s.Value == nil {
				if row.value != nil || row.shown != "no data" {
					t.Errorf("%s: API value null, page %v %q", r.Name, row.value, row.shown)
				}
				continue
			}
			if row.value == nil || *row.value != *s.Value {
				t.Errorf("%s: data-value %v, API %v", r.Name, deref(row.value), *s.Value)
			}
			shown, err := time.ParseDuration(row.shown)
			if err != nil || math.Abs(shown.Seconds()-*s.Value) > 1e-3**s.Value {
				t.Errorf("%s: shows %q, API value %gs", r.Name, row.shown, *s.Value)
			}
			compareExemplars(t, r.Name, s, row)
		}
	}
}

// deref shows an optional number: "none" when it is absent.
func deref(v *float64) string {
	if v == nil {
		return "none"
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

// compareExemplars checks a row's request count and trace links.
func compareExemplars(t *testing.T, name string, s Series, row pageRow) {
	t.Helper()
	if row.observations != strconv.FormatUint(s.Observations, 10) {
		t.Errorf("%s: observations %s, API %d", name, row.observations, s.Observations)
	}
	var ids []string
	for _, x := range s.Exemplars {
		ids = append(ids, x.TraceID)
	}
	if strings.Join(row.traceIDs, ",") != strings.Join(ids, ",") {
		t.Errorf("%s: trace links %v, API exemplars %v", name, row.traceIDs, ids)
	}
	if strings.Join(row.viewIDs, ",") != strings.Join(ids, ",") {
		t.Errorf("%s: trace view links %v, API exemplars %v", name, row.viewIDs, ids)
	}
	for j, u := range row.traceURLs {
		if want := "http://tracing.test/trace/" + row.traceIDs[j]; u != want {
			t.Errorf("%s: trace link %q, want %q", name, u, want)
		}
	}
}

// compareSLORow checks an SLO's row against its API series: target and
// period, budget remaining, every window's burn rate, every pair's state.
func compareSLORow(t *testing.T, r Rule, s Series, row pageRow) {
	t.Helper()
	if row.value != nil {
		t.Errorf("%s: an SLO row has a latency data-value %v", r.Name, *row.value)
	}
	if want := "target " + strconv.FormatFloat(r.Target, 'f', -1, 64) + "%"; row.objective != want {
		t.Errorf("%s: objective %q, API target %g: want %q", r.Name, row.objective, r.Target, want)
	}
	if want := "over " + model.Duration(time.Duration(r.Period*float64(time.Second))).String(); row.over != want {
		t.Errorf("%s: %q, API period %gs: want %q", r.Name, row.over, r.Period, want)
	}
	if s.BudgetRemaining == nil {
		t.Fatalf("%s: the API has no budgetRemaining", r.Name)
	}
	if row.budget == nil || *row.budget != *s.BudgetRemaining {
		t.Errorf("%s: data-budget-remaining %v, API %v", r.Name, deref(row.budget), *s.BudgetRemaining)
	}
	shown, err := strconv.ParseFloat(strings.TrimSuffix(row.shown, "%"), 64)
	if err != nil || !strings.HasSuffix(row.shown, "%") || math.Abs(shown-*s.BudgetRemaining*100) > 0.005+1e-9 {
		t.Errorf("%s: shows %q budget remaining, API %v", r.Name, row.shown, *s.BudgetRemaining)
	}
	if len(row.burnRates) != len(s.BurnRates) {
		t.Errorf("%s: burn rates %v, API %v", r.Name, row.burnRates, s.BurnRates)
	}
	for w, want := range s.BurnRates {
		got, ok := row.burnRates[w]
		if !ok || got != want {
			t.Errorf("%s: burn rate over %s %v (shown: %v), API %v", r.Name, w, got, ok, want)
		}
		shown, err := strconv.ParseFloat(strings.TrimSuffix(row.burnShown[w], "×"), 64)
		if err != nil || math.Abs(shown-want) > 1e-3*want {
			t.Errorf("%s: shows %q for the burn rate over %s, API %v", r.Name, row.burnShown[w], w, want)
		}
	}
	if len(row.pairs) != len(s.Pairs) {
		t.Errorf("%s: %d pairs shown, API %d", r.Name, len(row.pairs), len(s.Pairs))
		return
	}
	for i, p := range s.Pairs {
		if want := (pagePair{p.Severity, p.LongWindow, p.ShortWindow, p.Factor, p.State}); row.pairs[i] != want {
			t.Errorf("%s: pair %d shows %+v, API %+v", r.Name, i, row.pairs[i], p)
		}
	}
}

// fakeRules is the engine's status as a test sets it.
type fakeRules struct {
	groups []engine.GroupStatus
	alerts []engine.AlertStatus
}

func (f *fakeRules) Status() []engine.GroupStatus { return f.groups }
func (f *fakeRules) Alerts() []engine.AlertStatus { return f.alerts }

func traceID(b byte) [16]byte {
	var id [16]byte
	for i := range id {
		id[i] = b + byte(i)
	}
	return id
}

// pageStatus has every kind of row: a firing latency series with
// exemplars, one with data under its objective, a rule that matched
// nothing, and an SLO with one pair firing and one not.
func pageStatus(now time.Time) *fakeRules {
	firing := engine.AlertStatus{Labels: map[string]string{"alertname": "NamespacesGETLatency", "verb": "GET", "severity": "page"},
		Annotations: map[string]string{"summary": "slow"}, State: engine.StateFiring, ActiveAt: now.Add(-time.Minute), FiredAt: now.Add(-50 * time.Second), Value: 1.5}
	return &fakeRules{alerts: []engine.AlertStatus{firing}, groups: []engine.GroupStatus{{
		Name: "status", File: "rules.yaml", Interval: 3 * time.Second, LastEvaluation: now, Rules: []engine.RuleStatus{
			{Name: "NamespacesGETLatency", Kind: "alerting", Quantile: 0.99, Threshold: time.Second, Window: 2 * time.Minute,
				State: engine.StateFiring, LastEvaluation: now, Alerts: []engine.AlertStatus{firing},
				Series: []engine.SeriesStatus{{Labels: map[string]string{"verb": "GET"}, Value: 1.5, Observations: 120,
					Exemplars: []engine.Exemplar{
						{TraceID: traceID(0x10), SpanID: [8]byte{1}, Duration: 1600 * time.Millisecond, Time: now.Add(-20 * time.Second)},
						{TraceID: traceID(0x20), SpanID: [8]byte{2}, Duration: 1500 * time.Millisecond, Time: now.Add(-40 * time.Second)},
					}}}},
			{Name: "PodsLatency", Kind: "alerting", Quantile: 0.5, Threshold: 5 * time.Second, Window: 2 * time.Minute, LastEvaluation: now,
				Series: []engine.SeriesStatus{{Labels: map[string]string{"verb": "LIST"}, Value: 0.25, Observations: 40}}},
			{Name: "NothingMatches", Kind: "alerting", Quantile: 0.9, Threshold: 250 * time.Millisecond, Window: 2 * time.Minute, LastEvaluation: now},
			{Name: "NamespacesBudget", Kind: "slo", Target: 99, Period: time.Hour, State: engine.StateFiring, LastEvaluation: now,
				Series: []engine.SeriesStatus{{Labels: map[string]string{}, Value: 100, Observations: 160, Failed: 160,
					SLO: &engine.SLOStatus{Target: 99, Period: time.Hour, BudgetRemaining: -0.5,
						BurnRates: map[string]float64{"2m": 100, "10m": 100, "5m": 100, "30m": 100},
						Pairs: []engine.PairStatus{
							{Severity: "page", LongWindow: 10 * time.Minute, ShortWindow: 2 * time.Minute, Factor: 14.4, State: engine.StateFiring},
							{Severity: "ticket", LongWindow: 30 * time.Minute, ShortWindow: 5 * time.Minute, Factor: 1000, State: engine.StateInactive},
						}}}},
				Alerts: []engine.AlertStatus{{Labels: map[string]string{"alertname": "NamespacesBudget", "severity": "page", "long_window": "10m", "short_window": "2m"}, State: engine.StateFiring}}},
		}}}}
}

// serve runs a Handler on a loopback port.
func serve(t *testing.T, opts Options) string {
	t.Helper()
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// externalLinks links exemplars the way a trace_url_template does.
func externalLinks() ExemplarURLFunc {
	return func(_, _ string, x engine.Exemplar) string {
		return "http://tracing.test/trace/" + hex.EncodeToString(x.TraceID[:])
	}
}

func startStatusPage(t *testing.T) string {
	now := time.Now()
	return serve(t, Options{Rules: pageStatus(now), ExternalTraceURL: externalLinks, Explain: explainStatus, Version: "test"})
}

func fetchRules(t *testing.T, base string) []Rule {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct{ Groups []Group }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var out []Rule
	for _, g := range body.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

func getPage(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: %s %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

// TestStatusPageServed checks the HTML as served, without a browser.
func TestStatusPageServed(t *testing.T) {
	base := startStatusPage(t)
	api := fetchRules(t, base)
	page := getPage(t, base+"/")
	if m := scriptRe.FindString(page); m != "" {
		t.Errorf("the page loads something (%q): it must be self-contained", m)
	}
	if m := externalRe.FindString(page); m != "" && !strings.Contains(page, `href="http://tracing.test/`) {
		t.Errorf("the page links out (%q)", m)
	}
	if !strings.Contains(page, `<svg class="chart"`) || !strings.Contains(page, "<polyline") && !strings.Contains(page, "<circle") {
		t.Errorf("no chart with data on the page")
	}
	comparePage(t, parsePage(t, page), api)
}

// TestStatusPageInBrowser renders the page in a real headless browser and
// checks that the numbers it shows are those of /api/v1/rules.
func TestStatusPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a browser")
	}
	bin := testkit.Chromium(t)
	base := startStatusPage(t)
	api := fetchRules(t, base)
	dom := testkit.RunChromium(t, bin, "--dump-dom", base+"/")
	if !strings.Contains(dom, "<h1>sentinel</h1>") {
		t.Fatalf("the browser did not render the page:\n%s", dom)
	}
	rows := parsePage(t, dom)
	if len(rows) != 4 {
		t.Errorf("the browser shows %d rows, want 4:\n%s", len(rows), dom)
	}
	comparePage(t, rows, api)
	if !strings.Contains(dom, `<svg class="chart"`) {
		t.Errorf("no chart in the rendered DOM")
	}

	// A screenshot, to look at: STATUS_PAGE_SCREENSHOT=/tmp/status.png keeps it.
	screenshot(t, bin, base+"/", "STATUS_PAGE_SCREENSHOT")
}

// screenshot renders url in the browser and checks that a PNG came out;
// when the environment variable keep names a file, it is kept there.
func screenshot(t *testing.T, bin, url, keep string) {
	t.Helper()
	shot := filepath.Join(t.TempDir(), "page.png")
	testkit.RunChromium(t, bin, "--hide-scrollbars", "--window-size=1500,900", "--screenshot="+shot, url)
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot: %v (%d bytes)", err, len(png))
	}
	if path := os.Getenv(keep); path != "" {
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Error(err)
		}
		fmt.Fprintln(os.Stderr, "screenshot:", path)
	}
}

// explainStatus explains both latency series of pageStatus, as the engine
// would once it has pinned their exemplars' traces.
func explainStatus(s engine.SeriesStatus) *Explanation {
	if s.SLO != nil {
		return nil
	}
	return &Explanation{
		CriticalPath: &CriticalPath{Traces: len(s.Exemplars),
			Services: []Share{{"etcd", 0.94}, {"apiserver", 0.05}, {"admission-webhook", 0.006}, {"kubelet", 0.004}},
			Spans:    []Share{{"etcd/etcdserverpb.KV/Range", 0.93}, {"apiserver/GET", 0.07}}, Incomplete: 1},
		SlowRequestsBy: []Overrepresented{{Attribute: "k8s.node.name", Value: "cp-2", SlowShare: 1, AllShare: 1.0 / 3}},
	}
}

// TestStatusPageExplains: the engine's explanation of a series is in
// /api/v1/rules as criticalPath and slowRequestsBy, and beside the firing
// series on the page, not beside an inactive one; without it, neither.
func TestStatusPageExplains(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		explain ExplainFunc
		golden  string
		rows    int // explanation rows on the page
	}{
		{"explained", explainStatus, "rules_explained.json", 1},
		{"nothing to explain", nil, "rules_unexplained.json", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := serve(t, Options{Rules: pageStatus(now), Explain: c.explain})
			_, _, body := get(t, base+"/api/v1/rules")
			var v any
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatal(err)
			}
			pretty, _ := json.MarshalIndent(v, "", "  ")
			golden.Check(t, "testdata/"+c.golden, string(pretty)+"\n")

			page := getPage(t, base+"/")
			if n := strings.Count(page, `<tr class="explain"`); n != c.rows {
				t.Fatalf("%d explanation rows, want %d", n, c.rows)
			}
			if c.rows == 0 {
				return
			}
			for _, want := range []string{
				`<tr class="explain" data-rule="NamespacesGETLatency" data-labels="verb=&#34;GET&#34;">`,
				`<span class="why">critical path</span> <span class="share" data-name="etcd" data-share="0.94">etcd <b>94%</b></span>`,
				`by span: etcd/etcdserverpb.KV/Range 93%, apiserver/GET 7%`, `(1 incomplete)`,
				`<span class="overrepresented" data-attribute="k8s.node.name" data-value="cp-2" data-slow="1" data-all="0.3333333333333333">k8s.node.name=cp-2 (100% of slow, 33% of all)</span>`,
			} {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %s", want)
				}
			}
		})
	}
}
