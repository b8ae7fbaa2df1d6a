package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kube-sentinel/sentinel/internal/testkit"
)

var (
	demoStatusPageRe = regexp.MustCompile(`status page: (http://[^/\s]+)/`)
	traceIDHexRe     = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// TestDemoStory runs `sentinel demo` as a user does and reads its output:
// the headline alert fires with exemplar trace links into sentinel's own
// trace view, which serve the assembled traces (etcd's spans from its later
// export included) while the demo runs; the alert names etcd and the slow
// node; it resolves and the demo exits 0.
func TestDemoStory(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: about a minute")
	}
	out, stderr := &testkit.SyncBuffer{}, &testkit.SyncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), demoDeadline+time.Minute)
	defer cancel()
	var exit int
	done := make(chan struct{})
	go func() { exit = runDemo(ctx, nil, out, stderr); close(done) }()
	finished := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	defer func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("demo output:\n%s\nstderr:\n%s", out, stderr)
		}
	}()

	firing := testkit.WaitFor(t, "a FIRING "+demoHeadline+" with trace links", demoDeadline, func() (demoAlert, bool) {
		for _, a := range parseDemoAlerts(out.String()) {
			if a.state == "FIRING" && a.name == demoHeadline && len(a.lists["exemplar_trace_urls"]) > 0 {
				return a, true
			}
		}
		return demoAlert{}, finished()
	})
	if firing.name == "" {
		t.Fatalf("the demo ended (status %d) before %s fired with trace links", exit, demoHeadline)
	}
	m := demoStatusPageRe.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatal("the demo does not print its status page's address")
	}
	base := m[1]

	// The trace links open sentinel's own view, one per exemplar.
	ids, urls := firing.lists["exemplar_trace_ids"], firing.lists["exemplar_trace_urls"]
	if len(ids) == 0 || len(ids) != len(urls) {
		t.Fatalf("exemplar_trace_ids %v and exemplar_trace_urls %v do not pair up", ids, urls)
	}
	for i, id := range ids {
		if !traceIDHexRe.MatchString(id) {
			t.Errorf("exemplar trace ID %q is not 32 lowercase hex digits", id)
		}
		if want := base + "/trace/" + id; urls[i] != want {
			t.Errorf("trace link %q, want %q", urls[i], want)
		}
	}

	// The slow node, and no other node, is what slow requests have in
	// common.
	checkSlowRequestsBy(t, firing)

	// etcd leads the critical path of the exemplar traces; while the demo
	// runs, the links serve the assembled traces, with the spans etcd
	// exported on its own, later: etcd on the slow node.
	checkCriticalPath(t, firing)
	if finished() {
		t.Fatal("the demo ended before its trace links could be opened")
	}
	for i, id := range ids {
		if code, page := httpDo(t, "GET", urls[i]); code != http.StatusOK || !strings.Contains(page, "etcdserverpb.KV/Range") {
			t.Errorf("GET %s: %d, want 200 with the etcd span in the waterfall", urls[i], code)
		}
		// etcd's spans come in exports of their own, a second or more
		// after the apiserver's on a busy machine: wait for them.
		var spans []demoSpan
		testkit.WaitFor(t, "etcd's spans of trace "+id, 15*time.Second, func() (bool, bool) {
			spans = demoTraceSpans(t, base+"/api/v1/traces/"+id)
			for _, s := range spans {
				if s.Service == "etcd" && s.Kind == "server" {
					return true, true
				}
			}
			return false, false
		})
		var etcdServer, root bool
		for _, s := range spans {
			switch {
			case s.Service == "etcd" && s.Kind == "server":
				etcdServer = true
				if node := s.Attributes["k8s.node.name"]; node != demoSlowNode {
					t.Errorf("trace %s: etcd span on node %q, want %s", id, node, demoSlowNode)
				}
			case s.Service == "apiserver" && s.ParentSpanID == "":
				root = true
			}
		}
		if !etcdServer || !root {
			t.Errorf("trace %s: apiserver root %v, etcd SERVER span %v; spans %+v", id, root, etcdServer, spans)
		}
	}

	select {
	case <-done:
		if exit != 0 {
			t.Fatalf("demo exit status %d", exit)
		}
	case <-time.After(demoDeadline):
		t.Fatalf("the demo did not end within %s of firing", demoDeadline)
	}
	text := out.String()
	if !strings.Contains(text, "RESOLVED "+demoHeadline) || !strings.Contains(text, "demo complete") {
		t.Errorf("the demo exited 0 without printing the resolution")
	}
}

// checkCriticalPath asserts that etcd's Range leads a firing headline
// alert's critical path.
func checkCriticalPath(t *testing.T, a demoAlert) {
	t.Helper()
	if cp := a.annotations["critical_path"]; !strings.HasPrefix(cp, "etcd ") {
		t.Errorf("critical_path %q, want it led by etcd", cp)
	}
	if cps := a.annotations["critical_path_spans"]; !strings.HasPrefix(cps, "etcd/etcdserverpb.KV/Range ") {
		t.Errorf("critical_path_spans %q, want it led by etcd/etcdserverpb.KV/Range", cps)
	}
}

// checkSlowRequestsBy asserts that a firing headline alert's
// slow_requests_by names the slow node and nothing else (its zone counts
// the same requests: the node is alone in it).
func checkSlowRequestsBy(t *testing.T, a demoAlert) {
	t.Helper()
	by := a.annotations["slow_requests_by"]
	if !strings.HasPrefix(by, "k8s.node.name="+demoSlowNode+" (") {
		t.Errorf("slow_requests_by %q, want it led by k8s.node.name=%s", by, demoSlowNode)
	}
	if n := strings.Count(by, "% of all)"); n != 1 {
		t.Errorf("slow_requests_by names %d values, want %s alone: %q", n, demoSlowNode, by)
	}
}

// demoAlert is one notification block as the stdout notifier prints it.
type demoAlert struct {
	state, name string
	annotations map[string]string
	lists       map[string][]string // list annotations, one item a line
}

// parseDemoAlerts reads the notification blocks out of the demo's output.
func parseDemoAlerts(text string) []demoAlert {
	var alerts []demoAlert
	var cur *demoAlert
	section, list := "", ""
	for line := range strings.SplitSeq(text, "\n") {
		if state, name, ok := strings.Cut(line, " "); ok && (state == "FIRING" || state == "RESOLVED") {
			alerts = append(alerts, demoAlert{state: state, name: name, annotations: map[string]string{}, lists: map[string][]string{}})
			cur, section, list = &alerts[len(alerts)-1], "", ""
			continue
		}
		if cur == nil {
			continue
		}
		switch trimmed := strings.TrimSpace(line); {
		case line == "":
			cur = nil
		case !strings.HasPrefix(line, "    "):
			section, list = strings.TrimSuffix(trimmed, ":"), ""
		case section != "annotations":
		case strings.HasPrefix(line, "      ") && list != "":
			cur.lists[list] = append(cur.lists[list], trimmed)
		case strings.HasSuffix(trimmed, ":") && !strings.Contains(trimmed, " "):
			list = strings.TrimSuffix(trimmed, ":")
		default:
			if k, v, ok := strings.Cut(trimmed, " = "); ok {
				cur.annotations[k], list = v, ""
			}
		}
	}
	return alerts
}

type demoSpan struct {
	SpanID       string            `json:"spanID"`
	ParentSpanID string            `json:"parentSpanID"`
	Service      string            `json:"service"`
	Name         string            `json:"name"`
	Kind         string            `json:"kind"`
	Attributes   map[string]string `json:"attributes"`
}

func demoTraceSpans(t *testing.T, url string) []demoSpan {
	t.Helper()
	code, body := httpDo(t, "GET", url)
	if code != http.StatusOK {
		t.Errorf("GET %s: %d %s", url, code, body)
		return nil
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Spans []demoSpan `json:"spans"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Status != "success" {
		t.Errorf("GET %s: %v %s", url, err, body)
	}
	return resp.Data.Spans
}

// TestDemoTrafficWholeTraces: the generator's traces are whole once the
// late exports are in (every parent present, one root each), etcd's and
// the webhook's spans come only in those later exports, every resource says
// its node and zone, and the incident slows reads through the slow node
// only.
func TestDemoTrafficWholeTraces(t *testing.T) {
	for _, incident := range []bool{false, true} {
		g := newTrafficGenerator(7)
		now := time.Unix(1_700_000_000, 0)
		apiserver := g.batch(now, 400, incident)
		late := g.flush()
		if len(g.flush()) != 0 {
			t.Fatal("flush does not empty the exporters")
		}
		type spanInfo struct {
			service, node, name, kind string
			parent                    string
			dur                       time.Duration
		}
		traces := map[string]map[string]spanInfo{} // trace → span → info
		collect := func(td ptrace.Traces, exportOf string) {
			for i := 0; i < td.ResourceSpans().Len(); i++ {
				rs := td.ResourceSpans().At(i)
				attrs := rs.Resource().Attributes()
				service, _ := attrs.Get("service.name")
				node, hasNode := attrs.Get("k8s.node.name")
				_, hasZone := attrs.Get("cloud.availability_zone")
				if !hasNode || !hasZone {
					t.Fatalf("resource %v lacks k8s.node.name or cloud.availability_zone", attrs.AsRaw())
				}
				if (exportOf == "apiserver") != (service.Str() == "apiserver") {
					t.Errorf("%s spans in the %s export", service.Str(), exportOf)
				}
				for j := 0; j < rs.ScopeSpans().Len(); j++ {
					spans := rs.ScopeSpans().At(j).Spans()
					for k := 0; k < spans.Len(); k++ {
						s := spans.At(k)
						id := s.TraceID().String()
						if traces[id] == nil {
							traces[id] = map[string]spanInfo{}
						}
						parent := ""
						if !s.ParentSpanID().IsEmpty() {
							parent = s.ParentSpanID().String()
						}
						traces[id][s.SpanID().String()] = spanInfo{service.Str(), node.Str(), s.Name(), s.Kind().String(), parent,
							s.EndTimestamp().AsTime().Sub(s.StartTimestamp().AsTime())}
					}
				}
			}
		}
		collect(apiserver, "apiserver")
		if len(late) == 0 {
			t.Fatal("no later exports")
		}
		for _, td := range late {
			collect(td, "late")
		}
		if len(traces) != 400 {
			t.Fatalf("%d traces, want 400", len(traces))
		}
		slowSeen := false
		for id, spans := range traces {
			var root spanInfo
			roots, etcdServers, webhooks := 0, 0, 0
			for _, s := range spans {
				if s.parent == "" {
					root = s
					roots++
				} else if _, ok := spans[s.parent]; !ok {
					t.Errorf("trace %s: %s's parent is missing", id, s.name)
				}
				if s.service == "etcd" && s.kind == "Server" {
					etcdServers++
					if p := spans[s.parent]; p.service != "apiserver" || p.kind != "Client" || p.name != s.name {
						t.Errorf("trace %s: etcd's %s is a child of %+v, want the apiserver's CLIENT span of the same name", id, s.name, p)
					}
				}
				if s.service == demoWebhook {
					webhooks++
				}
			}
			if roots != 1 || root.service != "apiserver" || root.kind != "Server" || etcdServers != 1 {
				t.Errorf("trace %s: %d roots (%+v), %d etcd SERVER spans", id, roots, root, etcdServers)
				continue
			}
			write := !strings.HasPrefix(root.name, "GET ")
			if write != (webhooks == 1) {
				t.Errorf("trace %s (%s): %d webhook spans", id, root.name, webhooks)
			}
			slow := root.dur > time.Second
			if slow && (!incident || write || root.node != demoSlowNode) {
				t.Errorf("trace %s: %s through %s takes %s (incident %v)", id, root.name, root.node, root.dur, incident)
			}
			slowSeen = slowSeen || slow
		}
		if incident && !slowSeen {
			t.Error("the incident slows no request")
		}
	}
}
