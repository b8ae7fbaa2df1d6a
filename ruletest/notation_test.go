package ruletest

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// showDurations expands runs into one word per slot: a duration or "_".
func showDurations(runs []durationRun) string {
	var out []string
	for _, r := range runs {
		for k := int64(0); k < r.count; k++ {
			if r.skip {
				out = append(out, "_")
			} else {
				out = append(out, r.at(k).String())
			}
		}
	}
	return strings.Join(out, " ")
}

func TestExpandDurations(t *testing.T) {
	cases := []struct {
		in, want string
		errAt    int // offset of the error; -1 for none
	}{
		{"50ms", "50ms", -1},
		{"50ms x 2", "50ms 50ms 50ms", -1},
		{"50msx2 3s", "50ms 50ms 50ms 3s", -1},
		{"50ms x2 _ 1.5s", "50ms 50ms 50ms _ 1.5s", -1},
		{"_ x 2 3s", "_ _ _ 3s", -1}, // the contract: "_ x N" skips N+1
		{"_x1 _", "_ _ _", -1},
		{"100ms+50ms x 3", "100ms 150ms 200ms 250ms", -1},
		{"1s-250ms x 4", "1s 750ms 500ms 250ms 0s", -1},
		{"250us 0.5ms 1m30s", "250µs 500µs 1m30s", -1},
		{"  3s\tx\n1  ", "3s 3s", -1},
		{"", "", 0},
		{"50ms x", "", 5},
		{"50ms x three", "", 7},
		{"x 3", "", 0},
		{"50ms x 3 x 4", "", 9},
		{"2parsecs", "", 0},
		{"1s-2s x 1", "", 0},
		{"-1s", "", 0},
		{"1s+ x 3", "", 2},
		{"1s+1s", "", 0},
		{"_+1s x 2", "", 0},
		{"1s x 99999999999999999999", "", 5},
		{"1s x 60000000 1s x 60000000", "", 14},
		{"400d", "", 0},
	}
	for _, c := range cases {
		runs, total, err := expandDurations(c.in)
		if c.errAt >= 0 {
			var ne *notationError
			if !errors.As(err, &ne) {
				t.Errorf("%q: error %v, want one at offset %d", c.in, err, c.errAt)
			} else if ne.Offset != c.errAt {
				t.Errorf("%q: error at offset %d (%s), want %d", c.in, ne.Offset, ne.Msg, c.errAt)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := showDurations(runs); got != c.want {
			t.Errorf("%q expands to %q, want %q", c.in, got, c.want)
		}
		if n := int64(len(strings.Fields(c.want))); total != n {
			t.Errorf("%q: %d slots, want %d", c.in, total, n)
		}
	}
}

func showSeries(runs []seriesRun) string {
	var out []string
	eachSample(runs, func(_ int64, s sample) bool {
		switch s.kind {
		case sampleOmitted:
			out = append(out, "_")
		case sampleStale:
			out = append(out, "stale")
		default:
			out = append(out, fmt.Sprint(s.value))
		}
		return true
	})
	return strings.Join(out, " ")
}

// TestExpandSeries follows the examples of Prometheus's unit-testing docs.
func TestExpandSeries(t *testing.T) {
	cases := []struct {
		in, want string
		errAt    int
	}{
		{"1 2 3", "1 2 3", -1},
		{"-2+4x3", "-2 2 6 10", -1},
		{"1-2x4", "1 -1 -3 -5 -7", -1},
		{"1x4", "1 1 1 1 1", -1},
		{"1 _x3 stale", "1 _ _ _ stale", -1}, // promtool: "_xN" is N slots
		{"0+10x3 _ 5", "0 10 20 30 _ 5", -1},
		{"1e3 1.5e-3+1e-3x1", "1000 0.0015 0.0025", -1},
		{"Inf -Inf NaN", "+Inf -Inf NaN", -1},
		{"1 x 2", "1 1 1", -1},
		{"_x0", "", -1},
		{"", "", -1},
		{"1+", "", 1},
		{"1+2", "", 0},
		{"one", "", 0},
		{"stale x 3", "", 0},
		{"_+1x3", "", 0},
		{"1 2 x", "", 4},
		{"0x2", "0 0 0", -1},
		{"1e999", "", 0},
		{"1+1x", "", 4},
	}
	for _, c := range cases {
		runs, _, err := expandSeries(c.in)
		if c.errAt >= 0 {
			var ne *notationError
			if !errors.As(err, &ne) {
				t.Errorf("%q: error %v, want one at offset %d", c.in, err, c.errAt)
			} else if ne.Offset != c.errAt {
				t.Errorf("%q: error at offset %d (%s), want %d", c.in, ne.Offset, ne.Msg, c.errAt)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := showSeries(runs); got != c.want {
			t.Errorf("%q expands to %q, want %q", c.in, got, c.want)
		}
	}
	if runs, _, _ := expandSeries("NaN"); !math.IsNaN(runs[0].start) {
		t.Error("NaN")
	}
}

func TestParseSeries(t *testing.T) {
	cases := []struct {
		in, want string
		errAt    int
	}{
		{`up`, `up{}`, -1},
		{`apiserver_request_duration_seconds_bucket{resource="namespaces", verb="GET",le="1"}`,
			`apiserver_request_duration_seconds_bucket{le="1", resource="namespaces", verb="GET"}`, -1},
		{`{__name__="up", job='api'}`, `up{job="api"}`, -1},
		{"x{a=`b\\c`,}", `x{a="b\\c"}`, -1},
		{` ns:metric:rate5m { a = "\"q\"" } `, `ns:metric:rate5m{a="\"q\""}`, -1},
		{`{a="b"}`, "", 0},
		{`up{a="b"`, "", 8},
		{`up{a=~"b"}`, "", 4},
		{`up{a="b}`, "", 5},
		{`up{a="b",a="c"}`, "", 9},
		{`up{="b"}`, "", 3},
		{`up{a=b}`, "", 5},
		{`up extra`, "", 3},
		{`up{__name__="down"}`, "", 0},
	}
	for _, c := range cases {
		name, labels, err := parseSeries(c.in)
		if c.errAt >= 0 {
			var ne *notationError
			if !errors.As(err, &ne) {
				t.Errorf("%q: error %v, want one at offset %d", c.in, err, c.errAt)
			} else if ne.Offset != c.errAt {
				t.Errorf("%q: error at offset %d (%s), want %d", c.in, ne.Offset, ne.Msg, c.errAt)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := name + renderMap(labels); got != c.want {
			t.Errorf("%q parses to %s, want %s", c.in, got, c.want)
		}
	}
}

// TestOrigin: time 0 falls on the grid of every group, a week and the
// epoch, at least a year after the epoch.
func TestOrigin(t *testing.T) {
	_, _, set := loadTest(t, "testdata/passing.yaml", "decoys do not page")
	t0 := origin(set, 13*time.Second) // apiserver-pods has no interval: 13s
	if t0.Before(time.Unix(0, 0).Add(maxSpanDuration)) {
		t.Errorf("time 0 %s is less than a year after the epoch", t0)
	}
	for _, d := range []time.Duration{week, 15 * time.Second, 13 * time.Second} {
		if t0.UnixNano()%int64(d) != 0 {
			t.Errorf("time 0 %s is not a multiple of %s", t0, d)
		}
	}
}
