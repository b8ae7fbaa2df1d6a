package web

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/rules"
)

// The status page at /: every rule with each of its series' current value
// against the objective, its state, a chart of the last hour and the
// exemplar traces. Server-rendered HTML and SVG, no script, no external
// resource: it works in any browser that can reach the web port, and in a
// cluster with no egress.

// A chart shows chartWindows × the rule's window (a latency rule's
// window, an SLO's shortest burn-rate window), so that a breach and how
// it began are both in view, within [minChartRange, maxChartRange];
// historyMaxPoints bounds the memory a series' history takes whatever the
// range and the evaluation interval (older points are thinned).
const (
	chartWindows     = 6
	minChartRange    = 5 * time.Minute
	maxChartRange    = 24 * time.Hour
	historyMaxPoints = 720
)

// chartRange is how far back a rule's charts go.
func chartRange(window time.Duration) time.Duration {
	return min(max(chartWindows*window, minChartRange), maxChartRange)
}

// ruleChartRange is chartRange of the window a rule's chart shows.
func ruleChartRange(r engine.RuleStatus) time.Duration {
	if r.Kind == string(rules.KindSLO) {
		var shortest time.Duration
		for _, s := range r.Series {
			if s.SLO != nil {
				for _, p := range s.SLO.Pairs {
					if shortest == 0 || p.ShortWindow < shortest {
						shortest = p.ShortWindow
					}
				}
			}
		}
		return chartRange(shortest)
	}
	return chartRange(r.Window)
}

// statusPoint is one evaluation's value of a series: a latency rule's
// quantile in seconds (NaN when the window held no observation), an SLO's
// burn rate over its shortest window (engine.SeriesStatus.Value).
type statusPoint struct {
	Time  time.Time
	Value float64
}

// statusHistory is the last hour of values of every rule series, for the
// charts. It is fed from engine.Status(): by each page view, and by
// sampleStatus at every evaluation interval when the daemon runs it. A
// point is the series' value at its rule's last evaluation, so feeding the
// same evaluation twice records it once.
type statusHistory struct {
	mu     sync.Mutex
	series map[string][]statusPoint // by historyKey
}

func newStatusHistory() *statusHistory {
	return &statusHistory{series: map[string][]statusPoint{}}
}

func historyKey(group, rule string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(group)
	b.WriteByte(0xff)
	b.WriteString(rule)
	for _, k := range keys {
		b.WriteByte(0xff)
		b.WriteString(k)
		b.WriteByte(0xfe)
		b.WriteString(labels[k])
	}
	return b.String()
}

// record adds the current value of every evaluated series, drops points
// older than the rule's chart range before now, and forgets series that
// are gone (a rule removed by a reload, a group that left every window).
// A point closer to the one before the newest than 2 × range /
// historyMaxPoints replaces the newest, so that kept points lie at least
// range / historyMaxPoints apart and the range fits in historyMaxPoints.
func (h *statusHistory) record(groups []engine.GroupStatus, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := make(map[string]bool, len(h.series))
	for _, g := range groups {
		for _, r := range g.Rules {
			span := ruleChartRange(r)
			cutoff, step := now.Add(-span), 2*span/historyMaxPoints
			for _, s := range r.Series {
				key := historyKey(g.Name, r.Name, s.Labels)
				seen[key] = true
				pts := h.series[key]
				if !r.LastEvaluation.IsZero() && (len(pts) == 0 || r.LastEvaluation.After(pts[len(pts)-1].Time)) {
					p := statusPoint{Time: r.LastEvaluation, Value: s.Value}
					if n := len(pts); n >= 2 && p.Time.Sub(pts[n-2].Time) < step {
						pts[n-1] = p // thinned: the newest value of the step
					} else {
						pts = append(pts, p)
					}
				}
				drop := 0
				for drop < len(pts) && (pts[drop].Time.Before(cutoff) || len(pts)-drop > historyMaxPoints) {
					drop++
				}
				if drop > 0 {
					pts = append(pts[:0], pts[drop:]...)
				}
				h.series[key] = pts
			}
		}
	}
	for key := range h.series {
		if !seen[key] {
			delete(h.series, key)
		}
	}
}

// points returns a copy of a series' history, oldest first.
func (h *statusHistory) points(key string) []statusPoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]statusPoint(nil), h.series[key]...)
}

// The page's view of the engine's status.
type statusPageData struct {
	Now                     time.Time
	Version                 string
	Firing, Pending, Series int
	NoData                  int            // rules that are blind (SentinelNoData)
	SilentSources           []silentSource // span sources with a SentinelNoData
	Groups                  []statusGroup
}

// silentSource is a service.name that stopped sending spans.
type silentSource struct {
	Name    string
	Since   time.Time // when its SentinelNoData fired
	Summary string
}

// silentSources lists the span sources whose SentinelNoData fires.
func silentSources(alerts []engine.AlertStatus) []silentSource {
	var out []silentSource
	for _, a := range alerts {
		if name, ok := a.Labels["service_name"]; ok && a.Labels["alertname"] == engine.NoDataAlertName && a.State == engine.StateFiring {
			out = append(out, silentSource{Name: name, Since: a.FiredAt, Summary: a.Annotations["summary"]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

type statusGroup struct {
	Name, File     string
	Interval       time.Duration
	LastEvaluation time.Time
	Rules          []statusRule
}

type statusRule struct {
	Name           string
	Kind           string // "alerting" or "slo"
	State          string
	Objective      string  // "p99 ≤ 1s", "target 99%"
	Over           string  // "over 5m" (the window), "over 28d" (the period)
	Threshold      float64 // latency rules: seconds
	Target         float64 // SLOs: percent
	Period         time.Duration
	LastEvaluation time.Time
	NoData         bool // blind: every series is no_data
	NoDataSince    time.Time
	Series         []statusSeries
}

type statusSeries struct {
	Labels       string // `verb="GET", resource="pods"`, or "" for a rule without group_by
	State        string
	HasValue     bool
	Value        float64 // latency rules: seconds, as /api/v1/rules shows it
	Ratio        float64 // value / threshold, for the bar
	Observations uint64
	Failed       uint64 // SLOs: the bad requests (failed or slow) over the period
	NoData       bool   // too few observations to judge: a firing alert keeps firing
	NoDataSince  time.Time
	Chart        template.HTML
	Exemplars    []statusExemplar
	SLO          *statusSLO // SLO rules only
	// Why, beside a pending or firing series whose engine status explains
	// it (nil otherwise).
	Explanation *Explanation
}

// statusSLO is an SLO group's budget and burn rates, as /api/v1/rules has
// them.
type statusSLO struct {
	BudgetRemaining float64 // a fraction: 1 untouched, below 0 once spent
	BurnRates       []statusBurnRate
	Pairs           []statusPair
}

type statusBurnRate struct {
	Window string  // as the API's key: "5m"
	Rate   float64 // 1 spends exactly the budget over the period
	Over   bool    // above the factor of a pair that uses the window
}

type statusPair struct {
	Severity                string
	LongWindow, ShortWindow string
	Factor                  float64
	State                   string
}

type statusExemplar struct {
	TraceID  string
	Duration string
	URL      string // the external tracing UI's: "" without trace_url_template
}

func (h *Handler) statusPage(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	groups := h.opts.Rules.Status()
	h.history.record(groups, now)
	// The engine's template, so that the page links as the alerts do; a
	// failure is logged and counted there, and only loses the link.
	var traceURL ExemplarURLFunc
	if h.opts.ExternalTraceURL != nil {
		traceURL = h.opts.ExternalTraceURL()
	}
	data := buildStatusPage(groups, h.history, traceURL, h.opts.Explain, now, h.opts.Version)
	data.SilentSources = silentSources(h.opts.Rules.Alerts())
	var b bytes.Buffer
	if err := statusTemplate.Execute(&b, data); err != nil {
		h.statusPageErrors.Inc()
		h.logger.Error("status page template failed", "err", err)
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:")
	w.Write(b.Bytes())
}

func buildStatusPage(groups []engine.GroupStatus, h *statusHistory, traceURL ExemplarURLFunc, explain ExplainFunc, now time.Time, version string) statusPageData {
	data := statusPageData{Now: now, Version: version}
	for _, g := range groups {
		sg := statusGroup{Name: g.Name, File: g.File, Interval: g.Interval, LastEvaluation: g.LastEvaluation}
		for _, r := range g.Rules {
			sr := statusRule{Name: r.Name, Kind: r.Kind, State: r.State.String(), LastEvaluation: r.LastEvaluation,
				NoData: r.NoData, NoDataSince: r.NoDataSince}
			if r.NoData {
				data.NoData++
			}
			if r.Kind == string(rules.KindSLO) {
				sr.Target, sr.Period = r.Target, r.Period
				sr.Objective = "target " + strconv.FormatFloat(r.Target, 'f', -1, 64) + "%"
				sr.Over = "over " + model.Duration(r.Period).String()
			} else {
				sr.Threshold = r.Threshold.Seconds()
				sr.Objective = quantileName(r.Quantile) + " ≤ " + rules.HumanizeDuration(sr.Threshold)
				sr.Over = "over " + model.Duration(r.Window).String()
			}
			for _, s := range r.Series {
				ss := statusSeries{Labels: labelString(s.Labels), State: seriesState(s, r.Alerts).String(),
					Observations: s.Observations, Failed: s.Failed, NoData: s.NoData, NoDataSince: s.NoDataSince}
				c := chart{Points: h.points(historyKey(g.Name, r.Name, s.Labels)), Range: ruleChartRange(r), Now: now}
				if s.SLO != nil {
					ss.SLO, c.Line = sloView(s.SLO)
					c.Format, c.What = formatBurnRate, "burn rate over "+shortestWindow(s.SLO)
				} else {
					ss.Value, ss.HasValue = s.Value, !math.IsNaN(s.Value)
					if ss.HasValue && sr.Threshold > 0 {
						ss.Ratio = s.Value / sr.Threshold
					}
					c.Line, c.Format, c.What = sr.Threshold, rules.HumanizeDuration, quantileName(r.Quantile)+" over "+model.Duration(r.Window).String()
					// An SLO's chart is of a burn rate: its exemplars'
					// durations have no place on it.
					c.Exemplars = s.Exemplars
				}
				ss.Chart = c.svg()
				if explain != nil && ss.State != "inactive" {
					ss.Explanation = explain(s)
				}
				for _, x := range s.Exemplars {
					ex := statusExemplar{TraceID: hex.EncodeToString(x.TraceID[:]), Duration: rules.HumanizeDuration(x.Duration.Seconds())}
					if traceURL != nil {
						ex.URL = traceURL(g.Name, r.Name, x)
					}
					ss.Exemplars = append(ss.Exemplars, ex)
				}
				switch ss.State {
				case "firing":
					data.Firing++
				case "pending":
					data.Pending++
				}
				data.Series++
				sr.Series = append(sr.Series, ss)
			}
			sg.Rules = append(sg.Rules, sr)
		}
		data.Groups = append(data.Groups, sg)
	}
	return data
}

// sloView orders an SLO group's burn rates by window and marks those above
// a factor; it also returns the factor to draw on the chart of the shortest
// window's burn rate: the lowest factor of the pairs whose short window it
// is, the first line a fast burn crosses.
func sloView(st *engine.SLOStatus) (*statusSLO, float64) {
	v := &statusSLO{BudgetRemaining: st.BudgetRemaining}
	lowest := map[string]float64{} // window → lowest factor of a pair using it
	note := func(w time.Duration, f float64) {
		k := model.Duration(w).String()
		if cur, ok := lowest[k]; !ok || f < cur {
			lowest[k] = f
		}
	}
	for _, p := range st.Pairs {
		note(p.LongWindow, p.Factor)
		note(p.ShortWindow, p.Factor)
		v.Pairs = append(v.Pairs, statusPair{Severity: p.Severity, LongWindow: model.Duration(p.LongWindow).String(),
			ShortWindow: model.Duration(p.ShortWindow).String(), Factor: p.Factor, State: p.State.String()})
	}
	for w, rate := range st.BurnRates {
		f, ok := lowest[w]
		v.BurnRates = append(v.BurnRates, statusBurnRate{Window: w, Rate: rate, Over: ok && rate > f})
	}
	sort.Slice(v.BurnRates, func(i, j int) bool {
		a, _ := model.ParseDuration(v.BurnRates[i].Window)
		b, _ := model.ParseDuration(v.BurnRates[j].Window)
		return a < b
	})
	return v, lowest[shortestWindow(st)]
}

// shortestWindow is the window an SLO series' Value (and so its chart) is
// the burn rate over: the shortest of its pairs' windows.
func shortestWindow(st *engine.SLOStatus) string {
	var shortest time.Duration
	for _, p := range st.Pairs {
		if shortest == 0 || p.ShortWindow < shortest {
			shortest = p.ShortWindow
		}
	}
	return model.Duration(shortest).String()
}

// formatBurnRate shows a burn rate as a factor of the budget's pace.
func formatBurnRate(v float64) string {
	return strconv.FormatFloat(v, 'g', 4, 64) + "×"
}

// formatBudget shows the budget remaining in percent, negative once spent.
func formatBudget(v float64) string {
	return strconv.FormatFloat(v*100, 'f', 2, 64) + "%"
}

// seriesState is the state of the series' own alert: the one whose labels
// carry every label of the series.
func seriesState(s engine.SeriesStatus, alerts []engine.AlertStatus) engine.AlertState {
	state := engine.StateInactive
	for _, a := range alerts {
		match := true
		for k, v := range s.Labels {
			if a.Labels[k] != v {
				match = false
				break
			}
		}
		if match && a.State > state {
			state = a.State
		}
	}
	return state
}

func quantileName(q float64) string {
	return "p" + strconv.FormatFloat(math.Round(q*100*1e6)/1e6, 'f', -1, 64)
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(l[k])
	}
	return strings.Join(parts, ", ")
}

// chart is one series' chart: what (a latency quantile, an SLO's burn
// rate) over time as a line, broken where the window was empty; Line (the
// objective, a burn-rate factor) dashed; a latency rule's exemplars as
// dots at (time, duration) that open the trace view.
type chart struct {
	Points    []statusPoint
	Line      float64
	Format    func(float64) string // a value on the y axis
	What      string
	Range     time.Duration // how far back from Now
	Now       time.Time
	Exemplars []engine.Exemplar
}

// svg draws the chart. Only numbers, hex trace IDs and the page's own
// words go into it, escaped, so it is safe as HTML.
func (c chart) svg() template.HTML {
	const w, h = 320.0, 96.0
	const left, right, top, bottom = 46.0, 6.0, 6.0, 14.0 // the plot's margins: y labels, x labels
	pw, ph := w-left-right, h-top-bottom
	hi := c.Line
	for _, p := range c.Points {
		if !math.IsNaN(p.Value) && p.Value > hi {
			hi = p.Value
		}
	}
	for _, x := range c.Exemplars {
		hi = max(hi, x.Duration.Seconds())
	}
	if hi <= 0 {
		hi = 1
	}
	hi *= 1.15
	start := c.Now.Add(-c.Range)
	x := func(t time.Time) float64 {
		f := float64(t.Sub(start)) / float64(c.Range)
		return left + math.Max(0, math.Min(1, f))*pw
	}
	y := func(v float64) float64 { return top + (1-v/hi)*ph }
	rangeText := model.Duration(c.Range).String()

	var b strings.Builder
	esc := template.HTMLEscapeString
	fmt.Fprintf(&b, `<svg class="chart" width="%g" height="%g" viewBox="0 0 %g %g" role="img" aria-label="last %s">`, w, h, w, h, rangeText)
	fmt.Fprintf(&b, `<title>last %s of the %s: %d evaluations; dashed: %s; dots: the slowest requests</title>`,
		rangeText, esc(c.What), len(c.Points), esc(c.Format(c.Line)))
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" class="bg"/>`, left, top, pw, ph)
	// The y axis: 0, half and the top, with grid lines.
	for _, v := range []float64{0, hi / 2, hi} {
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" class="grid"/><text x="%g" y="%.1f" class="axis y" text-anchor="end">%s</text>`,
			left, y(v), w-right, y(v), left-3, y(v)+3, esc(c.Format(v)))
	}
	// The x axis: the range's start, middle and now.
	fmt.Fprintf(&b, `<text x="%g" y="%g" class="axis x">−%s</text><text x="%g" y="%g" class="axis x" text-anchor="middle">−%s</text><text x="%g" y="%g" class="axis x" text-anchor="end">now</text>`,
		left, h-3, rangeText, left+pw/2, h-3, model.Duration(c.Range/2).String(), w-right, h-3)
	if c.Line > 0 {
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" class="objective"><title>%s</title></line>`, left, y(c.Line), w-right, y(c.Line), esc(c.Format(c.Line)))
	}
	var seg []string
	flush := func() {
		switch len(seg) {
		case 0:
		case 1: // a lone point: a dot, or it would not show
			xy := strings.Split(seg[0], ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="1.5" class="dot"/>`, xy[0], xy[1])
		default:
			fmt.Fprintf(&b, `<polyline points="%s" class="value"/>`, strings.Join(seg, " "))
		}
		seg = seg[:0]
	}
	for _, p := range c.Points {
		if math.IsNaN(p.Value) || p.Time.Before(start) {
			flush()
			continue
		}
		seg = append(seg, fmt.Sprintf("%.1f,%.1f", x(p.Time), y(p.Value)))
	}
	flush()
	for _, e := range c.Exemplars {
		if e.Time.Before(start) || e.Time.After(c.Now) {
			continue
		}
		id := hex.EncodeToString(e.TraceID[:])
		fmt.Fprintf(&b, `<a href="trace/%s" class="exemplar" data-trace-id="%s"><circle cx="%.1f" cy="%.1f" r="3"/><title>trace %s: %s</title></a>`,
			id, id, x(e.Time), y(e.Duration.Seconds()), id, esc(rules.HumanizeDuration(e.Duration.Seconds())))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

//go:embed templates/status.html
var statusHTML string

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"dur":     rules.HumanizeDuration,
	"secs":    func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) },
	"pct":     func(r float64) string { return strconv.FormatFloat(math.Max(0, math.Min(r, 1))*100, 'f', 1, 64) },
	"ago":     func(now, t time.Time) string { return now.Sub(t).Round(time.Second).String() + " ago" },
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"pdur":    func(d time.Duration) string { return model.Duration(d).String() },
	"burn":    formatBurnRate,
	"budget":  formatBudget,
	"share":   percent,
	"shares":  formatShares,
}).Parse(statusHTML))
