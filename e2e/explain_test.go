package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kube-sentinel/sentinel/internal/amtest"
)

// A latency objective on the apiserver-shaped requests, per verb; the
// threshold is tiny so that every verb pages, and the window long enough to
// outlast the flush of every exporter after the traffic stops.
const explainRulesYAML = `
groups:
  - name: explain-e2e
    interval: 1s
    rules:
      - alert: APIServerNamespacesLatency
        source: spans
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        group_by: [verb]
        objective: {quantile: 0.5, threshold: 1us}
        window: 40s
        for: 0s
        labels: {severity: page}
`

const (
	// The slow path: etcd must read every key under the prefix to sort by
	// modification revision before it keeps the newest few, so its own
	// SERVER span holds the time, not the wire (the reply is small).
	slowKeys      = 5000
	slowValueSize = 512
	slowListLimit = 10
	minSlowLists  = 10 // LIST requests made before the traffic may stop
)

// TestSlowEtcdExplained: one path of a real etcd 3.6 is slow (a range that
// must read a large prefix); apiserver-shaped requests from the
// OpenTelemetry SDK call it through otelgrpc, which propagates the trace
// context, so etcd's own SERVER spans (exported by etcd, on its own
// schedule) are children of the apiserver's CLIENT spans. The LIST alert
// at the real Alertmanager says etcd leads its critical path (the time is
// etcd's own work, not a delay between client and server), and sentinel's
// trace view of its exemplars lists etcd's spans, on the critical path.
func TestSlowEtcdExplained(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	am := amtest.Start(t) // skips without an Alertmanager binary (fails when CI=true)
	bin := buildSentinel(t)
	s := startSentinel(t, bin, am.URL, explainRulesYAML)
	etcdEndpoint, stopEtcd := startEtcd(t, s.grpcAddr)
	tp := apiserverTracerProvider(t, s.grpcAddr)
	cli := etcdClient(t, etcdEndpoint, tp)

	preloadNamespaces(t, etcdEndpoint)
	traffic := runTraffic(t, tp, func(i int) apiRequest {
		if i%2 == 0 {
			ns := "ns-" + strconv.Itoa(i%slowKeys)
			return apiRequest{"GET", "/api/v1/namespaces/" + ns, "GET /api/v1/namespaces/{:name}", "GET", func(ctx context.Context) error {
				_, err := cli.Get(ctx, "/registry/namespaces/"+ns)
				return err
			}}
		}
		return apiRequest{"GET", "/api/v1/namespaces", "GET /api/v1/namespaces", "LIST", func(ctx context.Context) error {
			_, err := cli.Get(ctx, "/registry/namespaces/", clientv3.WithPrefix(),
				clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(slowListLimit))
			return err
		}}
	})
	list := map[string]string{"verb": "LIST"}
	waitForAlertWhere(t, am, "APIServerNamespacesLatency", list, fmt.Sprintf(" after %d LIST requests", minSlowLists), func(*models.GettableAlert) bool {
		return traffic.count("LIST") >= minSlowLists
	})

	// Every span delivered: the apiserver's exporter flushed, etcd stopped
	// (which flushes its exporter). An alert Alertmanager received after
	// the next evaluation was computed from whole traces.
	traffic.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatalf("flush the apiserver's spans: %v", err)
	}
	stopEtcd()
	delivered := time.Now()
	alert := waitForAlertWhere(t, am, "APIServerNamespacesLatency", list, " sent after every span was delivered", func(a *models.GettableAlert) bool {
		return a.UpdatedAt != nil && time.Time(*a.UpdatedAt).After(delivered.Add(2*time.Second)) // an evaluation interval, and a margin
	})
	ids := annotationIDs(t, alert)
	traffic.checkExemplars(t, "LIST alert", ids, "LIST")
	t.Logf("LIST alert at Alertmanager (updated %s): %v", alert.UpdatedAt, alert.Annotations)

	if cp := alert.Annotations["critical_path"]; !strings.HasPrefix(cp, "etcd ") {
		t.Errorf("critical_path %q, want it led by etcd", cp)
	}
	if cps := alert.Annotations["critical_path_spans"]; !strings.HasPrefix(cps, "etcd/etcdserverpb.KV/Range ") {
		t.Errorf("critical_path_spans %q, want it led by etcd/etcdserverpb.KV/Range", cps)
	}
	for _, id := range ids {
		checkTraceView(t, s, id)
	}
}

// preloadNamespaces writes slowKeys namespace objects with a client of its
// own (no apiserver spans), in transactions of at most 128 puts (etcd's
// default --max-txn-ops).
func preloadNamespaces(t *testing.T, endpoint string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	defer cli.Close()
	pad := strings.Repeat("x", slowValueSize)
	for i := 0; i < slowKeys; i += 128 {
		var ops []clientv3.Op
		for j := i; j < min(i+128, slowKeys); j++ {
			ns := "ns-" + strconv.Itoa(j)
			ops = append(ops, clientv3.OpPut("/registry/namespaces/"+ns,
				`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"`+ns+`","annotations":{"pad":"`+pad+`"}}}`))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := cli.Txn(ctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			t.Fatalf("preload namespaces %d..: %v", i, err)
		}
	}
}

type traceViewSpan struct {
	SpanID       string            `json:"spanID"`
	ParentSpanID string            `json:"parentSpanID"`
	Service      string            `json:"service"`
	Name         string            `json:"name"`
	Kind         string            `json:"kind"`
	Attributes   map[string]string `json:"attributes"`
	CriticalPath bool              `json:"criticalPath"`
}

// checkTraceView asserts that sentinel's /api/v1/traces/<id> has the
// apiserver's root, its CLIENT span to etcd and, as that span's child,
// etcd's own SERVER span, on the critical path.
func checkTraceView(t *testing.T, s *sentinel, id string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(s.webURL + "/api/v1/traces/" + id)
	if err != nil {
		t.Fatalf("GET /api/v1/traces/%s: %v", id, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			TraceID string          `json:"traceID"`
			Spans   []traceViewSpan `json:"spans"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Status != "success" {
		t.Errorf("GET /api/v1/traces/%s: %d, %q, %v", id, resp.StatusCode, body.Status, err)
		return
	}
	byID := map[string]traceViewSpan{}
	for _, sp := range body.Data.Spans {
		byID[sp.SpanID] = sp
	}
	var root, etcdServer bool
	for _, sp := range body.Data.Spans {
		if sp.Service == "apiserver" && sp.Kind == "server" && sp.ParentSpanID == "" {
			root = true
		}
		if sp.Service != "etcd" || sp.Kind != "server" || sp.Name != "etcdserverpb.KV/Range" {
			continue
		}
		etcdServer = true
		if parent := byID[sp.ParentSpanID]; parent.Service != "apiserver" || parent.Kind != "client" {
			t.Errorf("trace %s: etcd's span's parent is %+v, want the apiserver's CLIENT span", id, parent)
		}
		if !sp.CriticalPath {
			t.Errorf("trace %s: etcd's Range span is not on the critical path", id)
		}
	}
	if !root || !etcdServer {
		t.Errorf("trace %s: apiserver root %v, etcd's own Range SERVER span %v; spans: %+v", id, root, etcdServer, body.Data.Spans)
	}
}
