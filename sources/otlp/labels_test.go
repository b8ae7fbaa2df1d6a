package otlp

import (
	"math/rand/v2"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/sources/otlp/otlpwire"
)

type spanShape struct {
	name     string
	kind     ptrace.SpanKind
	status   ptrace.StatusCode
	attrs    map[string]any
	resource map[string]any
}

// build returns a one-span Traces of the shape.
func (s spanShape) build(t testing.TB) (ptrace.Traces, ptrace.Span) {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	if err := rs.Resource().Attributes().FromRaw(s.resource); err != nil {
		t.Fatal(err)
	}
	span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName(s.name)
	span.SetKind(s.kind)
	span.Status().SetCode(s.status)
	if err := span.Attributes().FromRaw(s.attrs); err != nil {
		t.Fatal(err)
	}
	return td, span
}

// view points a fresh span view at the shape, as conversion does.
func (s spanShape) view(t testing.TB) (*spanLabels, bool) {
	td, _ := s.build(t)
	var dec otlpwire.Decoder
	if _, err := dec.Decode(marshalTraces(t, td, false), otlpwire.Limits{}); err != nil {
		t.Fatal(err)
	}
	span, _ := dec.Span(0)
	v := &spanLabels{resource: span.Resource}
	failed := v.reset(span, keptKeys(nil, span.Attributes))
	return v, failed
}

var apiserverResource = map[string]any{"service.name": "apiserver", "k8s.node.name": "cp-1"}

// absent marks a label that must not be present.
const absent = "\x00absent"

func TestSpanLabels(t *testing.T) {
	tests := []struct {
		name  string
		shape spanShape
		want  map[string]string
	}{
		{
			name: "apiserver SERVER span, old semconv, GET one namespace",
			shape: spanShape{
				name: "GET /api/v1/namespaces/{:name}", kind: ptrace.SpanKindServer,
				attrs: map[string]any{
					"http.method": "GET", "http.target": "/api/v1/namespaces/default",
					"http.status_code": 200, "http.user_agent": "kubectl/v1.30.2", "audit-id": "3f2c",
				},
				resource: apiserverResource,
			},
			want: map[string]string{
				"span.name": "GET /api/v1/namespaces/{:name}", "span.kind": "server", "status.code": "unset",
				"verb": "GET", "group": "", "version": "v1", "resource": "namespaces", "subresource": "",
				"scope": "resource", "namespace": "default",
				"http.status_code": "200", "http.user_agent": "kubectl/v1.30.2", "audit-id": "3f2c",
				"service.name": "apiserver", "k8s.node.name": "cp-1", "name": absent, "nope": absent,
			},
		},
		{
			name: "new semconv, LIST pods in a namespace with url.query",
			shape: spanShape{
				name: "GET", kind: ptrace.SpanKindServer, status: ptrace.StatusCodeOk,
				attrs: map[string]any{
					"http.request.method": "GET", "url.path": "/api/v1/namespaces/kube-system/pods",
					"url.query": "limit=500", "http.response.status_code": 200,
				},
				resource: apiserverResource,
			},
			want: map[string]string{
				"verb": "LIST", "resource": "pods", "scope": "namespace", "namespace": "kube-system",
				"version": "v1", "status.code": "ok", "http.response.status_code": "200",
			},
		},
		{
			name: "new semconv watch query makes WATCH",
			shape: spanShape{
				kind: ptrace.SpanKindServer,
				attrs: map[string]any{
					"http.request.method": "GET", "url.path": "/apis/apps/v1/deployments", "url.query": "watch=true",
				},
				resource: apiserverResource,
			},
			want: map[string]string{"verb": "WATCH", "group": "apps", "resource": "deployments", "scope": "cluster", "namespace": ""},
		},
		{
			name: "old semconv http.target carries the query",
			shape: spanShape{
				kind:     ptrace.SpanKindServer,
				attrs:    map[string]any{"http.method": "GET", "http.target": "/api/v1/namespaces/default/pods?watch=1&resourceVersion=10"},
				resource: apiserverResource,
			},
			want: map[string]string{"verb": "WATCH", "resource": "pods", "scope": "namespace", "namespace": "default"},
		},
		{
			name: "new names win over old ones when both are present",
			shape: spanShape{
				kind: ptrace.SpanKindServer,
				attrs: map[string]any{
					"http.method": "GET", "http.target": "/api/v1/nodes",
					"http.request.method": "DELETE", "url.path": "/api/v1/namespaces/default/pods/p1",
				},
				resource: apiserverResource,
			},
			want: map[string]string{"verb": "DELETE", "resource": "pods", "scope": "resource"},
		},
		{
			name: "server-side apply from the content-type header (string array, new semconv)",
			shape: spanShape{
				kind: ptrace.SpanKindServer,
				attrs: map[string]any{
					"http.request.method":              "PATCH",
					"url.path":                         "/apis/apps/v1/namespaces/prod/deployments/web",
					"http.request.header.content-type": []any{"application/apply-patch+yaml"},
				},
				resource: apiserverResource,
			},
			want: map[string]string{"verb": "APPLY", "group": "apps", "resource": "deployments", "scope": "resource", "namespace": "prod"},
		},
		{
			name: "create is resource-scoped, subresource status",
			shape: spanShape{
				kind:     ptrace.SpanKindServer,
				attrs:    map[string]any{"http.method": "PUT", "http.target": "/api/v1/namespaces/default/pods/p1/status"},
				resource: apiserverResource,
			},
			want: map[string]string{"verb": "PUT", "resource": "pods", "subresource": "status", "scope": "resource"},
		},
		{
			name: "derived request info wins over span attributes of the same name",
			shape: spanShape{
				kind:     ptrace.SpanKindServer,
				attrs:    map[string]any{"http.method": "POST", "http.target": "/api/v1/namespaces/default/events", "resource": "bogus"},
				resource: map[string]any{"service.name": "apiserver", "verb": "bogus"},
			},
			want: map[string]string{"verb": "POST", "resource": "events", "scope": "resource"},
		},
		{
			name: "apiserver INTERNAL span: its own verb/resource attributes, nothing derived",
			shape: spanShape{
				name: "Get", kind: ptrace.SpanKindInternal,
				attrs: map[string]any{
					"verb": "get", "resource": "namespaces", "scope": "resource", "url": "/api/v1/namespaces/default",
				},
				resource: apiserverResource,
			},
			want: map[string]string{
				"span.kind": "internal", "verb": "get", "resource": "namespaces", "scope": "resource",
				"group": absent, "namespace": absent, "url": "/api/v1/namespaces/default",
			},
		},
		{
			name: "apiserver CLIENT span to etcd: no request info",
			shape: spanShape{
				name: "etcdserverpb.KV/Range", kind: ptrace.SpanKindClient,
				attrs: map[string]any{
					"rpc.system": "grpc", "rpc.service": "etcdserverpb.KV", "rpc.method": "Range", "rpc.grpc.status_code": 0,
				},
				resource: apiserverResource,
			},
			want: map[string]string{
				"span.kind": "client", "span.name": "etcdserverpb.KV/Range", "rpc.grpc.status_code": "0",
				"verb": absent, "resource": absent, "service.name": "apiserver",
			},
		},
		{
			name: "etcd SERVER span without HTTP attributes: no request info",
			shape: spanShape{
				name: "etcdserverpb.KV/Range", kind: ptrace.SpanKindServer,
				attrs:    map[string]any{"rpc.system": "grpc", "rpc.method": "Range"},
				resource: map[string]any{"service.name": "etcd"},
			},
			want: map[string]string{"span.kind": "server", "verb": absent, "scope": absent, "service.name": "etcd"},
		},
		{
			name: "HTTP CLIENT span: no request info even with method and path",
			shape: spanShape{
				kind:  ptrace.SpanKindClient,
				attrs: map[string]any{"http.method": "GET", "http.target": "/api/v1/pods"},
			},
			want: map[string]string{"verb": absent, "http.method": "GET"},
		},
		{
			name: "non-resource request: verb only",
			shape: spanShape{
				kind:     ptrace.SpanKindServer,
				attrs:    map[string]any{"http.method": "get", "http.target": "/healthz"},
				resource: apiserverResource,
			},
			want: map[string]string{"verb": "GET", "resource": "", "scope": ""},
		},
		{
			name: "span attributes win over resource attributes; special names over both",
			shape: spanShape{
				name: "real", kind: ptrace.SpanKindProducer, status: ptrace.StatusCodeError,
				attrs:    map[string]any{"service.name": "from-span", "span.name": "attr", "status.code": "attr"},
				resource: map[string]any{"service.name": "from-resource", "zone": "eu-1a"},
			},
			want: map[string]string{
				"service.name": "from-span", "span.name": "real", "status.code": "error",
				"span.kind": "producer", "zone": "eu-1a",
			},
		},
		{
			name: "non-string values in string form",
			shape: spanShape{
				kind: ptrace.SpanKindConsumer,
				attrs: map[string]any{
					"small": 7, "port": 6443, "neg": -3, "yes": true, "no": false, "ratio": 1.5,
					"list": []any{"a", 1}, "empty": nil,
				},
			},
			want: map[string]string{
				"span.kind": "consumer", "small": "7", "port": "6443", "neg": "-3", "yes": "true", "no": "false",
				"ratio": "1.5", "list": `["a",1]`, "empty": "",
			},
		},
		{
			name:  "unspecified kind",
			shape: spanShape{kind: ptrace.SpanKindUnspecified},
			want:  map[string]string{"span.kind": "unspecified", "status.code": "unset", "span.name": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := tt.shape.view(t)
			for name, want := range tt.want {
				got, ok := v.Get(name)
				if want == absent {
					if ok {
						t.Errorf("Get(%q) = %q, want absent", name, got)
					}
					continue
				}
				if !ok || got != want {
					t.Errorf("Get(%q) = %q, %v; want %q, true", name, got, ok, want)
				}
			}
		})
	}
}

func TestFailed(t *testing.T) {
	tests := []struct {
		name  string
		shape spanShape
		want  bool
	}{
		{"ok server", spanShape{kind: ptrace.SpanKindServer, attrs: map[string]any{"http.status_code": 200}}, false},
		{"status error", spanShape{kind: ptrace.SpanKindInternal, status: ptrace.StatusCodeError}, true},
		{"status ok", spanShape{kind: ptrace.SpanKindServer, status: ptrace.StatusCodeOk}, false},
		{"old http 503", spanShape{kind: ptrace.SpanKindServer, attrs: map[string]any{"http.status_code": 503}}, true},
		{"new http 500 as string", spanShape{kind: ptrace.SpanKindServer, attrs: map[string]any{"http.response.status_code": "500"}}, true},
		{"http 404 is not a failure", spanShape{kind: ptrace.SpanKindServer, attrs: map[string]any{"http.status_code": 404}}, false},
		{"http 429 is not a failure", spanShape{kind: ptrace.SpanKindServer, attrs: map[string]any{"http.response.status_code": 429}}, false},
		{"client http 502", spanShape{kind: ptrace.SpanKindClient, attrs: map[string]any{"http.status_code": 502}}, true},
		{"grpc unavailable on client", spanShape{kind: ptrace.SpanKindClient, attrs: map[string]any{"rpc.grpc.status_code": 14}}, true},
		{"grpc deadline on server", spanShape{kind: ptrace.SpanKindServer, attrs: map[string]any{"rpc.grpc.status_code": 4}}, true},
		{"grpc ok on client", spanShape{kind: ptrace.SpanKindClient, attrs: map[string]any{"rpc.grpc.status_code": 0}}, false},
		{"grpc code on internal span is not a failure", spanShape{kind: ptrace.SpanKindInternal, attrs: map[string]any{"rpc.grpc.status_code": 14}}, false},
		{"garbage status code string", spanShape{kind: ptrace.SpanKindServer, attrs: map[string]any{"http.status_code": "5xx"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := tt.shape.view(t); got != tt.want {
				t.Errorf("failed = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConvertTimesAndIDs(t *testing.T) {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tid := pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sid := pcommon.SpanID{8, 7, 6, 5, 4, 3, 2, 1}
	tests := []struct {
		name       string
		start, end pcommon.Timestamp
		wantOK     bool
		wantDur    time.Duration
	}{
		{"normal", pcommon.NewTimestampFromTime(start), pcommon.NewTimestampFromTime(start.Add(1375 * time.Millisecond)), true, 1375 * time.Millisecond},
		{"zero duration", pcommon.NewTimestampFromTime(start), pcommon.NewTimestampFromTime(start), true, 0},
		{"no start time", 0, pcommon.NewTimestampFromTime(start), false, 0},
		{"end before start", pcommon.NewTimestampFromTime(start), pcommon.NewTimestampFromTime(start.Add(-time.Nanosecond)), false, 0},
		{"no end time", pcommon.NewTimestampFromTime(start), 0, false, 0},
		{"end past year 2262", 0, pcommon.Timestamp(1 << 63), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td, span := spanShape{kind: ptrace.SpanKindServer, status: ptrace.StatusCodeError}.build(t)
			span.SetTraceID(tid)
			span.SetSpanID(sid)
			span.SetStartTimestamp(tt.start)
			span.SetEndTimestamp(tt.end)
			o := &recordingObserver{names: []string{"span.kind"}}
			accepted, rejected := convertTraces(t, newConverter(DefaultLimits().MaxAttributeValueBytes, nil, nil), td, o)
			if !tt.wantOK {
				if accepted != 0 || rejected != 1 || len(o.all()) != 0 {
					t.Fatalf("accepted %d, rejected %d, observed %d; want the span rejected", accepted, rejected, len(o.all()))
				}
				return
			}
			got := o.all()
			if accepted != 1 || rejected != 0 || len(got) != 1 {
				t.Fatalf("accepted %d, rejected %d, observed %d; want 1, 0, 1", accepted, rejected, len(got))
			}
			obs := got[0].obs
			if obs.Duration != tt.wantDur {
				t.Errorf("duration %v, want %v", obs.Duration, tt.wantDur)
			}
			if !obs.End.Equal(tt.end.AsTime()) {
				t.Errorf("end %v, want %v", obs.End, tt.end.AsTime())
			}
			if obs.TraceID != [16]byte(tid) || obs.SpanID != [8]byte(sid) {
				t.Errorf("ids %x/%x, want %x/%x", obs.TraceID, obs.SpanID, tid, sid)
			}
			if !obs.Failed || obs.Source != engine.SourceSpans || obs.Count != 0 {
				t.Errorf("failed %v, source %v, count %d; want true, spans, 0", obs.Failed, obs.Source, obs.Count)
			}
			if got[0].labels["span.kind"] != "server" {
				t.Errorf("span.kind %q", got[0].labels["span.kind"])
			}
		})
	}
}

// The request info is computed once per span, on first use, and does not
// leak from one span to the next.
func TestRequestInfoPerSpan(t *testing.T) {
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for _, target := range []string{"/api/v1/namespaces/a/pods", "", "/apis/apps/v1/deployments"} {
		s := spans.AppendEmpty()
		s.SetKind(ptrace.SpanKindServer)
		s.SetStartTimestamp(1)
		s.SetEndTimestamp(2)
		if target != "" {
			s.Attributes().PutStr("http.method", "GET")
			s.Attributes().PutStr("http.target", target)
		}
	}
	o := &recordingObserver{names: []string{"resource", "group", "resource"}}
	convertTraces(t, newConverter(DefaultLimits().MaxAttributeValueBytes, nil, nil), td, o)
	got := o.all()
	want := []map[string]string{
		{"resource": "pods", "group": ""},
		{},
		{"resource": "deployments", "group": "apps"},
	}
	if len(got) != len(want) {
		t.Fatalf("observed %d spans, want %d", len(got), len(want))
	}
	for i := range want {
		if len(got[i].labels) != len(want[i]) {
			t.Errorf("span %d: labels %v, want %v", i, got[i].labels, want[i])
			continue
		}
		for k, v := range want[i] {
			if got[i].labels[k] != v {
				t.Errorf("span %d: %s=%q, want %q", i, k, got[i].labels[k], v)
			}
		}
	}
}

// TestConvertAllocs holds the hot path to its promise: converting decoded
// spans, with the observer reading labels, allocates nothing per span.
func TestConvertAllocs(t *testing.T) {
	td := apiserverTraces(rand.New(rand.NewPCG(1, 2)), 100)
	if td.SpanCount() != 100 {
		t.Fatalf("payload has %d spans", td.SpanCount())
	}
	o := &countingObserver{names: append(benchLabelNames, "namespace", "http.status_code", "rpc.grpc.status_code", "missing")}
	c := newConverter(DefaultLimits().MaxAttributeValueBytes, nil, nil)
	body := marshalTraces(t, td, false)
	lim := DefaultLimits().wire()
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.dec.Decode(body, lim); err != nil {
			t.Fatal(err)
		}
		if accepted, rejected := c.convert(o, time.Time{}); accepted != 100 || rejected != 0 {
			t.Fatalf("accepted %d, rejected %d", accepted, rejected)
		}
	})
	if allocs != 0 {
		t.Errorf("converting 100 spans allocates %v times, want 0", allocs)
	}
}

// Every attribute the span view reads is allowlisted (httpAttrs panics
// otherwise), each with its own place: reset tells them apart by place,
// not by name.
func TestViewKeysAllowlisted(t *testing.T) {
	places := 0
	for _, a := range httpAttrs {
		if a != attrOther {
			places++
		}
	}
	if places != 10 {
		t.Errorf("the span view reads %d allowlist places, want the 10 keys it knows", places)
	}
}
