package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// trafficGenerator makes kube-apiserver + etcd spans shaped like the real
// ones (see shared/fixtures/README.md): an apiserver SERVER span with the
// request's path and method, an INTERNAL handler span, an etcd CLIENT span,
// and etcd's own SERVER span, all in one trace.
type trafficGenerator struct {
	rng   *rand.Rand
	nodes []string // control-plane nodes; the incident hits one of them
}

func newTrafficGenerator(seed uint64) *trafficGenerator {
	return &trafficGenerator{rng: rand.New(rand.NewPCG(seed, seed^0x5e17)),
		nodes: []string{"control-plane-a", "control-plane-b", "control-plane-c"}}
}

type request struct {
	method, target, route, handler, etcdMethod string
	namespaces                                 bool // on the namespaces resource: what the incident slows down
}

var demoRequests = []request{
	{"GET", "/api/v1/namespaces/%s", "GET /api/v1/namespaces/{:name}", "Get", "Range", true},
	{"GET", "/api/v1/namespaces", "GET /api/v1/namespaces", "List", "Range", true},
	{"GET", "/api/v1/namespaces/%s/pods", "GET /api/v1/namespaces/{:namespace}/pods", "List", "Range", false},
	{"GET", "/api/v1/namespaces/%s/pods/web-0", "GET /api/v1/namespaces/{:namespace}/pods/{:name}", "Get", "Range", false},
	{"GET", "/apis/apps/v1/namespaces/%s/deployments", "GET /apis/apps/v1/namespaces/{:namespace}/deployments", "List", "Range", false},
	{"PATCH", "/api/v1/namespaces/%s/configmaps/app", "PATCH /api/v1/namespaces/{:namespace}/configmaps/{:name}", "Patch", "Txn", false},
	{"POST", "/api/v1/namespaces/%s/events", "POST /api/v1/namespaces/{:namespace}/events", "Create", "Txn", false},
	{"PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1", "PUT /apis/coordination.k8s.io/v1/namespaces/{:namespace}/leases/{:name}", "Update", "Txn", false},
}

var demoNamespaces = []string{"default", "kube-system", "payments", "checkout", "monitoring"}

// batch returns n requests ending around now. During an incident, requests
// on namespaces that land on the slow node wait on etcd for seconds.
func (g *trafficGenerator) batch(now time.Time, n int, incident bool) ptrace.Traces {
	td := ptrace.NewTraces()
	api := td.ResourceSpans().AppendEmpty()
	api.Resource().Attributes().PutStr("service.name", "apiserver")
	apiSpans := api.ScopeSpans().AppendEmpty()
	apiSpans.Scope().SetName("k8s.io/apiserver/pkg/endpoints/filters")
	etcd := td.ResourceSpans().AppendEmpty()
	etcd.Resource().Attributes().PutStr("service.name", "etcd")
	etcdSpans := etcd.ScopeSpans().AppendEmpty()
	etcdSpans.Scope().SetName("go.etcd.io/etcd/server/v3")

	for i := 0; i < n; i++ {
		req := demoRequests[g.rng.IntN(len(demoRequests))]
		ns := demoNamespaces[g.rng.IntN(len(demoNamespaces))]
		target := req.target
		if strings.Contains(target, "%s") {
			target = fmt.Sprintf(target, ns)
		}
		node := g.nodes[g.rng.IntN(len(g.nodes))]
		etcdTime := time.Duration(1+g.rng.ExpFloat64()*4) * time.Millisecond
		if incident && req.namespaces && node == g.nodes[0] {
			etcdTime = time.Duration(1200+g.rng.IntN(1800)) * time.Millisecond
		}
		overhead := time.Duration(2+g.rng.ExpFloat64()*10) * time.Millisecond
		end := now.Add(-time.Duration(g.rng.IntN(200)) * time.Millisecond)
		start := end.Add(-etcdTime - overhead)

		traceID := g.traceID()
		server := apiSpans.Spans().AppendEmpty()
		g.span(server, traceID, pcommon.SpanID{}, req.route, ptrace.SpanKindServer, start, end)
		a := server.Attributes()
		a.PutStr("http.method", req.method)
		a.PutStr("http.target", target)
		a.PutInt("http.status_code", 200)
		a.PutStr("http.scheme", "https")
		a.PutStr("http.user_agent", "kubectl/v1.30.2 (linux/amd64) kubernetes/39683505")
		a.PutStr("net.peer.ip", "10.0.0.5")
		a.PutStr("k8s.node.name", node) // where this apiserver runs

		handler := apiSpans.Spans().AppendEmpty()
		g.span(handler, traceID, server.SpanID(), req.handler, ptrace.SpanKindInternal, start.Add(overhead/2), end.Add(-overhead/4))
		handler.Attributes().PutStr("verb", strings.ToLower(req.method))
		handler.Attributes().PutStr("url", target)

		client := apiSpans.Spans().AppendEmpty()
		cs := start.Add(overhead / 2)
		g.span(client, traceID, handler.SpanID(), "etcdserverpb.KV/"+req.etcdMethod, ptrace.SpanKindClient, cs, cs.Add(etcdTime))
		client.Attributes().PutStr("rpc.system", "grpc")
		client.Attributes().PutStr("rpc.service", "etcdserverpb.KV")
		client.Attributes().PutStr("rpc.method", req.etcdMethod)
		client.Attributes().PutInt("rpc.grpc.status_code", 0)

		es := etcdSpans.Spans().AppendEmpty()
		g.span(es, traceID, client.SpanID(), "etcdserverpb.KV/"+req.etcdMethod, ptrace.SpanKindServer,
			cs.Add(200*time.Microsecond), cs.Add(etcdTime-200*time.Microsecond))
		es.Attributes().PutStr("rpc.system", "grpc")
		es.Attributes().PutStr("rpc.method", req.etcdMethod)
	}
	return td
}

func (g *trafficGenerator) span(s ptrace.Span, trace pcommon.TraceID, parent pcommon.SpanID, name string, kind ptrace.SpanKind, start, end time.Time) {
	s.SetTraceID(trace)
	s.SetSpanID(g.spanID())
	s.SetParentSpanID(parent)
	s.SetName(name)
	s.SetKind(kind)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
}

func (g *trafficGenerator) traceID() pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[:8], g.rng.Uint64())
	binary.BigEndian.PutUint64(id[8:], g.rng.Uint64())
	return id
}

func (g *trafficGenerator) spanID() pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], g.rng.Uint64()|1)
	return id
}
