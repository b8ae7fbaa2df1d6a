package main

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/engine"
)

func TestStatusHistoryRecord(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	status := func(eval time.Time, values ...float64) []engine.GroupStatus {
		r := engine.RuleStatus{Name: "R", LastEvaluation: eval}
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

	// Memory stays bounded whatever the evaluation interval.
	for i := range 2 * historyMaxPoints {
		at := t0.Add(2*time.Hour + time.Duration(i)*time.Millisecond)
		h.record(status(at, float64(i)), at)
	}
	if got := h.points(key(0)); len(got) != historyMaxPoints || got[len(got)-1].Value != 2*historyMaxPoints-1 {
		t.Errorf("%d points kept, last %v", len(got), got[len(got)-1])
	}
}

func TestStatusPageChart(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	pts := []statusPoint{
		{now.Add(-50 * time.Minute), 0.5}, {now.Add(-40 * time.Minute), 0.7},
		{now.Add(-30 * time.Minute), math.NaN()},
		{now.Add(-10 * time.Minute), 2},
	}
	svg := string(chartSVG(pts, 1, now))
	for _, want := range []string{`<svg class="chart"`, `<polyline points="`, `<circle `, `class="objective"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %s:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "NaN") {
		t.Errorf("chart has a NaN coordinate:\n%s", svg)
	}
	if got := quantileName(0.999); got != "p99.9" {
		t.Errorf("quantileName(0.999) = %q", got)
	}
}

// The test's rules: one that fires (slow namespaces GETs), one with data
// under its objective, and one that never matches anything.
const statusRules = `
groups:
  - name: status
    interval: 3s
    rules:
      - alert: NamespacesGETLatency
        matchers: ['service.name="apiserver"', 'resource="namespaces"', 'verb="GET"']
        group_by: [verb]
        objective: {quantile: 0.99, threshold: 1s}
        window: 2m
        for: 1s
        labels: {severity: page}
      - alert: PodsLatency
        matchers: ['service.name="apiserver"', 'resource="pods"']
        group_by: [verb]
        objective: {quantile: 0.5, threshold: 5s}
        window: 2m
      - alert: NothingMatches
        matchers: ['service.name="nothing"']
        objective: {quantile: 0.9, threshold: 250ms}
        window: 2m
`

// startStatusSentinel runs a daemon whose status page has every kind of
// row: firing with exemplars, inactive with data, and no data.
func startStatusSentinel(t *testing.T) (*daemon, string) {
	d := startSentinel(t, statusRules)
	s := newSpanSender(t, d)
	s.phase(t, 2*time.Second, 1500*time.Millisecond)
	base := "http://" + d.webLn.Addr().String()
	waitFor(t, "a firing rule with exemplars", 30*time.Second, func() (bool, bool) {
		for _, r := range fetchRules(t, base) {
			if r.Name == "NamespacesGETLatency" && r.State == "firing" && len(r.Series) == 1 && len(r.Series[0].Exemplars) > 0 {
				return true, true
			}
		}
		return false, false
	})
	return d, base
}

type statusAPIRule struct {
	apiRule
	group, groupEval string
}

func fetchRules(t *testing.T, base string) []statusAPIRule {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct{ Groups []apiGroup }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var out []statusAPIRule
	for _, g := range body.Data.Groups {
		for _, r := range g.Rules {
			out = append(out, statusAPIRule{r, g.Name, g.LastEvaluation})
		}
	}
	return out
}

// pageRow is one series row of the status page as a browser shows it.
type pageRow struct {
	rule, labels, state string
	value               *float64 // data-value
	shown               string   // the value as displayed
	observations        string
	traceIDs, traceURLs []string
}

var (
	rowRe      = regexp.MustCompile(`(?s)<tr class="series[^"]*"(.*?)>(.*?)</tr>`)
	attrRe     = regexp.MustCompile(`(data-[a-z]+)="([^"]*)"`)
	shownRe    = regexp.MustCompile(`<span class="value[^"]*">([^<]*)</span>`)
	traceRe    = regexp.MustCompile(`<a class="trace" href="([^"]*)" data-trace-id="([0-9a-f]+)"`)
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
		row := pageRow{rule: attrs["data-rule"], labels: attrs["data-labels"], state: attrs["data-state"], observations: attrs["data-observations"]}
		if v, ok := attrs["data-value"]; ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("data-value %q: %v", v, err)
			}
			row.value = &f
		}
		if s := shownRe.FindStringSubmatch(m[2]); s != nil {
			row.shown = html.UnescapeString(s[1])
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
func comparePage(t *testing.T, rows []pageRow, api []statusAPIRule) {
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
			if len(got) != 1 || got[0].value != nil || got[0].shown != "no data" || got[0].state != r.State {
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
			if s.Value == nil {
				if row.value != nil || row.shown != "no data" {
					t.Errorf("%s: API value null, page %v %q", r.Name, row.value, row.shown)
				}
				continue
			}
			if row.value == nil || *row.value != *s.Value {
				t.Errorf("%s: data-value %v, API %v", r.Name, row.value, *s.Value)
			}
			shown, err := time.ParseDuration(row.shown)
			if err != nil || math.Abs(shown.Seconds()-*s.Value) > 1e-3**s.Value {
				t.Errorf("%s: shows %q, API value %gs", r.Name, row.shown, *s.Value)
			}
			if row.observations != strconv.FormatUint(s.Observations, 10) {
				t.Errorf("%s: observations %s, API %d", r.Name, row.observations, s.Observations)
			}
			var ids []string
			for _, x := range s.Exemplars {
				ids = append(ids, x.TraceID)
			}
			if strings.Join(row.traceIDs, ",") != strings.Join(ids, ",") {
				t.Errorf("%s: trace links %v, API exemplars %v", r.Name, row.traceIDs, ids)
			}
			for j, u := range row.traceURLs {
				if want := "http://tracing.test/trace/" + row.traceIDs[j]; u != want {
					t.Errorf("%s: trace link %q, want %q", r.Name, u, want)
				}
			}
		}
	}
}

func sameEvaluation(a, b []statusAPIRule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].groupEval != b[i].groupEval || a[i].LastEvaluation != b[i].LastEvaluation {
			return false
		}
	}
	return true
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
	if testing.Short() {
		t.Skip("end to end")
	}
	_, base := startStatusSentinel(t)
	for attempt := 0; ; attempt++ {
		before := fetchRules(t, base)
		page := getPage(t, base+"/")
		after := fetchRules(t, base)
		if !sameEvaluation(before, after) && attempt < 10 {
			continue // an evaluation ran in between
		}
		if m := scriptRe.FindString(page); m != "" {
			t.Errorf("the page loads something (%q): it must be self-contained", m)
		}
		if m := externalRe.FindString(page); m != "" && !strings.Contains(page, `href="http://tracing.test/`) {
			t.Errorf("the page links out (%q)", m)
		}
		if !strings.Contains(page, `<svg class="chart"`) || !strings.Contains(page, "<polyline") && !strings.Contains(page, "<circle") {
			t.Errorf("no chart with data on the page")
		}
		comparePage(t, parsePage(t, page), before)
		return
	}
}

// chromium returns the headless browser to test with, skipping the test
// when there is none (failing it when CI=true).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no headless browser on PATH (chromium); on Debian: apt-get install chromium"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runChromium runs a headless Chromium that talks to loopback only.
func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--no-default-browser-check", "--mute-audio",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// TestStatusPageInBrowser renders the page in a real headless browser and
// checks that the numbers it shows are those of /api/v1/rules.
func TestStatusPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	bin := chromium(t)
	_, base := startStatusSentinel(t)
	for attempt := 0; ; attempt++ {
		before := fetchRules(t, base)
		dom := runChromium(t, bin, "--dump-dom", base+"/")
		after := fetchRules(t, base)
		if !sameEvaluation(before, after) && attempt < 10 {
			continue // an evaluation ran while the browser loaded the page
		}
		if !strings.Contains(dom, "<h1>sentinel</h1>") {
			t.Fatalf("the browser did not render the page:\n%s", dom)
		}
		rows := parsePage(t, dom)
		if len(rows) != 3 {
			t.Errorf("the browser shows %d rows, want 3:\n%s", len(rows), dom)
		}
		comparePage(t, rows, before)
		// The chart is in the DOM the browser built, as SVG.
		if !strings.Contains(dom, `<svg class="chart"`) {
			t.Errorf("no chart in the rendered DOM")
		}
		break
	}

	// A screenshot, to look at: STATUS_PAGE_SCREENSHOT=/tmp/status.png keeps it.
	shot := filepath.Join(t.TempDir(), "status.png")
	runChromium(t, bin, "--hide-scrollbars", "--window-size=1500,700", "--screenshot="+shot, base+"/")
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot: %v (%d bytes)", err, len(png))
	}
	if keep := os.Getenv("STATUS_PAGE_SCREENSHOT"); keep != "" {
		if err := os.WriteFile(keep, png, 0o644); err != nil {
			t.Error(err)
		}
		fmt.Fprintln(os.Stderr, "status page screenshot:", keep)
	}
}
