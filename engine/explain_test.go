package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-sentinel/sentinel/internal/golden"
)

// explainRule pages at once when p99 of GET namespaces exceeds 1s over a
// minute; it explains by the default attributes (node, zone, region,
// instance: verb is its group_by).
const explainRule = `
groups:
  - name: apiserver
    interval: 15s
    rules:
      - alert: NamespacesP99
        matchers: ['service.name="apiserver"', 'resource="namespaces"', 'verb=~"GET|LIST"']
        group_by: [verb]
        objective: {quantile: 0.99, threshold: 1s}
        window: 1m
`

var nodeZones = map[string]string{"cp-1": "zone-a", "cp-2": "zone-b", "cp-3": "zone-c", "cp-4": "zone-b"}

// nodeSpan is a GET namespaces span served on node.
func nodeSpan(node string) mapLabels {
	l := apiserverSpan("GET", "/api/v1/namespaces/default")
	l["k8s.node.name"] = node
	if z, ok := nodeZones[node]; ok {
		l["cloud.availability_zone"] = z
	}
	return l
}

// traffic sends n requests per node round-robin over the minute before
// at, each as slow as slow(node, i) says (2s, else 50ms).
func traffic(e *Engine, at time.Duration, nodes []string, n int, slow func(node string, i int) bool) {
	labels := make([]mapLabels, len(nodes))
	for i, node := range nodes {
		labels[i] = nodeSpan(node)
	}
	total := n * len(nodes)
	step := time.Minute / time.Duration(total+1)
	for i := 0; i < total; i++ {
		node := i % len(nodes)
		d := 50 * time.Millisecond
		if slow(nodes[node], i/len(nodes)) {
			d = 2 * time.Second
		}
		e.Observe(&Observation{End: t0.Add(at - time.Minute + time.Duration(i+1)*step), Duration: d, TraceID: traceID(i), Labels: labels[node]})
	}
}

func firingAnnotation(t *testing.T, e *Engine, name string) (string, bool) {
	t.Helper()
	for _, a := range e.Alerts() {
		if a.State == StateFiring {
			v, ok := a.Annotations[name]
			return v, ok
		}
	}
	t.Fatal("no alert is firing")
	return "", false
}

// TestSlowRequestsBy: a node that serves every slow request is named; when
// every node is as slow as the others, or there are too few slow requests
// to tell, nothing is.
func TestSlowRequestsBy(t *testing.T) {
	nodes := []string{"cp-1", "cp-2", "cp-3"}
	cases := []struct {
		name string
		n    int // requests per node
		slow func(node string, i int) bool
		want string // "" for no annotation
	}{
		// Each node is alone in its zone: the zone counts the same requests
		// as the node and is not named beside it.
		{"one node slow", 100, func(node string, _ int) bool { return node == "cp-2" },
			"k8s.node.name=cp-2 (100% of slow, 33% of all)"},
		{"one node slower than the others", 200, func(node string, i int) bool { return node == "cp-2" && i%2 == 0 || i%10 == 0 },
			"k8s.node.name=cp-2 (71% of slow, 33% of all)"},
		// cp-4 shares zone-b with cp-2 and is fast: the zone is a weaker,
		// different statement (all of the slow, half of all requests).
		{"one node slow in a zone of two", 100, func(node string, _ int) bool { return node == "cp-2" },
			"k8s.node.name=cp-2 (100% of slow, 25% of all), cloud.availability_zone=zone-b (100% of slow, 50% of all)"},
		{"every node slow alike", 200, func(_ string, i int) bool { return i%10 == 3 }, ""},
		{"small counts", 3, func(node string, i int) bool { return node == "cp-2" }, ""},
		{"a few more slow requests on one node", 300, func(node string, i int) bool { return node == "cp-2" && i%50 == 0 || i%100 == 1 }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, clock, _ := newTestEngine(t, explainRule, Options{})
			clock.t = t0.Add(time.Minute)
			nodes := nodes
			if strings.Contains(c.name, "zone of two") {
				nodes = append(nodes[:3:3], "cp-4")
			}
			traffic(e, time.Minute, nodes, c.n, c.slow)
			e.Evaluate(context.Background(), clock.t)
			got, ok := firingAnnotation(t, e, "slow_requests_by")
			if got != c.want || ok != (c.want != "") {
				t.Fatalf("slow_requests_by = %q (present %v), want %q", got, ok, c.want)
			}
			st := e.Status()[0].Rules[0].Series[0]
			if len(st.SlowRequestsBy) != strings.Count(c.want, "% of all") {
				t.Fatalf("status has %d values: %+v", len(st.SlowRequestsBy), st.SlowRequestsBy)
			}
		})
	}
}

// TestSlowRequestsByIgnoresChance: over many windows where slowness does not
// depend on the node (each request slow with the same probability), nothing
// is ever named, however unevenly chance spreads the slow requests.
func TestSlowRequestsByIgnoresChance(t *testing.T) {
	x := newExplainer([]string{"k8s.node.name"}, time.Second, time.Minute, time.Second)
	m := newMetrics(prometheus.NewRegistry(), nil)
	clock := &fakeClock{t: t0.Add(time.Minute)}
	labels := []mapLabels{{"k8s.node.name": "cp-1"}, {"k8s.node.name": "cp-2"}, {"k8s.node.name": "cp-3"}, {"k8s.node.name": "cp-4"}}
	named := 0
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		er := x.newRing()
		n := 20 + rng.IntN(2000)
		p := 0.02 + rng.Float64()*0.5
		for i := range n {
			d := 10 * time.Millisecond
			if rng.Float64() < p {
				d = 3 * time.Second
			}
			// Nodes take unequal shares of the traffic.
			node := min(rng.IntN(7), 3)
			x.add(&er, &Observation{End: t0.Add(time.Duration(i+1) * time.Minute / time.Duration(n+1)), Duration: d, Labels: labels[node]}, 1, clock, m)
		}
		if got := x.explain(&er, clock.t); len(got) > 0 {
			named++
			t.Errorf("seed %d (%d requests, %.0f%% slow): named %s", seed, n, p*100, FormatSlowShares(got))
		}
	}
}

// TestSLOGetsSlowRequestsBy: a burn-rate rule with a latency objective
// explains its slow requests by its latency target.
func TestSLOGetsSlowRequestsBy(t *testing.T) {
	const rule = `
groups:
  - name: budget
    interval: 1m
    rules:
      - slo: NamespacesBudget
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        objective: {target: 99.0, latency: 1s}
        period: 28d
        burn_rate_alerts: default
`
	e, clock, _ := newTestEngine(t, rule, Options{})
	labels := []mapLabels{nodeSpan("cp-1"), nodeSpan("cp-2"), nodeSpan("cp-3")}
	for m := 1; m <= 10; m++ {
		for i := range 300 {
			node := i % 3
			d := 50 * time.Millisecond
			if node == 2 && i%6 == 2 { // half of cp-3's requests: 1/6 of all
				d = 1500 * time.Millisecond
			}
			at := t0.Add(time.Duration(m-1)*time.Minute + time.Duration(i+1)*time.Minute/301)
			clock.t = at
			e.Observe(&Observation{End: at, Duration: d, TraceID: traceID(i), Labels: labels[node]})
		}
		clock.t = t0.Add(time.Duration(m) * time.Minute)
		e.Evaluate(context.Background(), clock.t)
	}
	got, ok := firingAnnotation(t, e, "slow_requests_by")
	const want = "k8s.node.name=cp-3 (100% of slow, 33% of all)" // its zone-c counts the same requests
	if !ok || got != want {
		t.Fatalf("slow_requests_by = %q, want %q", got, want)
	}
}

// TestExplainMemoryIsBounded: 10⁵ distinct (and over-long) values of an
// attribute within one window keep each slot's sketch at its k values, the
// series' memory under its cap, Observe allocation-free, and every value
// that did not fit counted.
func TestExplainMemoryIsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, clock, _ := newTestEngine(t, explainRule, Options{Registerer: reg})
	clock.t = t0.Add(time.Minute)
	l := nodeSpan("cp-1")
	o := &Observation{Duration: 2 * time.Second, TraceID: traceID(1), Labels: l}
	const n = 100_000
	long := strings.Repeat("é", ExplainValueBytes) // twice the cap in bytes
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("node-%06d", i)
		if i%10 == 0 {
			values[i] = long + values[i]
		}
	}
	i := 0
	allocs := testing.AllocsPerRun(n-1, func() {
		l["k8s.node.name"] = values[i]
		o.End = t0.Add(time.Duration(i+1) * time.Minute / (n + 1))
		e.Observe(o)
		i++
	})
	if allocs != 0 {
		t.Errorf("Observe allocates %v times per call", allocs)
	}
	e.Evaluate(context.Background(), clock.t)

	r := e.current.Load().groups[0].rules[0]
	r.mu.Lock()
	var bytes, slots int
	for _, s := range r.series {
		for j := range s.explain.slots {
			sl := &s.explain.slots[j]
			bytes += int(unsafe.Sizeof(*sl)) + len(sl.dims)*int(unsafe.Sizeof(explainDim{}))
			for _, d := range sl.dims {
				if d.all.used > explainCounters || d.slow.used > explainCounters {
					t.Errorf("a sketch holds %d values", d.all.used)
				}
			}
			if sl.dims != nil {
				slots++
			}
		}
	}
	r.mu.Unlock()
	// docs/explain.md: at most 12 slots × 4 attributes × 1.4 KiB.
	if limit := 12 * (32 + 4*1460); bytes > limit || slots == 0 || len(r.series) != 1 {
		t.Errorf("%d bytes in %d slots, over %d", bytes, slots, limit)
	}
	if got := counterValue(t, reg, "sentinel_explain_values_evicted_total"); got < n {
		t.Errorf("evictions counted: %v, want at least %d", got, n)
	}
	if got := counterValue(t, reg, "sentinel_explain_values_truncated_total"); got != n/10 {
		t.Errorf("truncations counted: %v, want %d", got, n/10)
	}
	// No value of 10⁵ stands out; the zone every request had is everything.
	if got, ok := firingAnnotation(t, e, "slow_requests_by"); ok {
		t.Errorf("slow_requests_by = %q", got)
	}
}

// counterValue gathers a counter's value from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestFormatSlowShares: values chosen by whoever sends spans are quoted
// when they could be misread.
func TestFormatSlowShares(t *testing.T) {
	got := FormatSlowShares([]SlowShare{
		{Attribute: "k8s.node.name", Value: "cp-2", SlowShare: 1, AllShare: 1.0 / 3},
		{Attribute: "service.instance.id", Value: "a, b=c (d)", SlowShare: 0.996, AllShare: 0.004},
		{Attribute: "verb", Value: "", SlowShare: 0.5, AllShare: 0.2},
	})
	golden.Check(t, "testdata/slow_requests_by.golden", got+"\n")
}

// TestAbsentAttributeIsProbed: an attribute missing from many requests in
// a row is looked up in one request of explainProbeEvery only; once found
// again it is counted in every request.
func TestAbsentAttributeIsProbed(t *testing.T) {
	x := newExplainer([]string{"k8s.node.name"}, time.Second, time.Minute, time.Second)
	m := newMetrics(prometheus.NewRegistry(), nil)
	clock := &fakeClock{t: t0.Add(time.Minute)}
	er := x.newRing()
	lookups := 0
	absent := countingLabels{n: &lookups}
	present := countingLabels{n: &lookups, node: "cp-1"}
	o := &Observation{End: t0.Add(30 * time.Second), Duration: 2 * time.Second}
	steps := []struct {
		labels      countingLabels
		n           int
		wantLookups int
	}{
		{absent, explainAbsentAfter, explainAbsentAfter},
		{absent, 10 * explainProbeEvery, 10},
		{present, explainProbeEvery, -1}, // found at the next probe…
		{present, 100, 100},              // …then looked up every time
	}
	for i, st := range steps {
		lookups = 0
		o.Labels = st.labels
		for range st.n {
			x.add(&er, o, 1, clock, m)
		}
		if st.wantLookups < 0 {
			if x.misses[0] != 0 {
				t.Errorf("step %d: not found again in %d requests", i, st.n)
			}
			continue
		}
		if lookups != st.wantLookups {
			t.Errorf("step %d: %d lookups, want %d", i, lookups, st.wantLookups)
		}
	}
}

type countingLabels struct {
	n    *int
	node string
}

func (c countingLabels) Get(name string) (string, bool) {
	*c.n++
	return c.node, c.node != ""
}

// TestExplainRingIsSmall: whatever the window and slot width, a series has
// at most 12 explain slots of about 1.4 KiB per attribute (docs/explain.md).
func TestExplainRingIsSmall(t *testing.T) {
	if size := unsafe.Sizeof(explainDim{}); size > 1460 {
		t.Errorf("an attribute's slot is %d bytes", size)
	}
	for _, window := range []time.Duration{time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, time.Hour, 3 * 24 * time.Hour} {
		for _, width := range []time.Duration{time.Second, 15 * time.Second, time.Minute, window / 60} {
			x := newExplainer([]string{"a"}, time.Second, window, width)
			if n := len(x.newRing().slots); n > 12 {
				t.Errorf("window %v, slot width %v: %d slots", window, width, n)
			}
		}
	}
}
