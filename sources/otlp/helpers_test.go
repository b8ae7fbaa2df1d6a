package otlp

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kube-sentinel/sentinel/engine"
)

// apiserverRequest is one request shape of the synthetic payload.
type apiserverRequest struct {
	method, target, name string
	internal             string // name of the apiserver's INTERNAL span
	etcd                 string // etcd method
}

var apiserverRequests = []apiserverRequest{
	{"GET", "/api/v1/namespaces/default", "GET /api/v1/namespaces/{:name}", "Get", "Range"},
	{"GET", "/api/v1/namespaces/kube-system/pods?limit=500", "GET /api/v1/namespaces/{:namespace}/pods", "List", "Range"},
	{"GET", "/apis/apps/v1/namespaces/prod/deployments/web", "GET /apis/apps/v1/namespaces/{:namespace}/deployments/{:name}", "Get", "Range"},
	{"PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1", "PUT /apis/coordination.k8s.io/v1/namespaces/{:namespace}/leases/{:name}", "GuaranteedUpdate etcd3", "Txn"},
	{"POST", "/api/v1/namespaces/default/events", "POST /api/v1/namespaces/{:namespace}/events", "Create etcd3", "Txn"},
	{"GET", "/api/v1/nodes", "GET /api/v1/nodes", "cacher list", "Range"},
}

// apiserverTraces builds an OTLP payload shaped like kube-apiserver and
// etcd exports (see shared/fixtures/README.md): per request, an apiserver
// SERVER span, its INTERNAL child, an etcd CLIENT span, and etcd's SERVER
// span under a second resource. n is the number of spans, rounded down to
// a multiple of 4.
func apiserverTraces(rng *rand.Rand, n int) ptrace.Traces {
	td := ptrace.NewTraces()
	api := td.ResourceSpans().AppendEmpty()
	api.Resource().Attributes().PutStr("service.name", "apiserver")
	api.Resource().Attributes().PutStr("k8s.node.name", "control-plane-1")
	api.Resource().Attributes().PutStr("host.name", "control-plane-1")
	apiSpans := api.ScopeSpans().AppendEmpty()
	apiSpans.Scope().SetName("k8s.io/apiserver")
	etcd := td.ResourceSpans().AppendEmpty()
	etcd.Resource().Attributes().PutStr("service.name", "etcd")
	etcd.Resource().Attributes().PutStr("host.name", "control-plane-1")
	etcdSpans := etcd.ScopeSpans().AppendEmpty()
	etcdSpans.Scope().SetName("go.etcd.io/etcd")

	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < n/4; i++ {
		req := apiserverRequests[rng.IntN(len(apiserverRequests))]
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[:8], rng.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rng.Uint64())
		audit := fmt.Sprintf("%016x-%04x", rng.Uint64(), i)
		start := base.Add(time.Duration(i) * time.Millisecond)
		total := time.Duration(5+rng.IntN(400)) * time.Millisecond
		status := int64(200)
		if req.method == "POST" {
			status = 201
		}
		if rng.IntN(100) == 0 {
			status = 503
		}

		server := apiSpans.Spans().AppendEmpty()
		setSpan(server, tid, rng, pcommon.SpanID{}, req.name, ptrace.SpanKindServer, start, total)
		a := server.Attributes()
		a.PutStr("http.method", req.method)
		a.PutStr("http.target", req.target)
		a.PutInt("http.status_code", status)
		a.PutStr("http.user_agent", "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350")
		a.PutStr("http.scheme", "https")
		a.PutStr("net.peer.ip", "10.0.0.5")
		a.PutStr("audit-id", audit)

		internal := apiSpans.Spans().AppendEmpty()
		setSpan(internal, tid, rng, server.SpanID(), req.internal, ptrace.SpanKindInternal, start.Add(time.Millisecond), total-2*time.Millisecond)
		a = internal.Attributes()
		a.PutStr("verb", "get")
		a.PutStr("resource", "namespaces")
		a.PutStr("scope", "resource")
		a.PutStr("url", req.target)
		a.PutStr("user-agent", "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350")
		a.PutStr("client", "10.0.0.5")
		a.PutStr("protocol", "HTTP/2.0")
		a.PutStr("accept", "application/json")
		a.PutStr("audit-id", audit)

		client := apiSpans.Spans().AppendEmpty()
		etcdDur := total / 2
		setSpan(client, tid, rng, internal.SpanID(), "etcdserverpb.KV/"+req.etcd, ptrace.SpanKindClient, start.Add(2*time.Millisecond), etcdDur)
		a = client.Attributes()
		a.PutStr("rpc.system", "grpc")
		a.PutStr("rpc.service", "etcdserverpb.KV")
		a.PutStr("rpc.method", req.etcd)
		a.PutInt("rpc.grpc.status_code", 0)

		es := etcdSpans.Spans().AppendEmpty()
		setSpan(es, tid, rng, client.SpanID(), "etcdserverpb.KV/"+req.etcd, ptrace.SpanKindServer, start.Add(2*time.Millisecond+100*time.Microsecond), etcdDur-200*time.Microsecond)
		a = es.Attributes()
		a.PutStr("rpc.system", "grpc")
		a.PutStr("rpc.service", "etcdserverpb.KV")
		a.PutStr("rpc.method", req.etcd)
		a.PutInt("rpc.grpc.status_code", 0)
	}
	return td
}

func setSpan(s ptrace.Span, tid pcommon.TraceID, rng *rand.Rand, parent pcommon.SpanID, name string, kind ptrace.SpanKind, start time.Time, d time.Duration) {
	var sid pcommon.SpanID
	binary.BigEndian.PutUint64(sid[:], rng.Uint64()|1)
	s.SetTraceID(tid)
	s.SetSpanID(sid)
	s.SetParentSpanID(parent)
	s.SetName(name)
	s.SetKind(kind)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(d)))
}

func marshalTraces(t testing.TB, td ptrace.Traces, json bool) []byte {
	t.Helper()
	req := ptraceotlp.NewExportRequestFromTraces(td)
	var b []byte
	var err error
	if json {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// benchLabelNames are what an engine with a few apiserver and etcd rules
// would ask of every span: the rule index's selectors and group_by names.
var benchLabelNames = []string{"service.name", "span.kind", "resource", "verb", "scope", "k8s.node.name"}

// countingObserver counts observations and reads a few labels of each,
// as the engine's rule index would, without keeping anything.
type countingObserver struct {
	n     atomic.Int64
	names []string
	sink  int
}

func (o *countingObserver) Observe(obs *engine.Observation) {
	o.n.Add(1)
	for _, name := range o.names {
		v, _ := obs.Labels.Get(name)
		o.sink += len(v)
	}
}

// seen is a copy of an observation and of the labels a test asked for.
type seen struct {
	obs    engine.Observation
	labels map[string]string
}

// recordingObserver keeps copies of what it sees, for assertions.
type recordingObserver struct {
	names []string

	mu   sync.Mutex
	seen []seen
}

func (o *recordingObserver) Observe(obs *engine.Observation) {
	s := seen{obs: *obs, labels: map[string]string{}}
	s.obs.Labels = nil
	for _, name := range o.names {
		if v, ok := obs.Labels.Get(name); ok {
			s.labels[name] = strings.Clone(v) // the source reuses its buffers after Observe
		}
	}
	o.mu.Lock()
	o.seen = append(o.seen, s)
	o.mu.Unlock()
}

func (o *recordingObserver) all() []seen {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]seen(nil), o.seen...)
}

// convertTraces runs td through the receivers' path: protobuf bytes, the
// wire decoder, conversion.
func convertTraces(t testing.TB, c *converter, td ptrace.Traces, o engine.Observer) (accepted, rejected int) {
	t.Helper()
	if _, err := c.dec.Decode(marshalTraces(t, td, false), DefaultLimits().wire()); err != nil {
		t.Fatal(err)
	}
	return c.convert(o, time.Now())
}
