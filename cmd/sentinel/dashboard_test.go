package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kube-sentinel/sentinel/internal/amtest"
	"github.com/kube-sentinel/sentinel/internal/golden"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

const dashboardFile = "../../deploy/grafana/sentinel.json"

// dashboardRules fire on the spans the test sends (2s namespaces GETs)
// and give an SLO its burn rates.
const dashboardRules = `
groups:
  - name: dashboard
    interval: 1s
    rules:
      - alert: NamespacesGETLatency
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        group_by: [verb]
        objective: {quantile: 0.99, threshold: 1s}
        window: 10s
        labels: {severity: page}
      - slo: NamespacesBudget
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        objective: {target: 99.0, latency: 1s}
        period: 28d
        burn_rate_alerts: default
`

// dashboardQuery is one PromQL query of the dashboard, where it is.
type dashboardQuery struct {
	where, expr string
}

// dashboardQueries are every panel target's expr (rows' panels included)
// and every template variable's label_values query.
func dashboardQueries(t *testing.T) (exprs []dashboardQuery, labelValues []dashboardQuery) {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" {
					t.Errorf("panel %q target %s has no expr", p.Title, tg.RefID)
				}
				exprs = append(exprs, dashboardQuery{fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		s, _ := q["query"].(string)
		labelValues = append(labelValues, dashboardQuery{"variable " + v.Name, s})
	}
	return exprs, labelValues
}

// grafanaVariable matches Grafana's $name and ${name} references.
var grafanaVariable = regexp.MustCompile(`\$\{?(__rate_interval|__interval|[a-z_]+)\}?`)

// substitute replaces template variables as Grafana would with "All"
// selected: regex matchers take .*, intervals take a minute.
func substitute(expr string) string {
	return grafanaVariable.ReplaceAllStringFunc(expr, func(m string) string {
		if strings.Contains(m, "interval") {
			return "1m"
		}
		return ".*"
	})
}

// startPrometheus runs the real Prometheus scraping target every second.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin := testkit.Binary(t, "on Debian: apt-get install prometheus", "prometheus")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: sentinel
    static_configs: [{targets: [%q]}]
`, target), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out testkit.SyncBuffer
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", out.String())
		default:
		}
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promAPI is a Prometheus HTTP API answer.
type promAPI struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func promGet(base, path string, params url.Values) (promAPI, error) {
	var r promAPI
	resp, err := http.Get(base + path + "?" + params.Encode())
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// TestDashboardQueriesReturnData runs every query of the shipped Grafana
// dashboard against a real Prometheus scraping a running sentinel that
// receives spans and has fired an alert: each must parse and return data.
func TestDashboardQueriesReturnData(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus and Alertmanager")
	}
	exprs, vars := dashboardQueries(t)
	if len(exprs) < 20 {
		t.Fatalf("only %d queries found in %s", len(exprs), dashboardFile)
	}
	am := amtest.Start(t)
	// A span limit the test's one oversized request breaks, so the refusal
	// panels have data.
	const limits = `otlp:
  grpc: {listen_address: "127.0.0.1:0"}
  http: {listen_address: "127.0.0.1:0"}
  limits: {max_spans_per_request: 20}
`
	d := startSentinelOpts(t, dashboardRules, limits, func(o *daemonOptions) { o.WatchInterval = time.Minute }, am.URL)
	prom := startPrometheus(t, d.webLn.Addr().String())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		var seq uint64
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			postSpans(t, []string{d.receiver.HTTPAddr().String()}, 5, 2*time.Second, &seq)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { cancel(); <-sent }()

	if code := postSpanCount(t, d.receiver.HTTPAddr().String(), 30); code < 400 {
		t.Fatalf("30 spans over a limit of 20: status %d, want a refusal", code)
	}

	// The alert fired and reached Alertmanager: the notification panels have data.
	waitQuery(t, "Alertmanager", "NamespacesGETLatency", func() (bool, error) {
		alerts, err := am.Alerts(ctx)
		if err != nil {
			return false, err
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "NamespacesGETLatency" {
				return true, nil
			}
		}
		return false, fmt.Errorf("not received")
	})

	for _, q := range exprs {
		expr := substitute(q.expr)
		waitQuery(t, q.where, expr, func() (bool, error) {
			r, err := promGet(prom, "/api/v1/query", url.Values{"query": {expr}})
			if err != nil {
				return false, err
			}
			if r.ErrorType == "bad_data" {
				return true, fmt.Errorf("does not parse: %s", r.Error) // final
			}
			if r.Status != "success" {
				return false, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
			}
			var v struct {
				Result []json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal(r.Data, &v); err != nil {
				return true, err
			}
			if len(v.Result) == 0 {
				return false, fmt.Errorf("no data")
			}
			return true, nil
		})
	}
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_]+)\)$`)
	for _, q := range vars {
		m := labelValues.FindStringSubmatch(q.expr)
		if m == nil {
			t.Errorf("%s: %q is not label_values(selector, label)", q.where, q.expr)
			continue
		}
		sel, label := substitute(m[1]), m[2]
		waitQuery(t, q.where, q.expr, func() (bool, error) {
			r, err := promGet(prom, "/api/v1/label/"+label+"/values", url.Values{"match[]": {sel}})
			if err != nil {
				return false, err
			}
			if r.Status != "success" {
				return r.ErrorType == "bad_data", fmt.Errorf("%s: %s", r.ErrorType, r.Error)
			}
			var vals []string
			if err := json.Unmarshal(r.Data, &vals); err != nil {
				return true, err
			}
			if len(vals) == 0 {
				return false, fmt.Errorf("no values")
			}
			return true, nil
		})
	}
}

// waitQuery polls check until it is done; an error when done (or at the
// deadline) fails the test, naming the query.
func waitQuery(t *testing.T, where, expr string, check func() (done bool, err error)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		done, err := check()
		if done || time.Now().After(deadline) {
			if err != nil {
				t.Errorf("%s: %s: %v", where, expr, err)
			}
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// dashboardConfigMap is deploy/grafana/configmap.yaml: the dashboard as
// the ConfigMap kube-prometheus-stack's Grafana sidecar loads (label
// grafana_dashboard: "1"). The JSON file is the source; the ConfigMap is
// generated from it (go test -update), so the two cannot drift.
func dashboardConfigMap(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`# Generated from sentinel.json by cmd/sentinel's TestDashboardConfigMap
# (go test ./cmd/sentinel -run TestDashboardConfigMap -update); edit the JSON.
# kube-prometheus-stack's Grafana sidecar loads every ConfigMap labelled
# grafana_dashboard: "1" in the namespaces it searches (by default its own):
#   kubectl -n monitoring apply -f deploy/grafana/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: sentinel-grafana-dashboard
  labels:
    grafana_dashboard: "1"
    app.kubernetes.io/name: sentinel
    app.kubernetes.io/component: dashboard
data:
  sentinel.json: |
`)
	for _, line := range strings.SplitAfter(strings.TrimRight(string(data), "\n"), "\n") {
		b.WriteString("    " + line)
	}
	b.WriteString("\n")
	return b.String()
}

func TestDashboardConfigMap(t *testing.T) {
	golden.Check(t, "../../deploy/grafana/configmap.yaml", dashboardConfigMap(t))
}

// postSpanCount posts one OTLP/HTTP request of n apiserver spans and
// returns the status code.
func postSpanCount(t *testing.T, addr string, n int) int {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "apiserver")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	end := time.Now()
	for i := range n {
		s := spans.AppendEmpty()
		s.SetTraceID(pcommon.TraceID{0x5f, byte(i + 1)})
		s.SetSpanID(pcommon.SpanID{1, byte(i + 1)})
		s.SetKind(ptrace.SpanKindServer)
		s.SetName("GET /api/v1/namespaces/{:name}")
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-time.Millisecond)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
