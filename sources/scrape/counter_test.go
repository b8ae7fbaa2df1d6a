package scrape

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	textCT = "text/plain; version=0.0.4"
	omCT   = "application/openmetrics-text; version=1.0.0"
)

// reqTotal renders apiserver_request_total for GET namespaces with one
// sample per code, as the apiserver does.
func reqTotal(byCode map[string]float64) string {
	var b strings.Builder
	b.WriteString("# TYPE apiserver_request_total counter\n")
	codes := make([]string, 0, len(byCode))
	for c := range byCode {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, "apiserver_request_total{code=%q,resource=\"namespaces\",verb=\"GET\"} %g\n", c, byCode[c])
	}
	return b.String()
}

// obsString is an observation as the tests compare it.
func obsString(o recObs) string {
	s := fmt.Sprintf("%s{%s} %d", o.Name, o.Labels, o.Count)
	if !math.IsInf(o.LE, 1) {
		s += fmt.Sprintf(" le=%g", o.LE)
	}
	if o.Failed {
		s += " failed"
	}
	return s
}

type scrapeAt struct {
	at   time.Duration // after the first scrape
	body string
	ct   string // text format when empty
}

// runScrapes applies each body at its time, as successful scrapes of one
// target with the given staleness bound, and returns what each emitted.
func runScrapes(t *testing.T, stale time.Duration, scrapes []scrapeAt) [][]string {
	t.Helper()
	h := newHistograms(stale)
	rec := &recorder{}
	tl := newTargetLabels(map[string]string{"job": "j", "instance": "i:1"})
	start := time.Unix(1_700_000_000, 0)
	var out [][]string
	for i, sc := range scrapes {
		ct := sc.ct
		if ct == "" {
			ct = textCT
		}
		if _, err := h.parse([]byte(sc.body), ct); err != nil {
			t.Fatalf("scrape %d: %v", i, err)
		}
		now := start.Add(sc.at)
		h.apply(now, tl, rec)
		var got []string
		for _, o := range rec.take() {
			if o.Job != "j" || o.Instance != "i:1" || !o.End.Equal(now) {
				t.Errorf("scrape %d: target labels or time wrong: %+v", i, o)
			}
			got = append(got, obsString(o))
		}
		slices.Sort(got)
		out = append(out, got)
	}
	return out
}

func checkScrapes(t *testing.T, got, want [][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d scrapes, want %d", len(got), len(want))
	}
	for i := range want {
		w := slices.Clone(want[i])
		slices.Sort(w)
		if strings.Join(got[i], "; ") != strings.Join(w, "; ") {
			t.Errorf("scrape %d:\n got  %q\n want %q", i, got[i], want[i])
		}
	}
}

func TestCounterIncreases(t *testing.T) {
	const ok200 = `apiserver_request_total{verb=GET,resource=namespaces,code=200}`
	const bad500 = `apiserver_request_total{verb=GET,resource=namespaces,code=500}`
	every15s := func(bodies ...string) []scrapeAt {
		var out []scrapeAt
		for i, b := range bodies {
			out = append(out, scrapeAt{at: time.Duration(i) * 15 * time.Second, body: b})
		}
		return out
	}
	tests := []struct {
		name    string
		scrapes []scrapeAt
		want    [][]string
	}{
		{
			name: "first scrape is a baseline, then each increase is one observation; 5xx is failed",
			scrapes: every15s(
				reqTotal(map[string]float64{"200": 100, "500": 1}),
				reqTotal(map[string]float64{"200": 130, "500": 1}),
				reqTotal(map[string]float64{"200": 175, "500": 4}),
				reqTotal(map[string]float64{"200": 175, "500": 4}),
			),
			want: [][]string{nil, {ok200 + " 30"}, {ok200 + " 45", bad500 + " 3 failed"}, nil},
		},
		{
			name: "a counter reset is a new baseline, not a burst",
			scrapes: every15s(
				reqTotal(map[string]float64{"500": 100}),
				reqTotal(map[string]float64{"500": 20}),
				reqTotal(map[string]float64{"500": 25}),
			),
			want: [][]string{nil, nil, {bad500 + " 5 failed"}},
		},
		{
			name: "a series that vanishes is forgotten; when it returns it is a baseline",
			scrapes: every15s(
				reqTotal(map[string]float64{"200": 10, "500": 1}),
				reqTotal(map[string]float64{"200": 11}),
				reqTotal(map[string]float64{"200": 12, "500": 50}),
				reqTotal(map[string]float64{"200": 12, "500": 52}),
			),
			want: [][]string{nil, {ok200 + " 1"}, {ok200 + " 1"}, {bad500 + " 2 failed"}},
		},
		{
			name: "which samples are request counters",
			scrapes: every15s(
				"# TYPE weird_total gauge\nweird_total{code=\"500\"} 1\n"+
					"# TYPE old_request_count counter\nold_request_count{code=\"503\"} 1\n"+
					"rest_client_requests_total{code=\"200\",host=\"h\",method=\"GET\"} 1\n"+
					"untyped_requests{code=\"500\"} 1\n"+
					"grpc_server_handled_total{grpc_code=\"Unavailable\",grpc_method=\"Range\"} 1\n"+
					"workqueue_adds_total{name=\"q\"} 1\n"+
					"# TYPE x_total untyped\nx_total{code=\"502\"} 1\n",
				"# TYPE weird_total gauge\nweird_total{code=\"500\"} 9\n"+
					"# TYPE old_request_count counter\nold_request_count{code=\"503\"} 3\n"+
					"rest_client_requests_total{code=\"200\",host=\"h\",method=\"GET\"} 5\n"+
					"untyped_requests{code=\"500\"} 9\n"+
					"grpc_server_handled_total{grpc_code=\"Unavailable\",grpc_method=\"Range\"} 9\n"+
					"workqueue_adds_total{name=\"q\"} 9\n"+
					"# TYPE x_total untyped\nx_total{code=\"502\"} 2\n",
			),
			want: [][]string{nil, {
				"old_request_count{code=503} 2 failed",
				"rest_client_requests_total{code=200} 4",
				"x_total{code=502} 1 failed",
			}},
		},
		{
			name: "OpenMetrics names the family without _total",
			scrapes: []scrapeAt{
				{0, "# TYPE apiserver_request counter\napiserver_request_total{code=\"504\",verb=\"LIST\"} 7\napiserver_request_created{code=\"504\",verb=\"LIST\"} 1.7e9\n# EOF\n", omCT},
				{15 * time.Second, "# TYPE apiserver_request counter\napiserver_request_total{code=\"504\",verb=\"LIST\"} 9 # {trace_id=\"0af7651916cd43dd8448eb211c80319c\"} 1\napiserver_request_created{code=\"504\",verb=\"LIST\"} 1.7e9\n# EOF\n", omCT},
			},
			want: [][]string{nil, {"apiserver_request_total{verb=LIST,code=504} 2 failed"}},
		},
		{
			name: "whole requests only: a fraction is carried to the next scrape",
			// 0 → 0.6 (0.6: none) → 1.2 (1.2: one, 0.2 carried) → 2 (0.8+0.2: one)
			scrapes: every15s("f_total{code=\"200\"} 0\n", "f_total{code=\"200\"} 0.6\n", "f_total{code=\"200\"} 1.2\n", "f_total{code=\"200\"} 2\n"),
			want:    [][]string{nil, nil, {"f_total{code=200} 1"}, {"f_total{code=200} 1"}},
		},
		{
			name: "the same series twice in one scrape: the first counts",
			scrapes: every15s(
				"a_total{code=\"500\"} 1\na_total{code=\"500\"} 100\n",
				"a_total{code=\"500\"} 3\na_total{code=\"500\"} 200\n",
			),
			want: [][]string{nil, {"a_total{code=500} 2 failed"}},
		},
		{
			name: "counters and histograms in one body",
			scrapes: every15s(
				typeLine+histText("req_seconds", `verb="GET"`, bounds4, []float64{1, 2, 3, 4})+reqTotal(map[string]float64{"200": 4}),
				typeLine+histText("req_seconds", `verb="GET"`, bounds4, []float64{1, 3, 3, 5})+reqTotal(map[string]float64{"200": 5}),
			),
			// Δcum 0,1,1,1 → per bucket 0,1,0,0.
			want: [][]string{nil, {ok200 + " 1", "req_seconds{verb=GET} 1 le=0.5"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkScrapes(t, runScrapes(t, staleAfter, tc.scrapes), tc.want)
		})
	}
}

// TestStaleness: a scrape whose previous successful scrape is more than
// staleAfter old is a new baseline for histograms and counters alike; a
// shorter gap (failed scrapes in between) is covered by the next success.
func TestStaleness(t *testing.T) {
	body := func(cum []float64, bad float64) string {
		return typeLine + histText("req_seconds", `verb="GET"`, bounds4, cum) + reqTotal(map[string]float64{"500": bad})
	}
	const bad500 = `apiserver_request_total{verb=GET,resource=namespaces,code=500}`
	m := time.Minute
	scrapes := []scrapeAt{
		{0, body([]float64{10, 20, 25, 30}, 5), ""},
		// Δcum 2,2,2,3 → per bucket 2,0,0,1; counter +2.
		{15 * time.Second, body([]float64{12, 22, 27, 33}, 7), ""},
		// 4m later (the scrapes in between failed): still within 5m, so
		// the whole gap is covered. Δcum 8,18,23,27 → 8,10,5,4; +10.
		{15*time.Second + 4*m, body([]float64{20, 40, 50, 60}, 17), ""},
		// Exactly 5m later: not older than the bound. Δcum 1,1,1,1 → 1,0,0,0; +1.
		{15*time.Second + 9*m, body([]float64{21, 41, 51, 61}, 18), ""},
		// 6m later: the target was down longer than the bound; a new
		// baseline, whatever grew during the outage.
		{15*time.Second + 15*m, body([]float64{100, 200, 300, 400}, 118), ""},
		// The next scrape counts from there: Δcum 1,2,3,4 → 1,1,1,1; +3.
		{30*time.Second + 15*m, body([]float64{101, 202, 303, 404}, 121), ""},
	}
	want := [][]string{
		nil,
		{bad500 + " 2 failed", "req_seconds{verb=GET} 1", "req_seconds{verb=GET} 2 le=0.1"},
		{bad500 + " 10 failed", "req_seconds{verb=GET} 4", "req_seconds{verb=GET} 5 le=1", "req_seconds{verb=GET} 8 le=0.1", "req_seconds{verb=GET} 10 le=0.5"},
		{bad500 + " 1 failed", "req_seconds{verb=GET} 1 le=0.1"},
		nil,
		{bad500 + " 3 failed", "req_seconds{verb=GET} 1", "req_seconds{verb=GET} 1 le=0.1", "req_seconds{verb=GET} 1 le=0.5", "req_seconds{verb=GET} 1 le=1"},
	}
	checkScrapes(t, runScrapes(t, staleness(15*time.Second), scrapes), want)

	t.Run("a job scraped every 5m keeps one missed scrape", func(t *testing.T) {
		if got := staleness(5 * m); got != 15*m {
			t.Fatalf("staleness(5m) = %v", got)
		}
		// A 10m gap (one failed scrape) is covered; a 16m gap is not.
		got := runScrapes(t, staleness(5*m), []scrapeAt{
			{0, reqTotal(map[string]float64{"500": 1}), ""},
			{10 * m, reqTotal(map[string]float64{"500": 4}), ""},
			{26 * m, reqTotal(map[string]float64{"500": 9}), ""},
		})
		checkScrapes(t, got, [][]string{nil, {bad500 + " 3 failed"}, nil})
	})
	for _, c := range []struct{ interval, want time.Duration }{{time.Second, 5 * m}, {15 * time.Second, 5 * m}, {m, 5 * m}, {2 * m, 6 * m}} {
		if got := staleness(c.interval); got != c.want {
			t.Errorf("staleness(%v) = %v, want %v", c.interval, got, c.want)
		}
	}
}

// TestExpositionCounter: the rule-test runner's path reads untyped _total
// counters (it renders input_series without TYPE lines) and, every
// exposition being a successful scrape at the test's interval, never
// treats a regular gap as an outage, whatever the interval.
func TestExpositionCounter(t *testing.T) {
	x := NewExposition(map[string]string{"job": "j"})
	rec := &recorder{}
	t0 := time.Unix(0, 0)
	for i, v := range []float64{10, 25, 25, 40} {
		body := fmt.Sprintf("apiserver_request_total{code=\"503\",verb=\"GET\"} %g\napiserver_request_total{code=\"200\",verb=\"GET\"} %g\n", v, 10*v)
		if _, err := x.Observe(t0.Add(time.Duration(i)*time.Hour), []byte(body), textCT, rec); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, o := range rec.take() {
		got = append(got, obsString(o))
	}
	want := []string{
		"apiserver_request_total{verb=GET,code=200} 150", "apiserver_request_total{verb=GET,code=503} 15 failed",
		"apiserver_request_total{verb=GET,code=200} 150", "apiserver_request_total{verb=GET,code=503} 15 failed",
	}
	slices.Sort(got)
	slices.Sort(want)
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestCounterHugeIncrease: an increase past what a Count holds is clamped
// once, not emitted again at every scrape.
func TestCounterHugeIncrease(t *testing.T) {
	got := runScrapes(t, staleAfter, []scrapeAt{
		{0, "h_total{code=\"500\"} 1\n", ""},
		{15 * time.Second, "h_total{code=\"500\"} 1e300\n", ""},
		{30 * time.Second, "h_total{code=\"500\"} 1e300\n", ""},
	})
	checkScrapes(t, got, [][]string{nil, {fmt.Sprintf("h_total{code=500} %d failed", uint64(1)<<62)}, nil})
}
