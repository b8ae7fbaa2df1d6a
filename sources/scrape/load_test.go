package scrape

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// TestThousandTargetsKeepUp scrapes 1000 targets every second for about
// five seconds (15s in production, scaled down 15×) from one loopback
// server with 1000 paths, and checks that no target falls behind.
func TestThousandTargetsKeepUp(t *testing.T) {
	if testing.Short() {
		t.Skip("about 7s of real time")
	}
	// The race detector slows the in-process server and the scraper alike
	// several times over, on the same two cores: fewer targets then.
	targets := 1000
	if testkit.RaceEnabled {
		targets = 200
	}
	var requests atomic.Int64
	body := func(n int64) string {
		var b strings.Builder
		b.WriteString("# TYPE apiserver_request_duration_seconds histogram\n")
		for s := 0; s < 5; s++ {
			var cum int64
			for j, le := range apiserverBuckets {
				cum += n*int64(j%3) + 100
				fmt.Fprintf(&b, "apiserver_request_duration_seconds_bucket{resource=\"r%d\",verb=\"GET\",le=\"%g\"} %d\n", s, le, cum)
			}
			fmt.Fprintf(&b, "apiserver_request_duration_seconds_bucket{resource=\"r%d\",verb=\"GET\",le=\"+Inf\"} %d\n", s, cum)
			fmt.Fprintf(&b, "apiserver_request_duration_seconds_count{resource=\"r%d\",verb=\"GET\"} %d\n", s, cum)
		}
		return b.String()
	}
	var bodies [10]string
	for i := range bodies {
		bodies[i] = body(int64(i))
	}
	scrapesPerPath := make([]atomic.Int64, targets)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		var i int
		if _, err := fmt.Sscanf(r.URL.Path, "/t/%d", &i); err != nil || i < 0 || i >= targets {
			http.NotFound(w, r)
			return
		}
		n := scrapesPerPath[i].Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, bodies[min(n, int64(len(bodies)-1))])
	}))
	defer srv.Close()

	var cfg strings.Builder
	cfg.WriteString("scrape_configs:\n")
	for i := 0; i < targets; i++ {
		fmt.Fprintf(&cfg, "  - {job_name: t%d, scrape_interval: 1s, metrics_path: /t/%d, static_configs: [{targets: [%q]}]}\n", i, i, hostOf(srv.URL))
	}
	r := startScraper(t, parseConfigs(t, cfg.String()), nil)
	start := time.Now()
	time.Sleep(5500 * time.Millisecond)
	ts := r.s.Targets()
	elapsed := time.Since(start)
	if len(ts) != targets {
		t.Fatalf("%d targets", len(ts))
	}
	minScrapes := uint64(1 << 62)
	for _, st := range ts {
		minScrapes = min(minScrapes, st.Scrapes)
		if st.Health != HealthGood {
			t.Errorf("%s: %s %s", st.ScrapeURL, st.Health, st.LastError)
		}
	}
	obs := r.rec.take()
	t.Logf("%d targets, %v: %d requests, min %d scrapes per target, %d observations", targets, elapsed.Round(time.Millisecond), requests.Load(), minScrapes, len(obs))
	// Every target's first scrape falls within its first second (the
	// offset), then one per second: 5 in 5.5s.
	if minScrapes < 5 {
		t.Errorf("a target was scraped only %d times in %v at a 1s interval: the scraper falls behind", minScrapes, elapsed)
	}
	if len(obs) == 0 {
		t.Error("no observations")
	}
}
