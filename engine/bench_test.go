package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// benchRules is 10 rules, as a control-plane rule pack has: five resources
// × read/write, each grouped by namespace.
func benchRules() string {
	var b strings.Builder
	b.WriteString("groups:\n  - name: bench\n    rules:\n")
	for _, res := range []string{"namespaces", "pods", "configmaps", "secrets", "leases"} {
		for _, verbs := range []string{"GET|LIST", "POST|PUT|PATCH|DELETE"} {
			fmt.Fprintf(&b, `      - alert: %s_%d
        matchers: ['service.name="apiserver"', 'resource="%s"', 'verb=~"%s"']
        group_by: [namespace]
        objective: {quantile: 0.99, threshold: 1s}
        window: 5m
`, res, len(verbs), res, verbs)
		}
	}
	return b.String()
}

// BenchmarkIngest measures the span hot path: decoded spans into an engine
// with 10 rules and 50 groups per rule, reported per span.
func BenchmarkIngest(b *testing.B) { benchmarkIngest(b, false) }

// BenchmarkIngestWhere is BenchmarkIngest with spans that carry where they
// ran (node, zone, region, instance), which slow_requests_by counts.
func BenchmarkIngestWhere(b *testing.B) { benchmarkIngest(b, true) }

func benchmarkIngest(b *testing.B, where bool) {
	e, clock, _ := newTestEngine(b, benchRules(), Options{})
	resources := []string{"namespaces", "pods", "configmaps", "secrets", "leases", "nodes", "events"}
	verbs := []string{"GET", "LIST", "WATCH", "POST", "PATCH"}
	var spans []mapLabels
	for i := 0; i < len(resources)*len(verbs)*50; i++ {
		kind := "server"
		if i%10 == 9 {
			kind = "internal" // child spans are offered too and must be skipped
		}
		spans = append(spans, mapLabels{
			"service.name": "apiserver",
			"span.kind":    kind,
			"resource":     resources[i%len(resources)],
			"verb":         verbs[(i/len(resources))%len(verbs)],
			"namespace":    fmt.Sprint("ns-", (i/len(resources)/len(verbs))%50),
		})
		if where {
			l := spans[len(spans)-1]
			l["k8s.node.name"] = fmt.Sprint("cp-", i%3)
			l["cloud.availability_zone"] = fmt.Sprint("zone-", i%3)
			l["cloud.region"] = "eu-west-1"
			l["service.instance.id"] = fmt.Sprint("apiserver-", i%3)
		}
	}
	o := &Observation{Duration: 30 * time.Millisecond, TraceID: traceID(1)}
	// Open every group first: steady state is what is measured.
	for i, l := range spans {
		o.End, o.Labels = t0.Add(time.Duration(i)*time.Millisecond), l
		e.Observe(o)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		o.Labels = spans[i%len(spans)]
		o.End = t0.Add(time.Duration(i) * time.Microsecond)
		o.Duration = time.Duration(i%1000) * time.Millisecond
		e.Observe(o)
	}
	b.StopTimer()
	clock.t = t0.Add(time.Minute)
	e.Evaluate(context.Background(), clock.t)
	if n := len(e.Status()[0].Rules[0].Series); n != 50 {
		b.Fatalf("%d groups, want 50", n)
	}
}

// BenchmarkEvaluate measures one evaluation of the same 10 rules × 50 groups.
func BenchmarkEvaluate(b *testing.B) {
	e, _, _ := newTestEngine(b, benchRules(), Options{})
	for i := 0; i < 50*1000; i++ {
		e.Observe(&Observation{End: t0.Add(time.Duration(i) * 5 * time.Millisecond), Duration: time.Duration(i%997) * time.Millisecond,
			Labels: mapLabels{"service.name": "apiserver", "span.kind": "server", "resource": "pods", "verb": "GET", "namespace": fmt.Sprint("ns-", i%50)}})
	}
	b.ReportAllocs()
	ts := t0.Add(5 * time.Minute)
	for b.Loop() {
		e.Evaluate(context.Background(), ts)
	}
}

// BenchmarkExplainAdd is slow_requests_by's share of the hot path: one
// observation's five attributes (four present) counted in its series' slot.
func BenchmarkExplainAdd(b *testing.B) {
	x := newExplainer([]string{"k8s.node.name", "cloud.availability_zone", "cloud.region", "service.instance.id", "verb"}, time.Second, 5*time.Minute, 5*time.Second)
	m := newMetrics(nil, nil)
	clock := &fakeClock{t: t0.Add(time.Minute)}
	er := x.newRing()
	var labels []mapLabels
	for i := range 6 {
		labels = append(labels, mapLabels{"k8s.node.name": fmt.Sprint("ip-10-0-1-", i%3, ".eu-west-1.compute.internal"),
			"cloud.availability_zone": fmt.Sprint("eu-west-1", "abc"[i%3:i%3+1]), "cloud.region": "eu-west-1",
			"service.instance.id": fmt.Sprint("6f1c2a9e-4d7b-4c1e-9a51-", i)})
	}
	o := &Observation{End: t0.Add(30 * time.Second)}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		o.Labels = labels[i%len(labels)]
		o.Duration = time.Duration(i%1020) * time.Millisecond // 2% slow
		x.add(&er, o, 1, clock, m)
	}
}
