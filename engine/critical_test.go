package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-sentinel/sentinel/internal/golden"
	"github.com/kube-sentinel/sentinel/traces"
)

// criticalRule pages at once when p99 of GET namespaces exceeds 500ms.
const criticalRule = `
groups:
  - name: apiserver
    interval: 15s
    rules:
      - alert: NamespacesP99
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        objective: {quantile: 0.99, threshold: 500ms}
        window: 1m
`

// request is a hand-built apiserver request: a SERVER root, a CLIENT call
// to etcd and etcd's own SERVER span (times in ms after start), exported
// by two resources as the real components do.
type request struct {
	id                   int
	start                time.Time
	root, client, etcd   [2]int // start, end in ms
	withClient, withRoot bool
	leaf, leafOp         string
}

func spanIDOf(trace, n int) traces.SpanID {
	var id traces.SpanID
	binary.BigEndian.PutUint32(id[:4], uint32(trace))
	id[7] = byte(n)
	return id
}

func (q request) add(b *traces.Buffer, received time.Time) {
	tid := traces.TraceID(traceID(q.id))
	ms := func(v int) int64 { return q.start.Add(time.Duration(v) * time.Millisecond).UnixNano() }
	var api, etcd traces.Resource
	api.Set("apiserver", []traces.Attribute{{Key: "k8s.node.name", Value: "cp-2"}})
	etcd.Set(q.leaf, []traces.Attribute{{Key: "k8s.node.name", Value: "cp-2"}})
	if q.withRoot {
		b.Add(&api, &traces.Span{TraceID: tid, SpanID: spanIDOf(q.id, 1), Name: "GET /api/v1/namespaces/{:name}", Kind: traces.KindServer,
			Start: ms(q.root[0]), End: ms(q.root[1])}, received)
	}
	if q.withClient {
		b.Add(&api, &traces.Span{TraceID: tid, SpanID: spanIDOf(q.id, 2), ParentSpanID: spanIDOf(q.id, 1), Name: q.leafOp, Kind: traces.KindClient,
			Start: ms(q.client[0]), End: ms(q.client[1])}, received)
	}
	// etcd exports later, in its own batch.
	b.Add(&etcd, &traces.Span{TraceID: tid, SpanID: spanIDOf(q.id, 3), ParentSpanID: spanIDOf(q.id, 2), Name: q.leafOp, Kind: traces.KindServer,
		Start: ms(q.etcd[0]), End: ms(q.etcd[1])}, received.Add(5*time.Second))
}

func etcdRequest(id int, start time.Time) request {
	return request{id: id, start: start, root: [2]int{0, 1000}, client: [2]int{10, 950}, etcd: [2]int{20, 940},
		withClient: true, withRoot: true, leaf: "etcd", leafOp: "etcdserverpb.KV/Range"}
}

// explainSetup is an engine with a real trace buffer on one clock.
func explainSetup(t *testing.T, bufOpts traces.Options) (*Engine, *fakeClock, *traces.Buffer) {
	t.Helper()
	clock := &fakeClock{t: t0}
	bufOpts.Now = clock.Now
	bufOpts.Registerer = prometheus.NewRegistry()
	if bufOpts.MaxBytes == 0 {
		bufOpts.MaxBytes = traces.MinMaxBytes
	}
	buf, err := traces.New(bufOpts)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Clock: clock, Registerer: prometheus.NewRegistry(), Traces: buf, PinFor: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.Load(loadRules(t, criticalRule))
	return e, clock, buf
}

// observe files the requests' roots with the engine, as the OTLP receiver
// does, and their spans with the buffer.
func observe(e *Engine, buf *traces.Buffer, reqs []request) {
	l := nodeSpan("cp-2")
	for _, q := range reqs {
		if buf != nil {
			q.add(buf, q.start.Add(time.Second))
		}
		e.Observe(&Observation{End: q.start.Add(time.Duration(q.root[1]) * time.Millisecond), Duration: time.Duration(q.root[1]-q.root[0]) * time.Millisecond,
			TraceID: traceID(q.id), SpanID: spanIDOf(q.id, 1), Labels: l})
	}
}

func renderExplanation(e *Engine) string {
	var b strings.Builder
	for _, a := range e.Alerts() {
		keys := []string{}
		for k := range a.Annotations {
			if strings.HasPrefix(k, "critical_path") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "%s %s\n", a.Labels["alertname"], a.State)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s: %s\n", k, a.Annotations[k])
		}
	}
	for _, s := range e.Status()[0].Rules[0].Series {
		if cp := s.CriticalPath; cp != nil {
			fmt.Fprintf(&b, "status: %d traces, %d incomplete\n", cp.Traces, cp.Incomplete)
			for _, p := range cp.Services {
				fmt.Fprintf(&b, "  service %s %.4f\n", p.Name, p.Share)
			}
			for _, p := range cp.Spans {
				fmt.Fprintf(&b, "  span %s %.4f\n", p.Name, p.Share)
			}
		}
	}
	return b.String()
}

// TestCriticalPathAnnotations: a firing series whose exemplar traces spend
// their time in etcd says so; traces missing a span are marked; without
// any trace in the buffer there is no annotation.
func TestCriticalPathAnnotations(t *testing.T) {
	cases := []struct {
		name string
		reqs func(start time.Time) []request
	}{
		{"etcd leads", func(start time.Time) []request {
			var out []request
			for i := range 5 {
				out = append(out, etcdRequest(i+1, start.Add(time.Duration(i)*time.Second)))
			}
			// A fast request is not an exemplar, and not in the breakdown.
			fast := etcdRequest(9, start)
			fast.root, fast.client, fast.etcd, fast.leaf = [2]int{0, 600}, [2]int{10, 590}, [2]int{20, 30}, "webhook"
			return append(out, fast)
		}},
		{"incomplete traces", func(start time.Time) []request {
			var out []request
			for i := range 5 {
				q := etcdRequest(i+1, start.Add(time.Duration(i)*time.Second))
				q.withClient = i >= 2 // the first two lost their CLIENT span
				out = append(out, q)
			}
			return out
		}},
		{"no root arrived", func(start time.Time) []request {
			q := etcdRequest(1, start)
			q.withRoot = false
			return []request{q}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, clock, buf := explainSetup(t, traces.Options{})
			clock.t = t0.Add(30 * time.Second)
			observe(e, buf, c.reqs(t0.Add(10*time.Second)))
			e.Evaluate(context.Background(), clock.t)
			golden.Check(t, "testdata/critical_path_"+strings.ReplaceAll(c.name, " ", "_")+".golden", renderExplanation(e))
		})
	}
}

// TestNoTraceBufferNoAnnotation: without a buffer, or with one that never
// saw the exemplars' traces, a firing alert has no critical_path.
func TestNoTraceNoAnnotation(t *testing.T) {
	for _, withBuffer := range []bool{false, true} {
		t.Run(fmt.Sprint("buffer=", withBuffer), func(t *testing.T) {
			var e *Engine
			clock := &fakeClock{t: t0}
			if withBuffer {
				e, clock, _ = explainSetup(t, traces.Options{})
			} else {
				e, clock, _ = newTestEngine(t, criticalRule, Options{})
			}
			clock.t = t0.Add(30 * time.Second)
			observe(e, nil, []request{etcdRequest(1, t0.Add(10*time.Second))})
			e.Evaluate(context.Background(), clock.t)
			for _, name := range []string{"critical_path", "critical_path_spans"} {
				if v, ok := firingAnnotation(t, e, name); ok {
					t.Errorf("%s = %q", name, v)
				}
			}
			if cp := e.Status()[0].Rules[0].Series[0].CriticalPath; cp != nil {
				t.Errorf("status has a critical path: %+v", cp)
			}
		})
	}
}

// TestExemplarTracesArePinned: the traces of a firing series' exemplars
// outlive the buffer's age limit and its eviction of everything else, and
// spans that arrive after the pin join them; a trace no alert refers to
// does not survive; the pins lapse PinFor after the alert resolved.
func TestExemplarTracesArePinned(t *testing.T) {
	e, clock, buf := explainSetup(t, traces.Options{MaxAge: time.Minute})
	clock.t = t0.Add(30 * time.Second)
	start := t0.Add(10 * time.Second)
	var reqs []request
	for i := range 5 {
		q := etcdRequest(i+1, start.Add(time.Duration(i)*time.Second))
		q.withClient = false // arrives after the pin, below
		reqs = append(reqs, q)
	}
	observe(e, buf, reqs)
	bystander := etcdRequest(100, start)
	bystander.add(buf, start)
	e.Evaluate(context.Background(), clock.t)
	for _, q := range reqs {
		if !buf.Pinned(traces.TraceID(traceID(q.id))) {
			t.Fatalf("trace %d is not pinned", q.id)
		}
	}
	// The CLIENT spans come a batch later; then a flood of other traces
	// fills the buffer many times over, and the buffer's age limit passes.
	var api traces.Resource
	api.Set("apiserver", nil)
	for _, q := range reqs {
		clock.t = t0.Add(40 * time.Second)
		q.withRoot, q.withClient, q.leaf = false, true, "etcd"
		tid := traces.TraceID(traceID(q.id))
		buf.Add(&api, &traces.Span{TraceID: tid, SpanID: spanIDOf(q.id, 2), ParentSpanID: spanIDOf(q.id, 1), Name: q.leafOp, Kind: traces.KindClient,
			Start: q.start.Add(10 * time.Millisecond).UnixNano(), End: q.start.Add(950 * time.Millisecond).UnixNano()}, clock.t)
	}
	for i := range 50_000 {
		var tid traces.TraceID
		binary.BigEndian.PutUint64(tid[8:], uint64(i)+1)
		tid[0] = 0xcd
		buf.Add(&api, &traces.Span{TraceID: tid, SpanID: spanIDOf(i, 1), Name: "GET /healthz", Kind: traces.KindServer,
			Start: clock.t.UnixNano(), End: clock.t.Add(time.Millisecond).UnixNano()}, clock.t)
	}
	clock.t = t0.Add(3 * time.Minute)
	if _, ok := buf.Trace(traces.TraceID(traceID(bystander.id))); ok {
		t.Error("an unpinned trace survived the flood and the age limit")
	}
	for _, q := range reqs {
		tr, ok := buf.Trace(traces.TraceID(traceID(q.id)))
		if !ok || len(tr.Spans) != 3 || !tr.Complete {
			t.Fatalf("pinned trace %d: found %v, %d spans, complete %v", q.id, ok, len(tr.Spans), tr.Complete)
		}
	}
	// The alert still fires with an empty window (no data keeps a firing
	// alert firing until no_data_timeout) and its annotations still name
	// the traces: each evaluation extends their pins past the first ones'.
	for at := 3 * time.Minute; at <= 15*time.Minute; at += 15 * time.Second {
		clock.t = t0.Add(at)
		e.Evaluate(context.Background(), clock.t)
	}
	for _, q := range reqs {
		if !buf.Pinned(traces.TraceID(traceID(q.id))) {
			t.Fatalf("trace %d is no longer pinned while its alert fires", q.id)
		}
	}
	if v, _ := firingAnnotation(t, e, "critical_path"); !strings.HasPrefix(v, "etcd ") {
		t.Errorf("critical_path = %q", v)
	}
	// Resolved (the rule is removed): PinFor later, the pins have lapsed.
	e.Load(nil)
	clock.t = clock.t.Add(10*time.Minute + 2*15*time.Second + time.Second)
	e.Evaluate(context.Background(), clock.t)
	for _, q := range reqs {
		if buf.Pinned(traces.TraceID(traceID(q.id))) {
			t.Errorf("trace %d is still pinned after PinFor", q.id)
		}
	}
}

// TestSlowWebhookOnEveryNode: an admission webhook slow for everyone pages
// with the webhook leading the critical path and no node named in
// slow_requests_by (issue 10's second "done when" case).
func TestSlowWebhookOnEveryNode(t *testing.T) {
	e, clock, buf := explainSetup(t, traces.Options{})
	clock.t = t0.Add(30 * time.Second)
	start := t0.Add(5 * time.Second)
	nodes := []string{"cp-1", "cp-2", "cp-3"}
	for i := range 60 {
		q := etcdRequest(i+1, start.Add(time.Duration(i)*300*time.Millisecond))
		q.leaf, q.leafOp = "policy-webhook", "POST /validate"
		if i%2 == 0 { // every other request on every node waits on the webhook
			q.root, q.client, q.etcd = [2]int{0, 2000}, [2]int{10, 1990}, [2]int{20, 1980}
		} else {
			q.root, q.client, q.etcd = [2]int{0, 60}, [2]int{10, 50}, [2]int{20, 40}
		}
		q.add(buf, q.start.Add(time.Second))
		e.Observe(&Observation{End: q.start.Add(time.Duration(q.root[1]) * time.Millisecond), Duration: time.Duration(q.root[1]-q.root[0]) * time.Millisecond,
			TraceID: traceID(q.id), SpanID: spanIDOf(q.id, 1), Labels: nodeSpan(nodes[(i/2)%3])})
	}
	e.Evaluate(context.Background(), clock.t)
	cp, ok := firingAnnotation(t, e, "critical_path")
	if !ok || !strings.HasPrefix(cp, "policy-webhook ") {
		t.Errorf("critical_path = %q (present %v), want it led by policy-webhook", cp, ok)
	}
	if by, ok := firingAnnotation(t, e, "slow_requests_by"); ok {
		t.Errorf("slow_requests_by = %q: every node is slow alike, none should be named", by)
	}
}
