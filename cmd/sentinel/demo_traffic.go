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

// The demo's control plane: three nodes, one per availability zone, each
// running an apiserver and its etcd member (kubeadm's stacked topology: an
// apiserver talks to the etcd on its own node), and an admission webhook
// on a worker.
var demoNodes = []demoNode{
	{"cp-1", "eu-west-1a"},
	{"cp-2", "eu-west-1b"},
	{"cp-3", "eu-west-1c"},
}

const (
	demoSlowNode   = "cp-2" // whose etcd serves reads slowly during the incident
	demoRegion     = "eu-west-1"
	demoWebhook    = "policy-webhook"
	demoWebhookSvc = "policy-webhook.kube-system.svc"
)

type demoNode struct{ name, zone string }

// trafficGenerator makes whole control-plane traces shaped like the real
// ones (see the fixtures' notes on kube-apiserver and etcd spans): the
// apiserver's SERVER span, its INTERNAL handler span, the CLIENT span of
// its etcd call with etcd's own SERVER span as the child, and on writes the
// admission webhook call (an INTERNAL span, the otelhttp CLIENT span, the
// webhook's SERVER span) and the storage layer's INTERNAL span.
//
// Each component exports on its own, as in a cluster: batch returns the
// apiserver's spans, for the apiserver's exporter to send now; etcd's and
// the webhook's SERVER spans wait in their own exporters until flush, a
// separate, later export (the OpenTelemetry SDK's batch processor sends
// every 5 s by default; the demo's exporters every demoLateExport).
type trafficGenerator struct {
	rng  *rand.Rand
	late map[string]ptrace.Traces // the other components' exporters: "etcd@cp-1", …, the webhook's
}

func newTrafficGenerator(seed uint64) *trafficGenerator {
	return &trafficGenerator{rng: rand.New(rand.NewPCG(seed, seed^0x5e17)), late: map[string]ptrace.Traces{}}
}

type request struct {
	method, target, route, handler string
	write                          bool
}

var demoRequests = []request{
	{"GET", "/api/v1/namespaces/%s", "GET /api/v1/namespaces/{:name}", "Get", false},
	{"GET", "/api/v1/namespaces", "GET /api/v1/namespaces", "List", false},
	{"GET", "/api/v1/namespaces/%s/pods", "GET /api/v1/namespaces/{:namespace}/pods", "List", false},
	{"GET", "/api/v1/namespaces/%s/pods/web-0", "GET /api/v1/namespaces/{:namespace}/pods/{:name}", "Get", false},
	{"GET", "/apis/apps/v1/namespaces/%s/deployments", "GET /apis/apps/v1/namespaces/{:namespace}/deployments", "List", false},
	{"PATCH", "/api/v1/namespaces/%s/configmaps/app", "PATCH /api/v1/namespaces/{:namespace}/configmaps/{:name}", "Patch", true},
	{"POST", "/api/v1/namespaces/%s/events", "POST /api/v1/namespaces/{:namespace}/events", "Create", true},
	{"PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1", "PUT /apis/coordination.k8s.io/v1/namespaces/{:namespace}/leases/{:name}", "Update", true},
}

var demoNamespaces = []string{"default", "kube-system", "payments", "checkout", "monitoring"}

// batch returns the apiserver spans of n requests ending around now, and
// queues the etcd and webhook spans of the same traces for flush. During
// an incident, etcd on demoSlowNode takes seconds to serve a Range, so
// every read through that node's apiserver is slow.
func (g *trafficGenerator) batch(now time.Time, n int, incident bool) ptrace.Traces {
	td := ptrace.NewTraces()
	apiservers := make([]ptrace.SpanSlice, len(demoNodes))
	for i, node := range demoNodes {
		rs := td.ResourceSpans().AppendEmpty()
		putResource(rs.Resource(), "apiserver", node.name, node.zone)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("k8s.io/apiserver/pkg/endpoints/filters")
		apiservers[i] = ss.Spans()
	}

	for range n {
		req := demoRequests[g.rng.IntN(len(demoRequests))]
		target := req.target
		if strings.Contains(target, "%s") {
			target = fmt.Sprintf(target, demoNamespaces[g.rng.IntN(len(demoNamespaces))])
		}
		ni := g.rng.IntN(len(demoNodes))
		node := demoNodes[ni]
		etcdMethod := "Range"
		if req.write {
			etcdMethod = "Txn"
		}
		etcdTime := g.ms(1, 4)
		if incident && !req.write && node.name == demoSlowNode {
			etcdTime = time.Duration(1200+g.rng.IntN(1800)) * time.Millisecond
		}
		network := g.ms(0.2, 0.3) // between the apiserver's etcd client and etcd's server
		var webhookTime time.Duration
		if req.write {
			webhookTime = g.ms(2, 3)
		}
		before, after := g.ms(1, 5), g.ms(0.5, 2) // the handler's own work around its calls
		end := now.Add(-time.Duration(g.rng.IntN(200)) * time.Millisecond)
		start := end.Add(-(before + webhookTime + etcdTime + network + after))

		traceID := g.traceID()
		spans := apiservers[ni]
		server := spans.AppendEmpty()
		g.span(server, traceID, pcommon.SpanID{}, req.route, ptrace.SpanKindServer, start, end)
		a := server.Attributes()
		a.PutStr("http.method", req.method)
		a.PutStr("http.target", target)
		a.PutInt("http.status_code", 200)
		a.PutStr("http.scheme", "https")
		a.PutStr("http.user_agent", "kubectl/v1.30.2 (linux/amd64) kubernetes/39683505")
		a.PutStr("net.peer.ip", "10.0.0.5")

		handler := spans.AppendEmpty()
		hs := start.Add(before / 2)
		g.span(handler, traceID, server.SpanID(), req.handler, ptrace.SpanKindInternal, hs, end.Add(-after/2))
		handler.Attributes().PutStr("verb", strings.ToLower(req.method))
		handler.Attributes().PutStr("url", target)
		handler.Attributes().PutStr("protocol", "HTTP/2.0")

		at := start.Add(before)
		storageParent := handler
		if req.write {
			g.webhookCall(spans, traceID, handler.SpanID(), at, webhookTime)
			at = at.Add(webhookTime)
			storage := spans.AppendEmpty()
			name := map[string]string{"Create": "Create etcd3"}[req.handler]
			if name == "" {
				name = "GuaranteedUpdate etcd3"
			}
			g.span(storage, traceID, handler.SpanID(), name, ptrace.SpanKindInternal, at, at.Add(etcdTime+network))
			storage.Attributes().PutStr("key", target)
			storageParent = storage
		}

		client := spans.AppendEmpty()
		g.span(client, traceID, storageParent.SpanID(), "etcdserverpb.KV/"+etcdMethod, ptrace.SpanKindClient, at, at.Add(etcdTime+network))
		client.Attributes().PutStr("rpc.system", "grpc")
		client.Attributes().PutStr("rpc.service", "etcdserverpb.KV")
		client.Attributes().PutStr("rpc.method", etcdMethod)
		client.Attributes().PutInt("rpc.grpc.status_code", 0)

		// etcd's own SERVER span, in etcd's next export.
		es := g.lateSpans("etcd", node).AppendEmpty()
		g.span(es, traceID, client.SpanID(), "etcdserverpb.KV/"+etcdMethod, ptrace.SpanKindServer,
			at.Add(network/2), at.Add(network/2+etcdTime))
		es.Attributes().PutStr("rpc.system", "grpc")
		es.Attributes().PutStr("rpc.service", "etcdserverpb.KV")
		es.Attributes().PutStr("rpc.method", etcdMethod)
	}
	return td
}

// webhookCall adds a validating admission webhook call at start: the
// apiserver's INTERNAL span and its otelhttp CLIENT span now, the
// webhook's own SERVER span in the webhook's next export.
func (g *trafficGenerator) webhookCall(spans ptrace.SpanSlice, traceID pcommon.TraceID, parent pcommon.SpanID, start time.Time, d time.Duration) {
	call := spans.AppendEmpty()
	g.span(call, traceID, parent, "Call validating webhook", ptrace.SpanKindInternal, start, start.Add(d))
	call.Attributes().PutStr("configuration", "policy.example.com")
	call.Attributes().PutStr("webhook", "validate.policy.example.com")
	client := spans.AppendEmpty()
	g.span(client, traceID, call.SpanID(), "HTTP POST", ptrace.SpanKindClient, start.Add(d/20), start.Add(d-d/20))
	client.Attributes().PutStr("http.method", "POST")
	client.Attributes().PutStr("server.address", demoWebhookSvc)
	client.Attributes().PutStr("net.peer.name", demoWebhookSvc)
	client.Attributes().PutInt("http.status_code", 200)
	hook := g.lateSpans(demoWebhook, demoNode{"worker-1", "eu-west-1a"}).AppendEmpty()
	g.span(hook, traceID, client.SpanID(), "POST /validate", ptrace.SpanKindServer, start.Add(d/10), start.Add(d-d/10))
	hook.Attributes().PutStr("http.method", "POST")
	hook.Attributes().PutStr("http.target", "/validate")
	hook.Attributes().PutInt("http.status_code", 200)
}

// lateSpans is where a component's exporter on node keeps spans until
// flush.
func (g *trafficGenerator) lateSpans(service string, node demoNode) ptrace.SpanSlice {
	key := service + "@" + node.name
	td, ok := g.late[key]
	if !ok {
		td = ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		putResource(rs.Resource(), service, node.name, node.zone)
		rs.ScopeSpans().AppendEmpty().Scope().SetName("go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc")
		g.late[key] = td
	}
	return td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
}

// flush returns what the other components' exporters hold, one export
// request each, and empties them.
func (g *trafficGenerator) flush() []ptrace.Traces {
	var out []ptrace.Traces
	for key, td := range g.late {
		if td.SpanCount() > 0 {
			out = append(out, td)
		}
		delete(g.late, key)
	}
	return out
}

func putResource(r pcommon.Resource, service, node, zone string) {
	a := r.Attributes()
	a.PutStr("service.name", service)
	a.PutStr("k8s.node.name", node)
	a.PutStr("cloud.availability_zone", zone)
	a.PutStr("cloud.region", demoRegion)
}

// ms is a duration of at least least plus an exponential tail of the given
// mean, in milliseconds.
func (g *trafficGenerator) ms(least, mean float64) time.Duration {
	return time.Duration((least + g.rng.ExpFloat64()*mean) * float64(time.Millisecond))
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
