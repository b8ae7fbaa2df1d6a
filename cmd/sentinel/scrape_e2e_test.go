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

// histogramTarget serves an apiserver-shaped histogram in OpenMetrics with
// exemplars on its buckets, growing each time it is scraped.
type histogramTarget struct {
	mu        sync.Mutex
	scrapes   int
	slow      bool
	perBucket map[string]int // requests so far in (previous bound, le]
	traces    map[string]string
}

var targetBounds = []string{"0.1", "0.5", "1", "2", "5", "+Inf"}

func (h *histogramTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.scrapes++
	// Each scrape: 20 fast requests; when slow, 10 more of 3s.
	h.perBucket["0.1"] += 20
	if h.slow {
		h.perBucket["5"] += 10
	}
	w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
	var b strings.Builder
	b.WriteString("# TYPE apiserver_request_duration_seconds histogram\n")
	cum := 0
	for _, le := range targetBounds {
		cum += h.perBucket[le]
		fmt.Fprintf(&b, `apiserver_request_duration_seconds_bucket{verb="GET",resource="namespaces",scope="resource",le="%s"} %d`, le, cum)
		if h.slow && le == "5" {
			id := fmt.Sprintf("5e%030x", h.scrapes)
			h.traces[id] = le
			fmt.Fprintf(&b, ` # {trace_id="%s",span_id="00f067aa0ba902b7"} 3.1`, id)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "apiserver_request_duration_seconds_count{verb=\"GET\",resource=\"namespaces\",scope=\"resource\"} %d\n", cum)
	b.WriteString("# EOF\n")
	w.Write([]byte(b.String()))
}

// TestScrapeToPage: a scraped OpenMetrics histogram with exemplars →
// a metrics rule → a real Alertmanager alert carrying the exemplars' trace IDs.
func TestScrapeToPage(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	target := &histogramTarget{perBucket: map[string]int{}, traces: map[string]string{}}
	srv := httptest.NewServer(target)
	defer srv.Close()
	am := amtest.Start(t)
	rules := `
groups:
  - name: scraped
    interval: 1s
    rules:
      - alert: NamespacesP99FromMetrics
        source: metrics
        metric: apiserver_request_duration_seconds
        matchers: ['resource="namespaces"', 'verb!~"WATCH|CONNECT"']
        group_by: [verb, job]
        objective: {quantile: 0.99, threshold: 1s}
        window: 10s
        labels: {severity: page}
`
	d := startScrapingSentinel(t, rules, srv.URL, am.URL)
	waitForScrapes(t, d, 3)
	if got := amAlerts(t, am); len(got) != 0 {
		t.Fatalf("alerts before the slowdown: %v", got)
	}
	target.mu.Lock()
	target.slow = true
	target.mu.Unlock()

	alert := testkit.WaitFor(t, "the alert at Alertmanager", 30*time.Second, func() (*models.GettableAlert, bool) {
		for _, a := range amAlerts(t, am) {
			if a.Labels["alertname"] == "NamespacesP99FromMetrics" {
				return a, true
			}
		}
		return nil, false
	})
	if alert.Labels["verb"] != "GET" || alert.Labels["job"] != "apiserver" || alert.Labels["severity"] != "page" {
		t.Errorf("labels %v", alert.Labels)
	}
	ids := strings.Split(alert.Annotations["exemplar_trace_ids"], ",")
	target.mu.Lock()
	for _, id := range ids {
		if _, ok := target.traces[id]; !ok {
			t.Errorf("exemplar %q is not a trace ID the target exposed", id)
		}
	}
	target.mu.Unlock()
	// The slow requests sit in (2, 5]: the p99 is interpolated inside that
	// bucket (its exact value depends on how many slow scrapes the window
	// holds; parity with Prometheus is tested in sources/scrape).
	var v float64
	if _, err := fmt.Sscanf(alert.Annotations["value"], "%gs", &v); err != nil || v <= 2 || v > 5 {
		t.Errorf("value %q, want inside the (2s, 5s] bucket", alert.Annotations["value"])
	}
}

// startScrapingSentinel runs sentinel with the rules and one scrape job,
// "apiserver", on the target at targetURL every second.
func startScrapingSentinel(t *testing.T, rules, targetURL, amURL string) *daemon {
	t.Helper()
	return startSentinelWith(t, rules, fmt.Sprintf(`
scrape_configs:
  - job_name: apiserver
    scrape_interval: 1s
    scrape_timeout: 500ms
    static_configs: [{targets: [%q]}]
`, strings.TrimPrefix(targetURL, "http://")), amURL)
}

// waitForScrapes waits until a target is up and has been scraped n times.
func waitForScrapes(t *testing.T, d *daemon, n uint64) {
	t.Helper()
	testkit.WaitFor(t, "healthy scrapes", 20*time.Second, func() (bool, bool) {
		for _, ts := range d.scraper.Targets() {
			if ts.Health == "up" && ts.Scrapes >= n {
				return true, true
			}
		}
		return false, false
	})
}
