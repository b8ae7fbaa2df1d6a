package web

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-sentinel/sentinel/internal/golden"
	"github.com/kube-sentinel/sentinel/internal/testkit"
	"github.com/kube-sentinel/sentinel/traces"
)

var traceEpoch = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// at is a time of the test's traces, in milliseconds after traceEpoch.
func at(msec int64) int64 { return traceEpoch.Add(time.Duration(msec) * time.Millisecond).UnixNano() }

func tid(b byte) traces.TraceID {
	var id traces.TraceID
	id[0], id[15] = 0xab, b
	return id
}

func sid(b byte) traces.SpanID {
	var id traces.SpanID
	if b != 0 {
		id[0], id[7] = 0xcd, b
	}
	return id
}

// handSpan is a hand-built span of a resource.
type handSpan struct {
	service, node string
	id, parent    byte
	name          string
	kind          traces.Kind
	status        traces.Status
	start, end    int64 // ms
	attrs         []traces.Attribute
}

// slowEtcdTrace is a namespaces GET whose time went to etcd on cp-2: the
// apiserver's SERVER span, its handler, its CLIENT call to etcd, and
// etcd's own SERVER span, exported separately.
var slowEtcdTrace = []handSpan{
	{"apiserver", "cp-1", 1, 0, "GET /api/v1/namespaces/{:name}", traces.KindServer, traces.StatusUnset, 0, 1200,
		[]traces.Attribute{{Key: "http.method", Value: "GET"}, {Key: "http.target", Value: "/api/v1/namespaces/default"}, {Key: "http.status_code", Int: 200, IsInt: true}}},
	{"apiserver", "cp-1", 2, 1, "authorization", traces.KindInternal, traces.StatusUnset, 2, 12, nil},
	{"apiserver", "cp-1", 3, 1, "etcdserverpb.KV/Range", traces.KindClient, traces.StatusUnset, 15, 1190,
		[]traces.Attribute{{Key: "rpc.system", Value: "grpc"}}},
	{"etcd", "cp-2", 4, 3, "etcdserverpb.KV/Range", traces.KindServer, traces.StatusOK, 20, 1180,
		[]traces.Attribute{{Key: "rpc.grpc.status_code", Int: 0, IsInt: true}}},
	{"apiserver", "cp-1", 5, 1, "audit", traces.KindInternal, traces.StatusUnset, 20, 30, nil},
}

// partialTrace is one whose root and etcd's parent have not arrived.
var partialTrace = []handSpan{
	{"etcd", "cp-3", 9, 8, "etcdserverpb.KV/Txn", traces.KindServer, traces.StatusError, 30, 400, nil},
	{"admission-webhook", "", 7, 6, "POST /validate", traces.KindServer, traces.StatusUnset, 10, 25, nil},
}

type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time { return c.now }

// newTraceBuffer returns a buffer holding the given traces, received at
// traceEpoch, and the clock of what it still returns.
func newTraceBuffer(t *testing.T, ts map[traces.TraceID][]handSpan) (*traces.Buffer, *testClock) {
	t.Helper()
	c := &testClock{now: traceEpoch.Add(2 * time.Second)}
	b, err := traces.New(traces.Options{MaxBytes: traces.MinMaxBytes, MaxAge: time.Minute, Now: c.Now, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	var res traces.Resource
	for id, spans := range ts {
		for _, s := range spans {
			attrs := []traces.Attribute{{Key: "service.name", Value: s.service}}
			if s.node != "" {
				attrs = append(attrs, traces.Attribute{Key: "k8s.node.name", Value: s.node})
			}
			res.Set(s.service, attrs)
			b.Add(&res, &traces.Span{TraceID: id, SpanID: sid(s.id), ParentSpanID: sid(s.parent), Name: s.name,
				Kind: s.kind, Status: s.status, Start: at(s.start), End: at(s.end), Attributes: s.attrs}, traceEpoch.Add(time.Second))
		}
	}
	return b, c
}

func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

var criticalRowRe = regexp.MustCompile(`<tr class="span critical" data-span-id="([0-9a-f]+)"`)

func TestTraceView(t *testing.T) {
	complete, partial, expired := tid(1), tid(2), tid(3)
	buf, _ := newTraceBuffer(t, map[traces.TraceID][]handSpan{complete: slowEtcdTrace, partial: partialTrace})
	base := serve(t, Options{Rules: &fakeRules{}, Traces: buf, Version: "test"})
	cases := []struct {
		name   string
		path   string
		code   int
		golden string   // testdata file of the body
		has    []string // in the body
		lacks  []string
	}{
		{name: "the assembled trace as JSON", path: "/api/v1/traces/" + complete.String(), code: 200, golden: "trace_complete.json"},
		{name: "an incomplete trace as JSON", path: "/api/v1/traces/" + partial.String(), code: 200, golden: "trace_incomplete.json"},
		{name: "upper-case hex is the same trace", path: "/api/v1/traces/" + strings.ToUpper(complete.String()), code: 200,
			has: []string{`"traceID":"` + complete.String() + `"`}},
		{name: "an unknown trace", path: "/api/v1/traces/" + expired.String(), code: 404,
			has: []string{`{"status":"error","errorType":"not_found","error":"trace ` + expired.String() + ` not found`}},
		{name: "a short ID", path: "/api/v1/traces/abcdef", code: 400, has: []string{`"errorType":"bad_data"`}},
		{name: "not hex", path: "/api/v1/traces/" + strings.Repeat("zz", 16), code: 400, has: []string{`"errorType":"bad_data"`}},
		{name: "all zeros", path: "/api/v1/traces/" + strings.Repeat("0", 32), code: 400, has: []string{`"errorType":"bad_data"`}},
		{name: "too long", path: "/api/v1/traces/" + strings.Repeat("a", 200), code: 400, has: []string{"want 32 hex digits"}, lacks: []string{strings.Repeat("a", 65)}},
		{name: "the waterfall", path: "/trace/" + complete.String(), code: 200,
			has: []string{`data-complete="true"`, `<span class="complete-badge">complete</span>`,
				`critical path: <b>etcd 97%, apiserver 3%</b>`,
				`<td class="node" title="cp-2">cp-2</td>`, `<dt>http.target</dt><dd>/api/v1/namespaces/default</dd>`, `<details>`},
			lacks: []string{`id="incomplete"`, "<script"}},
		{name: "an incomplete waterfall", path: "/trace/" + partial.String(), code: 200,
			has: []string{`data-complete="false"`, `<span class="incomplete-badge">incomplete</span>`, `id="incomplete"`,
				"the root span has not arrived", "2 span(s) whose parent has not arrived"}},
		{name: "the waterfall of an unknown trace", path: "/trace/" + expired.String(), code: 404, has: []string{"not found"}},
		{name: "the waterfall of a malformed ID", path: "/trace/nope", code: 400, has: []string{"invalid trace ID"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, ctype, body := get(t, base+tc.path)
			if code != tc.code {
				t.Fatalf("%d, want %d: %s", code, tc.code, body)
			}
			wantType := "text/html"
			if strings.HasPrefix(tc.path, "/api/") {
				wantType = "application/json"
			} else if code != 200 {
				wantType = "text/plain"
			}
			if !strings.HasPrefix(ctype, wantType) {
				t.Errorf("Content-Type %q, want %s", ctype, wantType)
			}
			if tc.golden != "" {
				var pretty strings.Builder
				var v any
				if err := json.Unmarshal([]byte(body), &v); err != nil {
					t.Fatal(err)
				}
				enc := json.NewEncoder(&pretty)
				enc.SetIndent("", "  ")
				enc.Encode(v)
				golden.Check(t, "testdata/"+tc.golden, pretty.String())
			}
			for _, s := range tc.has {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q:\n%s", s, body)
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(body, s) {
					t.Errorf("body has %q", s)
				}
			}
		})
	}

	// The waterfall marks the critical path the JSON reports, and only it.
	_, _, body := get(t, base+"/api/v1/traces/"+complete.String())
	var api struct{ Data TraceData }
	if err := json.Unmarshal([]byte(body), &api); err != nil {
		t.Fatal(err)
	}
	var onPath []string
	for _, s := range api.Data.Spans {
		if s.CriticalPath {
			onPath = append(onPath, s.SpanID)
		}
	}
	_, _, page := get(t, base+"/trace/"+complete.String())
	var marked []string
	for _, m := range criticalRowRe.FindAllStringSubmatch(page, -1) {
		marked = append(marked, m[1])
	}
	// The path: the root, authorization, its CLIENT call and etcd's
	// SERVER span, not the audit span that ran beside them.
	want := []string{sid(1).String(), sid(2).String(), sid(3).String(), sid(4).String()}
	if strings.Join(onPath, ",") != strings.Join(want, ",") || strings.Join(marked, ",") != strings.Join(want, ",") {
		t.Errorf("critical path: JSON %v, page %v, want %v", onPath, marked, want)
	}
}

// TestTraceExpires: a trace no longer held is 404, not an empty one.
func TestTraceExpires(t *testing.T) {
	id := tid(1)
	buf, clock := newTraceBuffer(t, map[traces.TraceID][]handSpan{id: slowEtcdTrace})
	base := serve(t, Options{Rules: &fakeRules{}, Traces: buf})
	if code, _, body := get(t, base+"/api/v1/traces/"+id.String()); code != 200 {
		t.Fatalf("before expiry: %d %s", code, body)
	}
	clock.now = clock.now.Add(2 * time.Minute)
	if code, _, body := get(t, base+"/api/v1/traces/"+id.String()); code != 404 || !strings.Contains(body, `"errorType":"not_found"`) {
		t.Errorf("after expiry: %d %s", code, body)
	}
	// Without a trace store every trace is unknown.
	base = serve(t, Options{Rules: &fakeRules{}})
	if code, _, _ := get(t, base+"/trace/"+id.String()); code != 404 {
		t.Errorf("without a store: %d", code)
	}
}

// TestTraceViewInBrowser renders the waterfall in headless Chromium.
func TestTraceViewInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a browser")
	}
	bin := testkit.Chromium(t)
	id := tid(1)
	buf, _ := newTraceBuffer(t, map[traces.TraceID][]handSpan{id: slowEtcdTrace})
	base := serve(t, Options{Rules: &fakeRules{}, Traces: buf, Version: "test"})
	dom := testkit.RunChromium(t, bin, "--dump-dom", base+"/trace/"+id.String())
	if !strings.Contains(dom, `data-trace-id="`+id.String()+`"`) {
		t.Fatalf("the browser did not render the trace:\n%s", dom)
	}
	if n := strings.Count(dom, `<tr class="span`); n != len(slowEtcdTrace) {
		t.Errorf("%d span rows, want %d", n, len(slowEtcdTrace))
	}
	if n := len(criticalRowRe.FindAllString(dom, -1)); n != 4 {
		t.Errorf("%d rows on the critical path, want 4", n)
	}
	// TRACE_VIEW_SCREENSHOT=/tmp/trace.png keeps it.
	screenshot(t, bin, base+"/trace/"+id.String(), "TRACE_VIEW_SCREENSHOT")
}
