package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kube-sentinel/sentinel/internal/amtest"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// The Alertmanager configuration users deploy (deploy/alertmanager/).
var alertmanagerConfig = filepath.Join("..", "..", "deploy", "alertmanager", "alertmanager.yaml")

// TestAlertmanagerConfigValid runs amtool check-config on the shipped
// Alertmanager configuration.
func TestAlertmanagerConfigValid(t *testing.T) {
	amtool := testkit.Binary(t, "on Debian: apt-get install prometheus-alertmanager", "amtool")
	out, err := exec.Command(amtool, "check-config", alertmanagerConfig).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("amtool check-config %s: %v\n%s", alertmanagerConfig, err, out)
	}
}

// pagerDutyStandIn stands in for PagerDuty's Events API v2
// (POST /v2/enqueue) and keeps every event it receives.
type pagerDutyStandIn struct {
	*httptest.Server
	mu     sync.Mutex
	events []pagerDutyEvent
	other  []string // requests to anything else
}

// pagerDutyEvent is what Alertmanager sends (Events API v2).
type pagerDutyEvent struct {
	RoutingKey  string `json:"routing_key"`
	EventAction string `json:"event_action"`
	DedupKey    string `json:"dedup_key"`
	Payload     struct {
		Summary       string            `json:"summary"`
		Source        string            `json:"source"`
		Severity      string            `json:"severity"`
		CustomDetails map[string]string `json:"custom_details"`
	} `json:"payload"`
	Links []struct {
		Href string `json:"href"`
		Text string `json:"text"`
	} `json:"links"`
	Client    string `json:"client"`
	ClientURL string `json:"client_url"`
}

func newPagerDutyStandIn(t *testing.T) *pagerDutyStandIn {
	pd := &pagerDutyStandIn{}
	pd.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		pd.mu.Lock()
		defer pd.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/v2/enqueue" {
			pd.other = append(pd.other, r.Method+" "+r.URL.Path)
			w.WriteHeader(http.StatusOK)
			return
		}
		var ev pagerDutyEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("PagerDuty stand-in: bad event %q: %v", body, err)
			http.Error(w, `{"status":"invalid event"}`, http.StatusBadRequest)
			return
		}
		pd.events = append(pd.events, ev)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"status":"success","message":"Event processed","dedup_key":"` + ev.DedupKey + `"}`))
	}))
	t.Cleanup(pd.Close)
	return pd
}

func (pd *pagerDutyStandIn) triggers() []pagerDutyEvent {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	var out []pagerDutyEvent
	for _, ev := range pd.events {
		if ev.EventAction == "trigger" {
			out = append(out, ev)
		}
	}
	return out
}

// testAlertmanagerConfig copies the shipped configuration, pointing the
// PagerDuty receiver at the stand-in (Alertmanager's `url:` override) with
// a routing key file of the test's, the ticket webhook at the stand-in too,
// and short group waits.
func testAlertmanagerConfig(t *testing.T, standIn string) string {
	t.Helper()
	data, err := os.ReadFile(alertmanagerConfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "routing-key")
	if err := os.WriteFile(keyFile, []byte("test-routing-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	route := cfg["route"].(map[string]any)
	route["group_wait"], route["group_interval"] = "1s", "1s"
	for _, r := range route["routes"].([]any) {
		sub := r.(map[string]any)
		sub["group_wait"], sub["group_interval"] = "1s", "1s"
	}
	var pagerduty, webhook int
	for _, r := range cfg["receivers"].([]any) {
		recv := r.(map[string]any)
		if pds, ok := recv["pagerduty_configs"].([]any); ok {
			for _, p := range pds {
				pc := p.(map[string]any)
				pc["url"] = standIn + "/v2/enqueue"
				delete(pc, "routing_key")
				pc["routing_key_file"] = keyFile
				pagerduty++
			}
		}
		if whs, ok := recv["webhook_configs"].([]any); ok {
			for _, w := range whs {
				w.(map[string]any)["url"] = standIn + "/webhook"
				webhook++
			}
		}
	}
	if pagerduty == 0 || webhook == 0 {
		t.Fatalf("%s has %d pagerduty and %d webhook configs, want both", alertmanagerConfig, pagerduty, webhook)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "alertmanager.yaml")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

const pagerDutyRules = `
groups:
  - name: pagerduty-e2e
    interval: 1s
    rules:
      - alert: KubeAPINamespacesLatencyP99
        matchers: ['service.name="apiserver"', 'resource="namespaces"', 'verb="GET"']
        group_by: [verb]
        objective: {quantile: 0.99, threshold: 1s}
        window: 8s
        for: 2s
        labels: {severity: page}
        annotations:
          summary: "p99 of {{ $labels.verb }} namespaces requests is {{ $value | humanizeDuration }} (objective 1s)"
          runbook_url: "https://example.test/runbooks/KubeAPINamespacesLatencyP99.md"
`

// TestPagerDutyPage is a page end to end, with the shipped Alertmanager
// configuration: slow spans → sentinel → the real Alertmanager → a local
// stand-in for PagerDuty's Events API v2, whose incident must carry the
// exemplar trace IDs and links.
func TestPagerDutyPage(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	pd := newPagerDutyStandIn(t)
	am := amtest.StartWithOptions(t, amtest.Options{ConfigFile: testAlertmanagerConfig(t, pd.URL)})
	d := startSentinel(t, pagerDutyRules, am.URL)
	s := newSpanSender(t, d)

	s.phase(t, 5*time.Second, 2*time.Second) // slow namespaces GETs
	ev := testkit.WaitFor(t, "a PagerDuty trigger at the stand-in", 60*time.Second, func() (pagerDutyEvent, bool) {
		if tr := pd.triggers(); len(tr) > 0 {
			return tr[0], true
		}
		return pagerDutyEvent{}, false
	})
	t.Logf("PagerDuty event: %+v", ev)

	if ev.RoutingKey != "test-routing-key" {
		t.Errorf("routing_key %q, want the routing_key_file's", ev.RoutingKey)
	}
	if ev.Payload.Severity != "critical" {
		t.Errorf("payload.severity %q, want critical", ev.Payload.Severity)
	}
	if !strings.Contains(ev.Payload.Summary, "KubeAPINamespacesLatencyP99") || !strings.Contains(ev.Payload.Summary, "p99 of GET namespaces requests is") {
		t.Errorf("payload.summary %q", ev.Payload.Summary)
	}
	details := ev.Payload.CustomDetails
	ids := strings.Split(details["exemplar_trace_ids"], ",")
	if len(ids) == 0 || ids[0] == "" {
		t.Fatalf("no exemplar_trace_ids in custom_details: %v", details)
	}
	s.mu.Lock()
	for _, id := range ids {
		if len(id) != 32 || !s.slowGETs[id] {
			t.Errorf("exemplar %q is not the trace of a slow namespaces GET", id)
		}
	}
	s.mu.Unlock()
	urls := strings.Split(details["exemplar_trace_urls"], ",")
	if len(urls) != len(ids) {
		t.Errorf("exemplar_trace_urls %q: want one per trace ID %v", details["exemplar_trace_urls"], ids)
	}
	for i, u := range urls {
		if i < len(ids) && strings.TrimSpace(u) != "http://tracing.test/trace/"+ids[i] {
			t.Errorf("exemplar_trace_urls[%d] = %q, want the link of %s", i, u, ids[i])
		}
	}
	// Each exemplar is a PagerDuty link of its own (href and text), in
	// the annotation's order, slowest first: no empty or extra links.
	if len(ev.Links) != len(urls) {
		t.Errorf("%d links %+v, want one per exemplar trace URL %v", len(ev.Links), ev.Links, urls)
	}
	for i, l := range ev.Links {
		if i >= len(ids) {
			break
		}
		if l.Href != "http://tracing.test/trace/"+ids[i] {
			t.Errorf("links[%d].href = %q, want the trace URL of %s", i, l.Href, ids[i])
		}
		if !strings.Contains(l.Text, ids[i]) {
			t.Errorf("links[%d].text = %q, want it to name trace %s", i, l.Text, ids[i])
		}
	}
	for _, k := range []string{"summary", "value", "threshold", "runbook_url", "cluster"} {
		if details[k] == "" {
			t.Errorf("custom_details lack %s: %v", k, details)
		}
	}
	// value and threshold are sentinel's annotations: humanized durations.
	if v, err := time.ParseDuration(details["value"]); err != nil || v < 1900*time.Millisecond || v > 2100*time.Millisecond ||
		details["threshold"] != "1s" || details["cluster"] != "e2e" {
		t.Errorf("custom_details value %q threshold %q cluster %q", details["value"], details["threshold"], details["cluster"])
	}
	pd.mu.Lock()
	if len(pd.other) > 0 {
		t.Errorf("a page went elsewhere too: %v", pd.other)
	}
	pd.mu.Unlock()
}

// TestPagerDutyLinksFewerExemplars: an alert with two exemplars (fewer than
// the five link slots of the shipped configuration) gets two links, none
// empty, through the real Alertmanager.
func TestPagerDutyLinksFewerExemplars(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	pd := newPagerDutyStandIn(t)
	am := amtest.StartWithOptions(t, amtest.Options{ConfigFile: testAlertmanagerConfig(t, pd.URL)})
	ids := []string{"0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"}
	alert := []map[string]any{{
		"labels": map[string]string{"alertname": "KubeAPINamespacesLatencyP99", "severity": "page", "cluster": "e2e"},
		"annotations": map[string]string{
			"summary":             "p99 is 2s",
			"exemplar_trace_ids":  strings.Join(ids, ","),
			"exemplar_trace_urls": "http://tracing.test/trace/" + ids[0] + ",http://tracing.test/trace/" + ids[1],
		},
	}}
	body, err := json.Marshal(alert)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(am.URL+"/api/v2/alerts", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s", resp.Status)
	}
	ev := testkit.WaitFor(t, "a PagerDuty trigger at the stand-in", 30*time.Second, func() (pagerDutyEvent, bool) {
		if tr := pd.triggers(); len(tr) > 0 {
			return tr[0], true
		}
		return pagerDutyEvent{}, false
	})
	if len(ev.Links) != len(ids) {
		t.Fatalf("links %+v, want %d (one per exemplar, no empty ones)", ev.Links, len(ids))
	}
	for i, l := range ev.Links {
		if l.Href != "http://tracing.test/trace/"+ids[i] || !strings.Contains(l.Text, ids[i]) {
			t.Errorf("links[%d] = %+v, want the trace of %s", i, l, ids[i])
		}
	}
}
