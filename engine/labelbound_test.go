package engine

import (
	"context"
	"runtime"
	rtmetrics "runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Group keys from huge label values (a scraped label, or a span attribute
// that reached the engine whole) are cut to the label value limit: the
// series labels, the alert labels and the memory they keep stay small.
func TestHugeGroupByValuesAreBounded(t *testing.T) {
	const rule = `
groups:
  - name: g
    rules:
      - alert: PerNamespace
        matchers: ['service.name="apiserver"']
        group_by: [namespace]
        objective: {quantile: 0.5, threshold: 1s}
        window: 1m
`
	reg := prometheus.NewRegistry()
	e, clock, rec := newTestEngine(t, rule, Options{Registerer: reg})
	const groups = 203
	runtime.GC()
	before := liveHeap()
	for i := range groups {
		// Distinct values: each would be a group of its own; 1 MiB each.
		ns := strings.Repeat(string(rune('a'+i%26)), 1<<20-3) + string(rune('A'+i/26))
		e.Observe(&Observation{End: t0.Add(time.Second), Duration: 2 * time.Second, TraceID: traceID(i),
			Labels: mapLabels{"service.name": "apiserver", "span.kind": "server", "namespace": ns}})
	}
	runtime.GC()
	grown := int64(liveHeap()) - int64(before)
	if grown > 16<<20 {
		t.Errorf("%d groups of 1 MiB values keep %d MB live", groups, grown>>20)
	}
	clock.t = t0.Add(2 * time.Second)
	e.Evaluate(context.Background(), clock.t)
	series := e.Status()[0].Rules[0].Series
	if len(series) > 26 {
		// The cut values share the 1,011-byte prefix: one group per letter.
		t.Errorf("%d series, want the 26 distinct truncated values", len(series))
	}
	for _, s := range series {
		if v := s.Labels["namespace"]; len(v) > DefaultMaxLabelValueBytes || !strings.HasSuffix(v, TruncationMarker) {
			t.Fatalf("series label of %d bytes, want at most %d ending with %q", len(v), DefaultMaxLabelValueBytes, TruncationMarker)
		}
	}
	for _, a := range rec.take() {
		if v := a.Labels["namespace"]; len(v) > DefaultMaxLabelValueBytes {
			t.Errorf("alert label of %d bytes", len(v))
		}
	}
	if got := testutil.ToFloat64(findCounter(t, reg, "sentinel_rule_label_values_truncated_total")); got != groups {
		t.Errorf("truncated %v, want %d", got, groups)
	}
}

func TestBoundLabelValue(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"default", 64, "default"},
		{strings.Repeat("x", 64), 64, strings.Repeat("x", 64)},
		{strings.Repeat("x", 65), 64, strings.Repeat("x", 64-len(TruncationMarker)) + TruncationMarker},
		{strings.Repeat("x", 49) + "ü" + strings.Repeat("x", 30), 64, strings.Repeat("x", 49) + TruncationMarker},
	}
	for _, tc := range tests {
		got, _ := boundLabelValue(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("boundLabelValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if again, cut := boundLabelValue(got, tc.max); cut || again != got {
			t.Errorf("bounding %q twice changed it", got)
		}
	}
}

func liveHeap() uint64 {
	s := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

func findCounter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: "copy"})
			c.Add(mf.GetMetric()[0].GetCounter().GetValue())
			return c
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func TestMaxLabelValueBytesValidated(t *testing.T) {
	if _, err := New(Options{MaxLabelValueBytes: 5}); err == nil {
		t.Error("a label value limit with no room for the marker was accepted")
	}
	if got, _ := boundLabelValue("abcdefgh", 4); got != TruncationMarker {
		t.Errorf("a limit under the marker's length: %q", got)
	}
}
