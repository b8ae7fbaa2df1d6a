package engine

import (
	"context"
	"math"
	"testing"
	"time"
)

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	b := func(pairs ...float64) []bucketCount {
		var out []bucketCount
		for i := 0; i+1 < len(pairs); i += 2 {
			out = append(out, bucketCount{upperBound: pairs[i], count: uint64(pairs[i+1])})
		}
		return out
	}
	cases := []struct {
		name   string
		q      float64
		bounds []float64
		counts []bucketCount
		want   float64
	}{
		// Per bucket 50, 30, 15, 5: cumulative 50, 80, 95, 100.
		{"median at a bound", 0.5, []float64{0.1, 0.5, 1, inf}, b(0.1, 50, 0.5, 30, 1, 15, inf, 5), 0.1},
		{"interpolated", 0.9, []float64{0.1, 0.5, 1, inf}, b(0.1, 50, 0.5, 30, 1, 15, inf, 5), 0.5 + 0.5*10.0/15},
		{"in +Inf: largest finite bound", 0.99, []float64{0.1, 0.5, 1, inf}, b(0.1, 50, 0.5, 30, 1, 15, inf, 5), 1},
		{"first bucket from zero", 0.25, []float64{0.1, 0.5, 1, inf}, b(0.1, 50, 0.5, 30, 1, 15, inf, 5), 0.05},
		{"an empty lower bucket bounds the interpolation", 0.5, []float64{0.8, 1, inf}, b(1, 10), 0.9},
		{"without the layout it could not", 0.5, nil, b(1, 10), 0.5},
		{"no observations", 0.5, []float64{1, inf}, nil, math.NaN()},
		{"q above 1", 1.5, []float64{1, inf}, b(1, 1), inf},
		{"q below 0", -1, []float64{1, inf}, b(1, 1), math.Inf(-1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := HistogramQuantile(c.q, c.bounds, c.counts)
			if !(got == c.want || math.Abs(got-c.want) < 1e-12 || (math.IsNaN(got) && math.IsNaN(c.want))) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

// TestMetricsRule feeds bucket-delta observations as the scrape source
// does and checks the rule's value is Prometheus's interpolation of the
// sum over the window, per group.
func TestMetricsRule(t *testing.T) {
	const rule = `
groups:
  - name: m
    interval: 15s
    rules:
      - alert: NamespacesP99
        source: metrics
        metric: apiserver_request_duration_seconds
        matchers: ['resource="namespaces"']
        group_by: [verb]
        objective: {quantile: 0.9, threshold: 600ms}
        window: 1m
`
	e, clock, rec := newTestEngine(t, rule, Options{})
	bounds := []float64{0.1, 0.5, 1, math.Inf(1)}
	obs := func(at time.Duration, name, verb, resource string, le float64, n uint64, trace int) {
		e.Observe(&Observation{Source: SourceMetrics, End: t0.Add(at), Count: n, UpperBound: le, Bounds: bounds,
			Duration: time.Duration(le * float64(time.Second)), TraceID: traceID(trace),
			Labels: mapLabels{"__name__": name, "verb": verb, "resource": resource}})
	}
	// Two scrapes in the window: per bucket 50, 30, 15, 5 in total.
	obs(15*time.Second, "apiserver_request_duration_seconds", "GET", "namespaces", 0.1, 30, 0)
	obs(15*time.Second, "apiserver_request_duration_seconds", "GET", "namespaces", 0.5, 30, 0)
	obs(30*time.Second, "apiserver_request_duration_seconds", "GET", "namespaces", 0.1, 20, 0)
	obs(30*time.Second, "apiserver_request_duration_seconds", "GET", "namespaces", 1, 15, 7)
	obs(30*time.Second, "apiserver_request_duration_seconds", "GET", "namespaces", math.Inf(1), 5, 0)
	// Decoys: another resource, another metric, and a span.
	obs(30*time.Second, "apiserver_request_duration_seconds", "GET", "pods", math.Inf(1), 500, 0)
	obs(30*time.Second, "etcd_request_duration_seconds", "GET", "namespaces", math.Inf(1), 500, 0)
	e.Observe(&Observation{End: t0.Add(30 * time.Second), Duration: time.Hour,
		Labels: mapLabels{"__name__": "apiserver_request_duration_seconds", "span.kind": "server", "resource": "namespaces", "verb": "GET"}})

	clock.t = t0.Add(time.Minute)
	e.Evaluate(context.Background(), clock.t)
	st := e.Status()[0].Rules[0]
	if len(st.Series) != 1 || st.Series[0].Observations != 100 {
		t.Fatalf("series %+v", st.Series)
	}
	if want := 0.5 + 0.5*10.0/15; math.Abs(st.Series[0].Value-want) > 1e-9 {
		t.Fatalf("p90 %v, want %v", st.Series[0].Value, want)
	}
	sent := rec.take()
	if len(sent) != 1 || sent[0].Labels["verb"] != "GET" {
		t.Fatalf("sent %+v", sent)
	}
	if ids := sent[0].Annotations["exemplar_trace_ids"]; ids[:32] != "ab000000000000000000000000000007" {
		t.Errorf("the exemplar of the slowest bucket should come first: %s", ids)
	}
}
