package ruletest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kube-sentinel/sentinel/internal/yamlpos"
)

// FuzzParseTestFile: no input panics the test-file parser, and every error
// it reports is a *yamlpos.Error naming the file and a line and column.
func FuzzParseTestFile(f *testing.F) {
	// Small seeds: the fuzzer minimizes every new input, which is slow
	// for big ones.
	seeds, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, p := range append(seeds, "testdata/malformed.yaml") {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("tests: [{input_spans: [{durations: 1s x 3, attributes: {a: &x [1]}}], alert_rule_test: [{eval_time: 1m}]}]"))
	f.Add([]byte("rule_files: *a"))
	f.Add([]byte(`rule_files: [r.yaml]
evaluation_interval: 15s
external_labels: {cluster: c}
tests:
  - name: t
    interval: 1s
    external_labels: {region: r}
    input_spans:
      - attributes: {service.name: apiserver, http.status_code: 500, ok: true, f: 1.5}
        resource: {k8s.node.name: n}
        kind: client
        status: error
        name: s
        durations: "50ms x 3 _ 1s+1s x 2"
    input_series:
      - series: 'm_bucket{le="1"}'
        values: "0+1x3 _x2 stale"
    alert_rule_test:
      - eval_time: 1m
        alertname: A
        exp_alerts:
          - exp_labels: {a: b}
            exp_annotations: {summary: s}
            exp_exemplars: 2
`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := parseFile("fuzz.yaml", data)
		if err == nil {
			if tf == nil {
				t.Fatal("no file and no error")
			}
			return
		}
		for _, e := range leafErrors(err) {
			var pe *yamlpos.Error
			if !errors.As(e, &pe) || pe.File != "fuzz.yaml" || pe.Line < 1 || pe.Col < 1 {
				t.Fatalf("error without a position: %v", e)
			}
		}
	})
}

func leafErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// FuzzExpandDurations: no input panics the expansion; an error carries an
// offset inside the input; a success expands to the slots it counts, with
// no negative duration.
func FuzzExpandDurations(f *testing.F) {
	for _, s := range []string{"50ms x 300 3s x 300", "_ x 2 1.5s", "100ms+10ms x 5", "1s-1ms x 1000", "50ms x", "x", "1sx", "_x", "1h30m x 3 _"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		runs, total, err := expandDurations(s)
		if err != nil {
			var ne *notationError
			if !errors.As(err, &ne) || ne.Offset < 0 || ne.Offset > len(s) {
				t.Fatalf("%q: error without an offset in the input: %v", s, err)
			}
			return
		}
		var n int64
		for _, r := range runs {
			if r.count < 1 {
				t.Fatalf("%q: empty run %+v", s, r)
			}
			n += r.count
			if !r.skip && (r.at(0) < 0 || r.at(r.count-1) < 0 || r.at(r.count-1) > maxSpanDuration) {
				t.Fatalf("%q: duration out of range in %+v", s, r)
			}
		}
		if n != total || total < 1 || total > maxSlots {
			t.Fatalf("%q: %d slots counted, %d in runs", s, total, n)
		}
	})
}

// FuzzExpandSeries: no input panics promtool's values notation or the
// series selector; errors carry an offset inside the input; a success
// expands fully to the samples it counts.
func FuzzExpandSeries(f *testing.F) {
	for _, s := range []string{"0+10x600", "1 _x3 stale", "-2+4x3", "1-2x4", "Inf NaN 1e-3", "1+", "_x", `up{a="b"}`, `{__name__='x',b="\"c"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkOffset := func(err error) {
			var ne *notationError
			if !errors.As(err, &ne) || ne.Offset < 0 || ne.Offset > len(s) {
				t.Fatalf("%q: error without an offset in the input: %v", s, err)
			}
		}
		if _, _, err := parseSeries(s); err != nil {
			checkOffset(err)
		}
		runs, total, err := expandSeries(s)
		if err != nil {
			checkOffset(err)
			return
		}
		if total > 1_000_000 {
			return // valid, but too long to walk on every fuzz input
		}
		var n int64
		eachSample(runs, func(i int64, _ sample) bool {
			if i != n {
				t.Fatalf("%q: sample %d numbered %d", s, n, i)
			}
			n++
			return true
		})
		if n != total {
			t.Fatalf("%q: %d samples, %d counted", s, n, total)
		}
	})
}
