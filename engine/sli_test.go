package engine

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/kube-sentinel/sentinel/internal/golden"
)

// sliRules have a latency rule whose group_by and labels collide with the
// names sentinel sets (rule, quantile) and a dotted group_by, and an SLO.
const sliRules = `
groups:
  - name: apiserver
    interval: 15s
    rules:
      - alert: NamespacesP99
        source: spans
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        group_by: [verb, k8s.node.name, rule]
        objective: {quantile: 0.99, threshold: 1s}
        window: 1m
        labels: {severity: page, quantile: high}
      - slo: NamespacesBudget
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        objective: {target: 99.0, latency: 1s}
        period: 28d
        burn_rate_alerts: default
        labels: {team: control-plane}
`

var sliNames = []string{sliQuantile, sliThreshold, sliObs, sliNoData, sliBudget, sliBurnRate, sliObjective}

func gatherSLI(t *testing.T, reg prometheus.Gatherer) string {
	t.Helper()
	out, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, sliNames...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestSLIMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, clock, _ := newTestEngine(t, sliRules, Options{Registerer: reg})
	span := func(verb, node string) mapLabels {
		l := apiserverSpan(verb, "/api/v1/namespaces/default")
		l["k8s.node.name"], l["rule"] = node, "r1"
		return l
	}
	// Before any evaluation there is nothing to say, not zeros.
	feed(e, span("GET", "n1"), 0, time.Minute, time.Second, constant(200*time.Millisecond))
	if got := gatherSLI(t, reg); got != "" {
		t.Fatalf("before the first evaluation:\n%s", got)
	}
	feed(e, span("LIST", "n2"), 0, time.Minute, 2*time.Second, func(i int) time.Duration { return time.Duration(i+1) * 100 * time.Millisecond })
	clock.t = t0.Add(time.Minute)
	e.Evaluate(context.Background(), clock.t)
	golden.Check(t, "testdata/sli_metrics.txt", gatherSLI(t, reg))
	// The quantile label on gauges is deliberate (the objective's quantile,
	// named as in a summary), so promlint's objection to it is left out.
	if problems, err := testutil.GatherAndLint(reg, sliObs, sliNoData, sliBudget, sliBurnRate, sliObjective); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}

	// A reload that drops the latency rule drops its series.
	e.Load(loadRules(t, sliRules[:strings.Index(sliRules, "      - alert:")]+sliRules[strings.Index(sliRules, "      - slo:"):]))
	if got := gatherSLI(t, reg); strings.Contains(got, "NamespacesP99") || !strings.Contains(got, "NamespacesBudget") {
		t.Fatalf("after removing NamespacesP99:\n%s", got)
	}
}

// The SLI metrics are bounded by the per-rule group cap.
func TestSLIMetricsBoundedByGroupCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, clock, _ := newTestEngine(t, sliRules, Options{Registerer: reg, MaxGroupsPerRule: 2})
	for _, node := range []string{"n1", "n2", "n3", "n4"} {
		l := apiserverSpan("GET", "/api/v1/namespaces/default")
		l["k8s.node.name"] = node
		feed(e, l, 0, time.Minute, 10*time.Second, constant(time.Millisecond))
	}
	clock.t = t0.Add(time.Minute)
	e.Evaluate(context.Background(), clock.t)
	if n := testutil.CollectAndCount(newSLICollector(e), sliObs); n != 2+1 { // two groups of the latency rule, the SLO's one
		t.Fatalf("%d %s series, want 3:\n%s", n, sliObs, gatherSLI(t, reg))
	}
}

// Spans by source (service.name), bounded by the SentinelNoData tracker; a
// name that is not UTF-8 is tracked but not exported (it would fail the
// scrape).
func TestSourceSpanMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, _, _ := newTestEngine(t, sliRules, Options{Registerer: reg, NoDataSources: NoDataSourceOptions{MaxSources: 3}})
	for i, svc := range []string{"apiserver", "etcd", "n\xff", "kubelet"} {
		for range 3 * (i + 1) {
			e.Observe(&Observation{End: t0, Duration: time.Millisecond, Labels: mapLabels{"service.name": svc}})
		}
	}
	want := `# HELP sentinel_source_spans_total Spans received per span source (service.name), of the sources SentinelNoData tracks (see sentinel_nodata_sources_overflow_total for the rest).
# TYPE sentinel_source_spans_total counter
sentinel_source_spans_total{service_name="apiserver"} 3
sentinel_source_spans_total{service_name="etcd"} 6
# HELP sentinel_nodata_sources_overflow_total Spans whose service.name was not tracked for SentinelNoData because the tracker was full.
# TYPE sentinel_nodata_sources_overflow_total counter
sentinel_nodata_sources_overflow_total 12
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sentinel_source_spans_total", "sentinel_nodata_sources_overflow_total"); err != nil {
		t.Fatal(err)
	}
}

// Span values that are not UTF-8 neither panic nor fail the scrape: they
// are repaired, and groups that come out the same are exported once.
func TestSLIMetricsInvalidUTF8(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, clock, _ := newTestEngine(t, sliRules, Options{Registerer: reg})
	for _, node := range []string{"n\xff", "n\xfe", "ok"} {
		l := apiserverSpan("GET", "/api/v1/namespaces/default")
		l["k8s.node.name"] = node
		feed(e, l, 0, time.Minute, 10*time.Second, constant(time.Millisecond))
	}
	clock.t = t0.Add(time.Minute)
	e.Evaluate(context.Background(), clock.t)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(newSLICollector(e), sliObs); n != 2+1 {
		t.Fatalf("%d %s series, want 3 (two nodes after repair, the SLO's one)", n, sliObs)
	}
}

// A scrape of a rule with more series than the registry's metric channel
// holds (1000) must not wait on the rule's lock: the SLI collector once
// sent its metrics while holding it, and the sentinel_alerts gauge, read by
// the goroutine that drains the channel, waits for the same lock.
func TestSLIMetricsManyGroupsDoNotBlockGather(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, clock, _ := newTestEngine(t, sliRules, Options{Registerer: reg})
	for i := range 1000 {
		l := apiserverSpan("GET", "/api/v1/namespaces/default")
		l["k8s.node.name"] = "n" + strconv.Itoa(i)
		feed(e, l, 0, time.Minute, 30*time.Second, constant(time.Millisecond))
	}
	clock.t = t0.Add(time.Minute)
	e.Evaluate(context.Background(), clock.t)
	done := make(chan error, 1)
	go func() {
		for range 20 {
			if _, err := reg.Gather(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Gather did not return: the SLI collector and the alerts gauge wait on each other")
	}
}
