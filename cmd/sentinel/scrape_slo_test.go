package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"

	"github.com/kube-sentinel/sentinel/internal/amtest"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// requestCounterTarget serves apiserver_request_total{code,verb,resource}
// in the text format, as kube-apiserver does, growing at each scrape: 100
// successful GETs on namespaces, and, once failing is set, a rising number
// of 500s (5, 10, 15, ... a scrape). WATCH requests fail from the start
// (a 504 at each scrape), which the rule's matchers leave out.
type requestCounterTarget struct {
	mu      sync.Mutex
	failing bool
	step    int
	ok, bad int
	watch   int
	scrapes int
}

func (c *requestCounterTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scrapes++
	c.ok += 100
	c.watch++
	if c.failing {
		c.step++
		c.bad += 5 * c.step
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b strings.Builder
	b.WriteString("# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n")
	b.WriteString("# TYPE apiserver_request_total counter\n")
	fmt.Fprintf(&b, "apiserver_request_total{code=\"200\",resource=\"namespaces\",verb=\"GET\"} %d\n", c.ok)
	fmt.Fprintf(&b, "apiserver_request_total{code=\"500\",resource=\"namespaces\",verb=\"GET\"} %d\n", c.bad)
	fmt.Fprintf(&b, "apiserver_request_total{code=\"504\",resource=\"namespaces\",verb=\"WATCH\"} %d\n", c.watch)
	b.WriteString("# TYPE apiserver_request_duration_seconds histogram\n")
	fmt.Fprintf(&b, "apiserver_request_duration_seconds_bucket{resource=\"namespaces\",verb=\"GET\",le=\"+Inf\"} %d\n", c.ok+c.bad)
	_, _ = w.Write([]byte(b.String()))
}

// TestScrapeAvailabilitySLO: an availability SLO from metrics (no latency,
// a 5xx code is failed) over a scraped apiserver_request_total, with the
// engine unchanged → a burn-rate page at a real Alertmanager.
func TestScrapeAvailabilitySLO(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	target := &requestCounterTarget{}
	srv := httptest.NewServer(target)
	defer srv.Close()
	am := amtest.Start(t)
	rules := `
groups:
  - name: availability
    interval: 1s
    rules:
      - slo: KubeAPINamespacesAvailability
        source: metrics
        metric: apiserver_request_total
        matchers: ['resource="namespaces"', 'verb!~"WATCH|CONNECT"']
        group_by: [resource]
        objective: {target: 99.9}
        burn_rate_alerts: [{severity: page, long_window: 20s, short_window: 5s, factor: 2, for: 0s}]
        labels: {team: control-plane}
        annotations:
          summary: "namespaces requests burn the availability budget {{ $value }}x too fast"
`
	d := startScrapingSentinel(t, rules, srv.URL, am.URL)

	// Healthy (and failing WATCHes, which the matchers leave out): no
	// alert, though the window is full of requests.
	waitForScrapes(t, d, 6)
	time.Sleep(2 * time.Second) // a few evaluations over the healthy traffic
	if got := amAlerts(t, am); len(got) != 0 {
		t.Fatalf("alerts before any 5xx: %v", alertNames(got))
	}

	target.mu.Lock()
	target.failing = true
	target.mu.Unlock()
	began := time.Now()

	alert := testkit.WaitFor(t, "the burn-rate page at Alertmanager", 30*time.Second, func() (*models.GettableAlert, bool) {
		for _, a := range amAlerts(t, am) {
			if a.Labels["alertname"] == "KubeAPINamespacesAvailability" {
				return a, true
			}
		}
		return nil, false
	})
	t.Logf("page after %s: labels %v annotations %v", time.Since(began).Round(time.Millisecond), alert.Labels, alert.Annotations)
	want := map[string]string{
		"alertname": "KubeAPINamespacesAvailability", "severity": "page", "long_window": "20s", "short_window": "5s",
		"resource": "namespaces", "team": "control-plane", "cluster": "e2e",
	}
	for k, v := range want {
		if alert.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, alert.Labels[k], v, alert.Labels)
		}
	}
	if !strings.HasPrefix(alert.Annotations["summary"], "namespaces requests burn the availability budget ") {
		t.Errorf("summary %q", alert.Annotations["summary"])
	}
	for _, k := range []string{"burn_rate_long", "burn_rate_short", "budget_remaining"} {
		if alert.Annotations[k] == "" {
			t.Errorf("no %s annotation: %v", k, alert.Annotations)
		}
	}
}

func alertNames(as []*models.GettableAlert) []string {
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprint(a.Labels))
	}
	return out
}
