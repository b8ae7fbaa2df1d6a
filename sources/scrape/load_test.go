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

// loadTargets serves n apiserver-shaped /metrics bodies (130 samples each)
// from one loopback server, one path per target, and returns scrape
// configs that scrape each of them every interval, and the request counter.
func loadTargets(tb testing.TB, n int, interval string) (string, *atomic.Int64) {
	tb.Helper()
	var requests atomic.Int64
	body := func(k int64) string {
		var b strings.Builder
		b.WriteString("# TYPE apiserver_request_duration_seconds histogram\n")
		for s := 0; s < 5; s++ {
			var cum int64
			for j, le := range apiserverBuckets {
				cum += k*int64(j%3) + 100
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
	scrapesPerPath := make([]atomic.Int64, n)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		var i int
		if _, err := fmt.Sscanf(r.URL.Path, "/t/%d", &i); err != nil || i < 0 || i >= n {
			http.NotFound(w, r)
			return
		}
		k := scrapesPerPath[i].Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, bodies[min(k, int64(len(bodies)-1))])
	}))
	tb.Cleanup(srv.Close)

	var cfg strings.Builder
	cfg.WriteString("scrape_configs:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&cfg, "  - {job_name: t%d, scrape_interval: %s, metrics_path: /t/%d, static_configs: [{targets: [%q]}]}\n", i, interval, i, hostOf(srv.URL))
	}
	return cfg.String(), &requests
}

// TestThousandTargetsAllScraped scrapes 1000 targets every 2 s from one
// loopback server and checks that every one of them is turned into
// observations (which takes two successful scrapes: the second gives the
// bucket deltas). How fast is BenchmarkThousandTargets's question: on two
// cores shared with other tests, a rate or a scrape that timed out is not
// a fact about the scraper.
func TestThousandTargetsAllScraped(t *testing.T) {
	if testing.Short() {
		t.Skip("a thousand targets for a few seconds")
	}
	// The race detector slows the in-process server and the scraper alike
	// several times over, on the same two cores: fewer targets then.
	targets := 1000
	if testkit.RaceEnabled {
		targets = 200
	}
	cfg, _ := loadTargets(t, targets, "2s")
	r := startScraper(t, parseConfigs(t, cfg), nil)
	observed := map[string]bool{}
	testkit.Eventually(t, 3*time.Minute, func() error {
		for _, o := range r.rec.take() {
			observed[o.Job] = true
		}
		if len(observed) < targets {
			return fmt.Errorf("observations from %d of %d targets", len(observed), targets)
		}
		return nil
	})
	if ts := r.s.Targets(); len(ts) != targets {
		t.Errorf("%d targets, want %d", len(ts), targets)
	}
}

// BenchmarkThousandTargets scrapes 1000 targets at a 1 s interval (1000
// apiserver /metrics at 15 s, sped up 15×) until b.N scrapes are done, and
// reports whether the scraper keeps up: min-scrapes/s is the slowest
// target's scrapes per second after the first (1 when no target falls
// behind), scrapes/s the total rate. Run it alone, with a -benchtime in
// scrapes: go test -run '^$' -bench ThousandTargets -benchtime 5000x ./sources/scrape/
func BenchmarkThousandTargets(b *testing.B) {
	const targets = 1000
	cfg, requests := loadTargets(b, targets, "1s")
	r := startScraper(b, parseConfigs(b, cfg), nil)
	// Every target's first scrape falls within its first second (its
	// offset): measure from when all have been scraped once.
	waitScrapes(b, r.s, targets, 1, time.Minute)
	base := map[string]uint64{}
	for _, st := range r.s.Targets() {
		base[st.ScrapeURL] = st.Scrapes
	}
	start := requests.Load()
	b.ResetTimer()
	began := time.Now()
	for requests.Load()-start < int64(b.N) {
		time.Sleep(10 * time.Millisecond)
		_ = r.rec.take() // keep the recorder from growing
	}
	elapsed := time.Since(began)
	b.StopTimer()
	least := uint64(1 << 62)
	for _, st := range r.s.Targets() {
		least = min(least, st.Scrapes-base[st.ScrapeURL])
	}
	b.ReportMetric(float64(least)/elapsed.Seconds(), "min-scrapes/s")
	b.ReportMetric(float64(requests.Load()-start)/elapsed.Seconds(), "scrapes/s")
}
