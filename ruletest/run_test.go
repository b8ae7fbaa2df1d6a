package ruletest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/golden"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/rules"
)

// TestRunGolden checks Run's report and exit code for a file whose tests
// pass, one with several failing tests, and a malformed one.
func TestRunGolden(t *testing.T) {
	cases := []struct {
		file     string
		wantCode int
	}{
		{"testdata/passing.yaml", ExitSuccess},
		{"testdata/failing.yaml", ExitFailure},
		{"testdata/malformed.yaml", ExitError},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			var out bytes.Buffer
			code := Run(context.Background(), &out, []string{c.file})
			if code != c.wantCode {
				t.Errorf("exit code %d, want %d; output:\n%s", code, c.wantCode, out.String())
			}
			golden.Check(t, strings.TrimSuffix(c.file, ".yaml")+".golden", out.String())
		})
	}
}

// TestRunExitCodes: a malformed test file, or a test whose rule file is
// invalid, exits 2 with FILE:LINE:COL; a failing test exits 1; of several
// files the worst outcome wins.
func TestRunExitCodes(t *testing.T) {
	cases := []struct {
		name  string
		files []string
		code  int
		want  []string // lines the output must hold
	}{
		{"unknown field", []string{"testdata/bad/unknown-field.yaml"}, ExitError, []string{
			`testdata/bad/unknown-field.yaml:8:5: unknown field "alert_rule_tests" in test (known: name, interval, external_labels, input_spans, input_series, alert_rule_test)`,
		}},
		{"durations without a count", []string{"testdata/bad/durations.yaml"}, ExitError, []string{
			`testdata/bad/durations.yaml:7:26: durations: "x" needs a count after it, as in "50ms x 3"`,
		}},
		{"bad eval_time", []string{"testdata/bad/eval-time.yaml"}, ExitError, []string{
			`testdata/bad/eval-time.yaml:9:20: eval_time: "8 minutes" is not a duration (use 30s, 5m, 1h30m, 28d, 1.5s, 250ms)`,
		}},
		{"invalid rule file", []string{"testdata/bad/rules.yaml"}, ExitError, []string{
			`testdata/bad/invalid-rules.yaml:5:20: bad matcher "resource==\"pods\"": 9:10: unexpected =: expected label value`,
			`testdata/bad/invalid-rules.yaml:6:31: quantile 1.5 must be between 0 and 1 (exclusive)`,
		}},
		{"missing rule files", []string{"testdata/bad/missing-rules.yaml"}, ExitError, []string{
			`testdata/bad/missing-rules.yaml:3:5: rule_files: stat testdata/bad/no-such-rules.yaml: no such file or directory`,
			`testdata/bad/missing-rules.yaml:4:5: rule_files: "../rules/nothing-*.yaml" matches no file`,
		}},
		{"YAML syntax", []string{"testdata/bad/syntax.yaml"}, ExitError, []string{
			`testdata/bad/syntax.yaml:3:1: found unexpected end of stream`,
		}},
		{"empty file", []string{"testdata/bad/empty.yaml"}, ExitError, []string{
			`testdata/bad/empty.yaml:1:1: the test file is empty: it needs rule_files and tests`,
		}},
		{"unreadable file", []string{"testdata/no-such-file.yaml"}, ExitError, []string{
			`open testdata/no-such-file.yaml: no such file or directory`,
		}},
		{"no files", nil, ExitError, []string{"no rule test files given"}},
		{"passing", []string{"testdata/passing.yaml"}, ExitSuccess, []string{"  SUCCESS"}},
		{"failing", []string{"testdata/failing.yaml"}, ExitFailure, []string{"  FAILED:"}},
		{"failing then passing", []string{"testdata/failing.yaml", "testdata/passing.yaml"}, ExitFailure, nil},
		{"malformed then failing", []string{"testdata/bad/durations.yaml", "testdata/failing.yaml"}, ExitError, []string{
			"Unit Testing: testdata/bad/durations.yaml", "Unit Testing: testdata/failing.yaml",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			code := Run(context.Background(), &out, c.files)
			if code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			lines := strings.Split(out.String(), "\n")
			for _, w := range c.want {
				found := false
				for _, l := range lines {
					found = found || l == w
				}
				if !found {
					t.Errorf("output lacks the line\n%s\noutput:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestFailuresAreAllReported: every failing alert_rule_test entry of every
// test is reported, with test name, eval time and alert name.
func TestFailuresAreAllReported(t *testing.T) {
	var out bytes.Buffer
	Run(context.Background(), &out, []string{"testdata/failing.yaml"})
	heads := regexp.MustCompile(`(?m)^    test "([^"]+)" \(testdata/failing\.yaml:\d+:\d+\)(, eval_time ([^\s,]+))?`).FindAllStringSubmatch(out.String(), -1)
	var got []string
	for _, h := range heads {
		got = append(got, h[1]+" @"+h[3])
	}
	want := []string{
		"the wrong verb @8m", "the wrong verb @6m", "the wrong verb @8m",
		"a page was not expected @8m", "wrong exemplars @1m37s", "metrics inputs @10m",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("failures reported:\n%s\nwant:\n%s\noutput:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), out.String())
	}
	if strings.Contains(out.String(), "this one passes") {
		t.Error("a passing test is reported")
	}
}

// loadTest parses a test file and its rules and returns the named test.
func loadTest(t *testing.T, path, name string) (*testFile, *testCase, *rules.Set) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tf, err := parseFile(path, data)
	if err != nil {
		t.Fatal(err)
	}
	files, err := resolveRuleFiles(tf)
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.LoadFiles(files, rules.Options{DefaultInterval: tf.evaluationInterval})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tf.tests {
		if tc.name == name {
			return tf, tc, set
		}
	}
	t.Fatalf("%s has no test %q", path, name)
	return nil, nil, nil
}

// firingAt runs tc and returns the firing alerts named alertname at each
// eval time.
func firingAt(t *testing.T, tf *testFile, tc *testCase, set *rules.Set, alertname string, at ...time.Duration) [][]engine.AlertStatus {
	t.Helper()
	tc.alertTests = nil
	for _, d := range at {
		tc.alertTests = append(tc.alertTests, alertTest{evalTime: d, alertname: alertname})
	}
	sim, err := newSimulation(tc, set, tf.evaluationInterval, tf.externalLabels)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sim.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]engine.AlertStatus, len(res))
	for i, r := range res {
		out[i] = r.got
	}
	return out
}

// TestContractExample runs the contract's example (50ms x 300 then 3s x
// 300 on GET /api/v1/namespaces/default) and checks the page and its
// exemplars: five trace IDs, each the ID TraceID gives a 3s span in the
// window.
func TestContractExample(t *testing.T) {
	const name = "a namespaces latency spike pages with exemplars"
	tf, tc, set := loadTest(t, "testdata/passing.yaml", name)
	got := firingAt(t, tf, tc, set, "KubeAPINamespacesLatencyP99", 5*time.Minute, 6*time.Minute, 8*time.Minute)
	if len(got[0]) != 0 || len(got[1]) != 0 {
		t.Fatalf("firing before for: 1m had passed: %v", got[:2])
	}
	if len(got[2]) != 1 {
		t.Fatalf("at 8m: %d alerts firing, want 1", len(got[2]))
	}
	a := got[2][0]
	if a.Labels["verb"] != "GET" || a.Labels["severity"] != "page" || a.Labels["cluster"] != "test" {
		t.Errorf("labels %v", a.Labels)
	}
	// The 3s spans are entry 0's slots 301 to 601; at 8m the 5m window
	// holds (3m, 8m], that is slots 181 to 480.
	slow := map[string]int{}
	for i := 301; i <= 480; i++ {
		slow[TraceID(name, 0, i)] = i
	}
	ids := strings.Split(a.Annotations["exemplar_trace_ids"], ",")
	if len(ids) != engine.ExemplarsPerWindow {
		t.Fatalf("exemplar_trace_ids %q: want %d", a.Annotations["exemplar_trace_ids"], engine.ExemplarsPerWindow)
	}
	for _, id := range ids {
		if _, ok := slow[id]; !ok {
			t.Errorf("exemplar %s is not the trace ID of a 3s span in the window", id)
		}
	}
}

// TestExemplarIDsInTestdata checks that the trace IDs written in
// testdata/passing.yaml are the ones TraceID documents, so that the file
// is an honest example of naming them.
func TestExemplarIDsInTestdata(t *testing.T) {
	const name = "the slowest requests are the exemplars"
	_, tc, _ := loadTest(t, "testdata/passing.yaml", name)
	var want []string
	for i := 600; i >= 596; i-- { // 8s, 7s, 6s, 5s, 4s: slowest first
		want = append(want, TraceID(name, 0, i))
	}
	got := tc.alertTests[0].expected[0].annotations["exemplar_trace_ids"]
	if got != strings.Join(want, ",") {
		t.Errorf("passing.yaml names %s\nTraceID gives   %s", got, strings.Join(want, ","))
	}
}

// TestGapsCountSlots: skipped slots count in a span's index, so the first
// span after "_ x 299" is slot 300 and ends at 300 × interval.
func TestGapsCountSlots(t *testing.T) {
	runs, total, err := expandDurations("_ x 299 3s x 300")
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCase{name: "gap", interval: time.Second, spans: []spanInput{{
		kind:       ptrace.SpanKindServer,
		attributes: []attribute{{"service.name", "apiserver"}, {"http.method", "GET"}, {"http.target", "/api/v1/namespaces/default"}},
		durations:  runs, slots: total,
	}}}
	tf, _, set := loadTest(t, "testdata/passing.yaml", "gaps keep the last known state")
	// The first slow span ends at 5m, so with for: 1m the page fires at 6m.
	got := firingAt(t, tf, tc, set, "KubeAPINamespacesLatencyP99", 5*time.Minute+59*time.Second, 6*time.Minute, 8*time.Minute)
	if len(got[0]) != 0 {
		t.Errorf("firing at 5m59s, less than a minute after the first slow span ended at 5m: %v", got[0])
	}
	if len(got[1]) != 1 || len(got[2]) != 1 {
		t.Fatalf("not firing at 6m and 8m: %v", got)
	}
	if activeAt := got[1][0].ActiveAt.Sub(origin(set, tf.evaluationInterval)); activeAt != 5*time.Minute {
		t.Errorf("active since %s, want 5m", activeAt)
	}
	got = got[1:]
	ok := map[string]bool{}
	for i := 300; i <= 480; i++ {
		ok[TraceID("gap", 0, i)] = true
	}
	for _, id := range strings.Split(got[1][0].Annotations["exemplar_trace_ids"], ",") {
		if !ok[id] {
			t.Errorf("exemplar %s is not a span of slots 300..480", id)
		}
	}
}

// TestDecoysWouldFireAsServerSpans keeps the decoy test honest: the same
// INTERNAL and CLIENT child spans, made SERVER spans, do page. So "decoys
// do not page" passes because the engine observes SERVER spans only, not
// because the decoys could never match.
func TestDecoysWouldFireAsServerSpans(t *testing.T) {
	tf, tc, set := loadTest(t, "testdata/passing.yaml", "decoys do not page")
	if got := firingAt(t, tf, tc, set, "KubeAPINamespacesLatencyP99", 10*time.Minute); len(got[0]) != 0 {
		t.Fatalf("decoys page: %v", got[0])
	}
	for _, i := range []int{2, 3} {
		kind := tc.spans[i].kind
		tc.spans[i].kind = ptrace.SpanKindServer
		got := firingAt(t, tf, tc, set, "KubeAPINamespacesLatencyP99", 10*time.Minute)
		if len(got[0]) != 1 {
			t.Errorf("entry %d as a SERVER span: %d alerts, want 1", i, len(got[0]))
		}
		tc.spans[i].kind = kind
	}
}

// TestTraceID pins the documented derivation, against sha256sum:
// printf 'spike/0/0' | sha256sum.
func TestTraceID(t *testing.T) {
	cases := []struct {
		test         string
		entry, index int
		trace, span  string
	}{
		{"spike", 0, 0, "2431f6c00015386b5963b130cf689709", "278ba657d30757fa"},
		{"spike", 1, 42, "7e13c9b6a044957a13c0578ab11ca78e", "b8a019656ed67a70"},
	}
	for _, c := range cases {
		if got := TraceID(c.test, c.entry, c.index); got != c.trace {
			t.Errorf("TraceID(%q, %d, %d) = %s, want %s", c.test, c.entry, c.index, got, c.trace)
		}
		if got := SpanID(c.test, c.entry, c.index); got != c.span {
			t.Errorf("SpanID(%q, %d, %d) = %s, want %s", c.test, c.entry, c.index, got, c.span)
		}
	}
	if TraceID("a", 1, 2) == TraceID("a", 2, 1) || TraceID("a", 0, 12) == TraceID("a", 1, 2) {
		t.Error("trace IDs collide")
	}
}

// TestDayOfInput: a day of input at one span per second (two entries,
// 172,802 spans, 86,400 evaluations of a 1s group) runs through, and the
// incident at noon pages. How fast is BenchmarkDayOfInput's to say.
func TestDayOfInput(t *testing.T) {
	start := time.Now()
	var out bytes.Buffer
	code := Run(context.Background(), &out, []string{"testdata/day.yaml"})
	took := time.Since(start)
	if code != ExitSuccess {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	t.Logf("a day of input took %s (BenchmarkDayOfInput measures it)", took)
}

func BenchmarkDayOfInput(b *testing.B) {
	for b.Loop() {
		if code := Run(context.Background(), &bytes.Buffer{}, []string{"testdata/day.yaml"}); code != ExitSuccess {
			b.Fatalf("exit %d", code)
		}
	}
}

func TestContextCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if code := Run(ctx, &out, []string{"testdata/passing.yaml"}); code != ExitError {
		t.Errorf("exit %d, want %d:\n%s", code, ExitError, out.String())
	}
}
