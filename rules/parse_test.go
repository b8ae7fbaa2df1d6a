package rules

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/golden"
)

func TestParseValid(t *testing.T) {
	groups, err := ParseFile("testdata/valid.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 3 {
		t.Fatalf("%d groups", len(groups))
	}
	r := groups[0].Rules[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", r.Name, "KubeAPINamespacesLatencyP99"},
		{"source", r.Source, SourceSpans},
		{"matchers", len(r.Matchers), 3},
		{"dotted matcher name", r.Matchers[0].Name, "service.name"},
		{"group_by", strings.Join(r.GroupBy, ","), "verb"},
		{"quantile", r.Objective.Quantile, 0.99},
		{"threshold", r.Objective.Threshold, time.Second},
		{"window", r.Window, 5 * time.Minute},
		{"for", r.For, time.Minute},
		{"labels", r.Labels["severity"], "page"},
		{"line", r.Pos.Line, 5},
		{"interval", groups[0].Interval.Period(time.Time{}), 15 * time.Second},
		{"cron interval", groups[1].Interval.Period(time.Unix(0, 0)), 30 * time.Second},
		{"@every interval", groups[2].Interval.Period(time.Unix(0, 0)), 30 * time.Second},
		{"fractional threshold", groups[2].Rules[0].Objective.Threshold, 1500 * time.Millisecond},
		{"window 1h30m", groups[2].Rules[0].Window, 90 * time.Minute},
		{"metric", groups[2].Rules[0].Metric, "etcd_request_duration_seconds"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	text, err := r.Annotations["summary"].Execute(TemplateData{Labels: map[string]string{"verb": "LIST"}, Value: 1.375, Threshold: 1})
	if err != nil || text != "p99 of LIST namespaces requests is 1.375 (objective 1s)" {
		t.Errorf("summary = %q, %v", text, err)
	}
}

// TestParseInvalid checks that every problem of a file is reported at once,
// each as FILE:LINE:COL: message, against a golden file.
func TestParseInvalid(t *testing.T) {
	_, err := ParseFile("testdata/invalid.yaml", Options{})
	if err == nil {
		t.Fatal("invalid file accepted")
	}
	golden.Check(t, "testdata/invalid.golden", err.Error()+"\n")
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"yaml syntax", "groups:\n  - name: [\n", "f.yaml:2:1: did not find expected node content"},
		{"not a list", "groups: {a: b}\n", "f.yaml:1:9: groups must be a list"},
		{"unknown top field", "rules: []\n", `f.yaml:1:1: unknown field "rules" in rule file`},
		{"group without name", "groups:\n  - rules: []\n", "f.yaml:2:5: group has no name"},
		{"slo without objective", "groups:\n  - name: g\n    rules:\n      - slo: X\n", "f.yaml:4:9: slo has no objective"},
		{"slo target", "groups:\n  - name: g\n    rules:\n      - slo: X\n        objective: {target: 100}\n", "f.yaml:5:29: target 100 must be a percentage"},
		{"slo with window", "groups:\n  - name: g\n    rules:\n      - slo: X\n        objective: {target: 99}\n        window: 5m\n", `f.yaml:6:9: unknown field "window" in rule`},
		{"slo short >= long", "groups:\n  - name: g\n    rules:\n      - slo: X\n        objective: {target: 99}\n        burn_rate_alerts: [{severity: page, long_window: 1h, short_window: 1h, factor: 2}]\n", "short_window 1h must be shorter than long_window 1h"},
		{"slo long > period", "groups:\n  - name: g\n    rules:\n      - slo: X\n        objective: {target: 99}\n        period: 1d\n", "long_window 3d is longer than the period 1d"},
		{"metrics group_by unknown label", "groups:\n  - name: g\n    rules:\n      - alert: X\n        source: metrics\n        metric: apiserver_request_duration_seconds\n        group_by: [verb, zone, job]\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n", `f.yaml:7:26: group_by "zone" can never have a value: apiserver_request_duration_seconds has no such label`},
		{"span.kind upper case", "groups:\n  - name: g\n    rules:\n      - alert: X\n        matchers: ['span.kind=\"CLIENT\"']\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n", `f.yaml:5:20: matcher span.kind="CLIENT" can never match`},
		{"sub-second @every is exact", "groups:\n  - name: g\n    interval: '@every 1.5s'\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 1200ms\n", `f.yaml:7:17: window 1.2s is shorter than the group's evaluation interval 1.5s`},
		{"slo severity", "groups:\n  - name: g\n    rules:\n      - slo: X\n        objective: {target: 99}\n        burn_rate_alerts: [{severity: critical, long_window: 1h, short_window: 5m, factor: 2}]\n", `burn rate alert severity "critical" must be page or ticket`},
		{"slo duplicate pair", "groups:\n  - name: g\n    rules:\n      - slo: X\n        objective: {target: 99}\n        burn_rate_alerts: [{severity: page, long_window: 1h, short_window: 5m, factor: 2}, {severity: page, long_window: 1h, short_window: 5m, factor: 2}]\n", `is given twice`},
		{"bad mute", "groups:\n  - name: g\n    mute: [{schedule: 'every sunday', duration: 1h}]\n    rules: []\n", `f.yaml:3:23: mute schedule "every sunday"`},
		{"no objective", "groups:\n  - name: g\n    rules:\n      - alert: X\n        window: 5m\n", `f.yaml:4:9: rule "X" has no objective`},
		{"quantile zero", "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0, threshold: 1s}\n        window: 5m\n", "f.yaml:5:31: quantile 0 must be between 0 and 1"},
		{"spans with metric", "groups:\n  - name: g\n    rules:\n      - alert: X\n        metric: foo\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n", "f.yaml:5:9: metric: only applies"},
		{"bad cron", "groups:\n  - name: g\n    interval: '* * *'\n    rules: []\n", `f.yaml:3:15: interval "* * *" is neither a duration nor a cron spec`},
		{"min_observations zero", "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n        min_observations: 0\n", "f.yaml:7:27: min_observations 0 must be at least 1"},
		{"min_observations not a number", "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n        min_observations: many\n", `f.yaml:7:27: min_observations: "many" is not an integer`},
		{"min_observations too large", "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n        min_observations: 10000000000\n", "f.yaml:7:27: min_observations 10000000000 is over the limit of 1000000000"},
		{"no_data_timeout not a duration", "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n        no_data_timeout: soon\n", `f.yaml:7:26: no_data_timeout: "soon" is not a duration`},
		{"no_data_timeout negative", "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n        no_data_timeout: -1h\n", `f.yaml:7:26: no_data_timeout: "-1h": a duration cannot be negative`},
		{"no_data_timeout too long", "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n        no_data_timeout: 60d\n", "f.yaml:7:26: no_data_timeout 60d is over the limit of 30d"},
		{"slo min_observations zero", "groups:\n  - name: g\n    rules:\n      - slo: X\n        objective: {target: 99}\n        min_observations: -3\n", "f.yaml:6:27: min_observations -3 must be at least 1"},
		{"explain_by not a list", "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n        explain_by: k8s.node.name\n", "f.yaml:7:21: explain_by must be a list"},
		{"explain_by empty name", "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n        explain_by: [a, '']\n", "f.yaml:7:25: explain_by has an empty name"},
		{"explain_by twice", "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n        explain_by: [a, b, a]\n", `f.yaml:7:28: explain_by names "a" twice`},
		{"explain_by in group_by", "groups:\n  - name: g\n    rules:\n      - alert: X\n        group_by: [verb]\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n        explain_by: [verb]\n", `f.yaml:8:22: explain_by "verb" is in group_by`},
		{"explain_by too many", "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n        explain_by: [a, b, c, d, e, f, g, h, i]\n", "f.yaml:7:21: explain_by names 9 attributes, over the limit of 8"},
		{"explain_by long name", "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n        explain_by: [" + strings.Repeat("x", 257) + "]\n", "f.yaml:7:22: explain_by name is 257 bytes, over the limit of 256"},
		{"explain_by availability slo", "groups:\n  - name: g\n    rules:\n      - slo: X\n        objective: {target: 99}\n        explain_by: [a]\n", "f.yaml:6:9: explain_by needs a latency objective"},
		{"duplicate group_by", "groups:\n  - name: g\n    rules:\n      - alert: X\n        group_by: [a.b, a_b]\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n", `f.yaml:5:25: group_by names "a_b" twice`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(c.text), Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// TestParseNoDataFields: min_observations and no_data_timeout default to
// 1 and 1h on both kinds of rule, take explicit values (0s included), and
// change the fingerprint, so a reload starts the rule afresh.
func TestParseNoDataFields(t *testing.T) {
	const base = "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n"
	const slo = "groups:\n  - name: g\n    rules:\n      - slo: X\n        objective: {target: 99}\n"
	cases := []struct {
		name, text string
		wantMin    uint64
		wantTO     time.Duration
	}{
		{"alert defaults", base, 1, time.Hour},
		{"slo defaults", slo, 1, time.Hour},
		{"alert explicit", base + "        min_observations: 20\n        no_data_timeout: 2h30m\n", 20, 150 * time.Minute},
		{"slo explicit", slo + "        min_observations: 5\n        no_data_timeout: 0s\n", 5, 0},
	}
	fingerprints := map[string]string{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			groups, err := Parse("f.yaml", []byte(c.text), Options{})
			if err != nil {
				t.Fatal(err)
			}
			r := groups[0].Rules[0]
			if r.MinObservations != c.wantMin || r.NoDataTimeout != c.wantTO {
				t.Errorf("min_observations %d, no_data_timeout %v; want %d, %v", r.MinObservations, r.NoDataTimeout, c.wantMin, c.wantTO)
			}
			if prev, ok := fingerprints[r.Fingerprint]; ok {
				t.Errorf("fingerprint equals that of %q", prev)
			}
			fingerprints[r.Fingerprint] = c.name
		})
	}
}

// TestParseMetricsAvailability: an availability SLO (no latency) from
// metrics reads a request counter's 5xx codes and is accepted; over a
// latency histogram (never failed) it is refused, as is a latency SLO over
// a counter (no latency: every request would be slow).
func TestParseMetricsAvailability(t *testing.T) {
	t.Run("metrics availability", func(t *testing.T) {
		slo := func(metric, objective string) string {
			return "groups:\n  - name: g\n    rules:\n      - slo: APIServerAvailability\n        source: metrics\n        metric: " + metric + "\n" +
				"        matchers: ['verb!~\"WATCH|CONNECT\"']\n        group_by: [resource]\n        objective: " + objective + "\n"
		}
		groups, err := Parse("f.yaml", []byte(slo("apiserver_request_total", "{target: 99.9}")), Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := groups[0].Rules[0]
		if r.Kind != KindSLO || r.Source != SourceMetrics || r.Metric != "apiserver_request_total" || r.SLO.Target != 99.9 || r.SLO.Latency != 0 {
			t.Errorf("rule %+v, slo %+v", r, r.SLO)
		}
		for _, c := range []struct{ metric, objective, want string }{
			{"apiserver_request_duration_seconds", "{target: 99.9}", "f.yaml:6:17: apiserver_request_duration_seconds is a latency histogram"},
			{"apiserver_request_total", "{target: 99, latency: 1s}", "f.yaml:9:20: apiserver_request_total is a counter"},
		} {
			if _, err := Parse("f.yaml", []byte(slo(c.metric, c.objective)), Options{}); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s %s: error %v, want it to contain %q", c.metric, c.objective, err, c.want)
			}
		}
	})
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "groups:\n  - name: g\n    rules: []\n")
	write("b.yaml", "groups:\n  - name: g\n    rules: []\n")
	_, err := LoadFiles([]string{filepath.Join(dir, "*.yaml")}, Options{})
	if err == nil || !strings.Contains(err.Error(), `b.yaml:2:5: group "g" is already defined at`) {
		t.Fatalf("duplicate group across files: %v", err)
	}
	if _, err := LoadFiles([]string{filepath.Join(dir, "missing.yaml")}, Options{}); err == nil {
		t.Fatal("missing file accepted")
	}
	set, err := LoadFiles([]string{filepath.Join(dir, "a.yaml"), filepath.Join(dir, "none-*.yaml")}, Options{})
	if err != nil || len(set.Groups) != 1 {
		t.Fatalf("set %+v, err %v", set, err)
	}
}

func TestFingerprint(t *testing.T) {
	parse := func(text string) string {
		g, err := Parse("f.yaml", []byte(text), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return g[0].Rules[0].Fingerprint
	}
	base := "groups:\n  - name: g\n    rules:\n      - alert: X\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n"
	same := "# a comment moves lines\ngroups:\n  - name: g\n    rules:\n      - alert: X\n        window: 5m\n        objective: {threshold: 1s, quantile: 0.5}\n"
	changed := strings.Replace(base, "threshold: 1s", "threshold: 2s", 1)
	if parse(base) != parse(same) {
		t.Error("fingerprint depends on layout")
	}
	if parse(base) == parse(changed) {
		t.Error("fingerprint ignores the threshold")
	}
}

func TestSanitizeLabelName(t *testing.T) {
	for in, want := range map[string]string{"k8s.node.name": "k8s_node_name", "verb": "verb", "9lives": "_9lives", "a-b/c": "a_b_c"} {
		if got := SanitizeLabelName(in); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}

func TestHumanizeDuration(t *testing.T) {
	for in, want := range map[float64]string{0: "0s", 0.0005: "500us", 0.25: "250ms", 1.375: "1.375s", 2.9871: "2.987s", 150: "2m30s"} {
		if got := HumanizeDuration(in); got != want {
			t.Errorf("%v → %q, want %q", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/valid.yaml", "testdata/invalid.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("groups:\n  - name: &a g\n    rules: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		groups, err := Parse("fuzz.yaml", data, Options{})
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml:") {
					t.Fatalf("error line without position: %q", line)
				}
			}
			return
		}
		for _, g := range groups {
			for _, r := range g.Rules {
				if r.Fingerprint == "" {
					t.Fatalf("accepted a rule without a fingerprint: %+v", r)
				}
				if r.Kind == KindSLO {
					s := r.SLO
					if s == nil || s.Target <= 0 || s.Target >= 100 || s.Period <= 0 || len(s.BurnRateAlerts) == 0 {
						t.Fatalf("accepted an invalid slo: %+v %+v", r, s)
					}
					for _, b := range s.BurnRateAlerts {
						if b.ShortWindow <= 0 || b.ShortWindow >= b.LongWindow || b.LongWindow > s.Period || b.Factor <= 0 {
							t.Fatalf("accepted an invalid burn-rate pair: %+v", b)
						}
					}
					continue
				}
				if r.Window <= 0 || r.Objective.Quantile <= 0 || r.Objective.Quantile >= 1 || r.Objective.Threshold <= 0 {
					t.Fatalf("accepted an invalid rule: %+v", r)
				}
			}
		}
	})
}

func TestParseSLO(t *testing.T) {
	groups, err := ParseFile("testdata/slo.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := groups[0].Rules[0]
	if r.Kind != KindSLO || r.SLO.Target != 99 || r.SLO.Latency != time.Second || r.SLO.Period != 28*24*time.Hour {
		t.Fatalf("slo %+v %+v", r, r.SLO)
	}
	// 28 days: 2% of the budget in an hour is 13.44×, 10% in 3 days 0.933×.
	if len(r.SLO.BurnRateAlerts) != 4 || r.SLO.BurnRateAlerts[0] != (BurnRateAlert{"page", time.Hour, 5 * time.Minute, 13.44, 2 * time.Minute}) ||
		r.SLO.BurnRateAlerts[3] != (BurnRateAlert{"ticket", 72 * time.Hour, 6 * time.Hour, 0.933333, 3 * time.Hour}) {
		t.Fatalf("default burn rates %+v", r.SLO.BurnRateAlerts)
	}
	if math.Abs(r.SLO.ErrorBudget()-0.01) > 1e-12 {
		t.Fatalf("error budget %v", r.SLO.ErrorBudget())
	}
	custom := groups[0].Rules[1]
	if len(custom.SLO.BurnRateAlerts) != 1 || custom.SLO.BurnRateAlerts[0].Factor != 10 || custom.SLO.Latency != 0 {
		t.Fatalf("custom %+v", custom.SLO)
	}
	// Maintenance windows: Sundays 02:00 for an hour, on the group.
	m := groups[0].Mute[0]
	sunday := time.Date(2026, 11, 29, 2, 30, 0, 0, time.UTC)
	for at, want := range map[time.Time]bool{sunday: true, sunday.Add(-31 * time.Minute): false, sunday.Add(30 * time.Minute): false, sunday.Add(29 * time.Minute): true, sunday.Add(24 * time.Hour): false} {
		if got := m.Active(at); got != want {
			t.Errorf("mute at %v: %v, want %v", at, got, want)
		}
	}
	if len(custom.Mute) != 1 || !custom.Mute[0].Active(time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)) {
		t.Errorf("rule mute %+v", custom.Mute)
	}
}

// TestDefaultBurnRatesFollowThePeriod: the default pairs are shares of the
// budget (2% in 1h, 5% in 6h, 10% in 1d, 10% in 3d), so their factors
// follow the period; short windows are the long ones ÷ 12.
func TestDefaultBurnRatesFollowThePeriod(t *testing.T) {
	cases := []struct {
		period string
		want   []float64
	}{
		{"30d", []float64{14.4, 6, 3, 1}},
		{"28d", []float64{13.44, 5.6, 2.8, 0.933333}},
		{"7d", []float64{3.36, 1.4, 0.7, 0.233333}},
		{"4w", []float64{13.44, 5.6, 2.8, 0.933333}},
	}
	for _, c := range cases {
		t.Run(c.period, func(t *testing.T) {
			text := "groups:\n  - name: g\n    rules:\n      - slo: S\n        matchers: ['service.name=\"a\"']\n" +
				"        objective: {target: 99.9}\n        period: " + c.period + "\n"
			groups, err := Parse("p.yaml", []byte(text), Options{})
			if err != nil {
				t.Fatal(err)
			}
			pairs := groups[0].Rules[0].SLO.BurnRateAlerts
			for i, b := range pairs {
				if b.Factor != c.want[i] {
					t.Errorf("pair %d (%s over %s): factor %v, want %v", i, b.Severity, FormatDuration(b.LongWindow), b.Factor, c.want[i])
				}
				if b.ShortWindow != b.LongWindow/12 {
					t.Errorf("pair %d: short window %v, want %v", i, b.ShortWindow, b.LongWindow/12)
				}
			}
		})
	}
	// A pair of one's own may say the share instead of the factor.
	text := "groups:\n  - name: g\n    rules:\n      - slo: S\n        matchers: ['service.name=\"a\"']\n" +
		"        objective: {target: 99.9}\n        period: 7d\n" +
		"        burn_rate_alerts: [{severity: page, long_window: 1h, short_window: 5m, budget_percent: 2, for: 2m}]\n"
	groups, err := Parse("p.yaml", []byte(text), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f := groups[0].Rules[0].SLO.BurnRateAlerts[0].Factor; f != 3.36 {
		t.Fatalf("budget_percent 2 over 1h of 7d: factor %v, want 3.36", f)
	}
	both := strings.Replace(text, "budget_percent: 2", "budget_percent: 2, factor: 3", 1)
	if _, err := Parse("p.yaml", []byte(both), Options{}); err == nil || !strings.Contains(err.Error(), "both factor and budget_percent") {
		t.Fatalf("factor and budget_percent together: %v", err)
	}
}

// TestExplainDimensions: explain_by when given (an empty list turns the
// comparison off), else where a request ran and the rule's own matcher
// names that can take several values and are not group_by; explain_by
// changes the fingerprint only when given.
func TestExplainDimensions(t *testing.T) {
	const head = "groups:\n  - name: g\n    rules:\n      - alert: X\n        matchers: ['service.name=\"apiserver\"', 'verb=~\"GET|LIST\"', 'resource!=\"events\"', 'span.kind=~\"server|client\"']\n        group_by: [resource]\n        objective: {quantile: 0.5, threshold: 1s}\n        window: 5m\n"
	cases := []struct {
		name, extra, want string
	}{
		{"default", "", "k8s.node.name,cloud.availability_zone,cloud.region,service.instance.id,verb"},
		{"given", "        explain_by: [k8s.node.name, code]\n", "k8s.node.name,code"},
		{"off", "        explain_by: []\n", ""},
	}
	fingerprints := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			groups, err := Parse("f.yaml", []byte(head+c.extra), Options{})
			if err != nil {
				t.Fatal(err)
			}
			r := groups[0].Rules[0]
			if got := strings.Join(r.ExplainDimensions(), ","); got != c.want {
				t.Errorf("dimensions %q, want %q", got, c.want)
			}
			if fingerprints[r.Fingerprint] {
				t.Errorf("fingerprint %s seen before", r.Fingerprint)
			}
			fingerprints[r.Fingerprint] = true
		})
	}
}
