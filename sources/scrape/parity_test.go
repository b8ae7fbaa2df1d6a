package scrape

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// The current kube-apiserver buckets of apiserver_request_duration_seconds.
var apiserverBuckets = []float64{0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60}

// apiserverHistogram is an apiserver-shaped histogram that the test grows.
type apiserverHistogram struct {
	mu     sync.Mutex
	series []*apiSeries
}

type apiSeries struct {
	labels string
	counts []uint64 // non-cumulative, per bucket, +Inf last
	sum    float64
}

func newAPIServerHistogram(labelSets ...string) *apiserverHistogram {
	h := &apiserverHistogram{}
	for i, l := range labelSets {
		s := &apiSeries{labels: l, counts: make([]uint64, len(apiserverBuckets)+1)}
		// A large baseline in every bucket: Prometheus's rate() stops its
		// extrapolation at the counter's zero point, per bucket, which would
		// skew buckets that start near zero differently.
		for j := range s.counts {
			s.counts[j] = uint64(5000 + 100*i + 10*j)
		}
		h.series = append(h.series, s)
	}
	return h
}

func (h *apiserverHistogram) observe(series int, seconds float64, n uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.series[series]
	j, _ := slices.BinarySearch(apiserverBuckets, seconds) // first bound ≥ seconds
	s.counts[j] += n
	s.sum += seconds * float64(n)
}

func (h *apiserverHistogram) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b strings.Builder
	b.WriteString("# HELP apiserver_request_duration_seconds [STABLE] Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n")
	b.WriteString("# TYPE apiserver_request_duration_seconds histogram\n")
	for _, s := range h.series {
		var cum uint64
		for j, c := range s.counts {
			cum += c
			le := "+Inf"
			if j < len(apiserverBuckets) {
				le = strconv.FormatFloat(apiserverBuckets[j], 'g', -1, 64)
			}
			fmt.Fprintf(&b, "apiserver_request_duration_seconds_bucket{%s,le=%q} %d\n", s.labels, le, cum)
		}
		fmt.Fprintf(&b, "apiserver_request_duration_seconds_sum{%s} %g\n", s.labels, s.sum)
		fmt.Fprintf(&b, "apiserver_request_duration_seconds_count{%s} %d\n", s.labels, cum)
	}
	_, _ = w.Write([]byte(b.String()))
}

// startPrometheus runs a real Prometheus on loopback scraping target every second.
func startPrometheus(t *testing.T, target string) string {
	bin := testkit.Binary(t, "on Debian: apt-get install prometheus", "prometheus")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1m}
scrape_configs:
  - job_name: apiserver
    static_configs: [{targets: [%q]}]
`, target)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		_ = logf.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", log)
		}
	})
	base := "http://" + addr
	testkit.Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return fmt.Errorf("prometheus not ready on %s: %w", addr, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("prometheus not ready on %s: %s", addr, resp.Status)
		}
		return nil
	})
	return base
}

func promQuery(t *testing.T, base, query string, at time.Time) float64 {
	t.Helper()
	u := base + "/api/v1/query?" + url.Values{"query": {query}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" || len(r.Data.Result) != 1 {
		t.Fatalf("query %s: %v %+v", query, err, r)
	}
	v, err := strconv.ParseFloat(r.Data.Result[0].Value[1].(string), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// referenceQuantile is Prometheus's bucketQuantile (promql/quantile.go):
// cumulative counts made monotonic, the rank's bucket found, linear
// interpolation inside it from the previous bound (0 for the first), the
// last finite bound when the rank falls in +Inf.
func referenceQuantile(q float64, bounds []float64, perBucket []float64) float64 {
	type b struct{ ub, c float64 }
	var bs []b
	var cum float64
	for i, ub := range bounds {
		cum += perBucket[i]
		bs = append(bs, b{ub, cum})
	}
	if len(bs) < 2 || !math.IsInf(bs[len(bs)-1].ub, 1) {
		return math.NaN()
	}
	total := bs[len(bs)-1].c
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	i := 0
	for i < len(bs) && bs[i].c < rank {
		i++
	}
	switch {
	case i == len(bs)-1:
		return bs[len(bs)-2].ub
	case i == 0 && bs[0].ub <= 0:
		return bs[0].ub
	}
	start, end, count := 0.0, bs[i].ub, bs[i].c
	if i > 0 {
		start = bs[i-1].ub
		count -= bs[i-1].c
		rank -= bs[i-1].c
	}
	return start + (end-start)*(rank/count)
}

func TestParityWithPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real Prometheus for about 20s")
	}
	h := newAPIServerHistogram(
		`component="apiserver",dry_run="",group="",resource="namespaces",scope="cluster",subresource="",verb="LIST",version="v1"`,
		`component="apiserver",dry_run="",group="",resource="namespaces",scope="resource",subresource="",verb="GET",version="v1"`,
		`component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"`,
	)
	srv := httptest.NewServer(h)
	defer srv.Close()
	prom := startPrometheus(t, hostOf(srv.URL))

	r := startScraper(t, parseConfigs(t, fmt.Sprintf(`
scrape_configs:
  - job_name: apiserver
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs: [{targets: [%q]}]
`, hostOf(srv.URL))), nil)

	// Static plateau: both see the baseline. Prometheus's discovery
	// manager hands targets to scrapers only every 5s: wait for its scrapes.
	testkit.Eventually(t, 30*time.Second, func() error {
		if n := promCount(t, prom, `count_over_time(up{job="apiserver"}[1m])`); n < 3 {
			return fmt.Errorf("prometheus scraped the target %v times, want 3", n)
		}
		return nil
	})
	waitScrapes(t, r.s, 1, 3, 10*time.Second)
	time.Sleep(2 * time.Second)
	burstStart := time.Now()
	// Burst: fast namespaces traffic, then a latency shift, and pods
	// traffic that the query must not count.
	rng := uint64(42)
	next := func() float64 { // xorshift, deterministic
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return float64(rng%1_000_000) / 1_000_000
	}
	for tick := 0; tick < 30; tick++ {
		for k := 0; k < 40; k++ {
			lat := 0.01 + 0.3*next()
			if tick >= 15 && next() < 0.2 {
				lat = 0.6 + 2.2*next() // the shift
			}
			h.observe(k%2, lat, 1)
			h.observe(2, 5+10*next(), 1)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Static again until both have scraped the final state.
	time.Sleep(4 * time.Second)
	end := time.Now()
	window := end.Sub(burstStart) + 2*time.Second // starts on the first plateau
	w := fmt.Sprintf("%dms", window.Milliseconds())

	bounds := append(slices.Clone(apiserverBuckets), math.Inf(1))
	perBucket := make([]float64, len(bounds))
	var total uint64
	for _, o := range r.rec.take() {
		if !strings.Contains(o.Labels, "resource=namespaces") || !o.End.After(end.Add(-window)) || o.End.After(end) {
			continue
		}
		i := slices.Index(bounds, o.LE)
		if i < 0 {
			t.Fatalf("observation with unknown bound %v", o.LE)
		}
		perBucket[i] += float64(o.Count)
		total += o.Count
	}
	if total != 30*40 {
		t.Errorf("sentinel saw %d namespaces requests, the server had %d", total, 30*40)
	}
	if testing.Verbose() {
		t.Logf("sentinel per bucket: %v", perBucket)
		t.Logf("prometheus: %s", promRaw(t, prom, fmt.Sprintf(`sum by (le) (increase(apiserver_request_duration_seconds_bucket{resource="namespaces"}[%s]))`, w), end))
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		ours := referenceQuantile(q, bounds, perBucket)
		theirs := promQuery(t, prom, fmt.Sprintf(`histogram_quantile(%g, sum by (le) (rate(apiserver_request_duration_seconds_bucket{resource="namespaces"}[%s])))`, q, w), end)
		t.Logf("q=%g: sentinel %.6f, prometheus %.6f (window %s)", q, ours, theirs, w)
		if math.IsNaN(ours) || math.Abs(ours-theirs) > 0.01*math.Abs(theirs) {
			t.Errorf("q=%g: sentinel %v, prometheus %v: more than 1%% apart", q, ours, theirs)
		}
	}
}

func promRaw(t *testing.T, base, query string, at time.Time) string {
	u := base + "/api/v1/query?" + url.Values{"query": {query}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// promCount is a query's single value, 0 when it has none yet.
func promCount(t *testing.T, base, query string) float64 {
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		}
	}
	if err := json.Unmarshal([]byte(promRaw(t, base, query, time.Now())), &r); err != nil || len(r.Data.Result) != 1 {
		return 0
	}
	v, _ := strconv.ParseFloat(r.Data.Result[0].Value[1].(string), 64)
	return v
}
