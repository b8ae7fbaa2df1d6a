package scrape

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/internal/yamlpos"

	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// parseConfigs reads scrape_configs YAML as sentinel.yaml would.
func parseConfigs(t testing.TB, src string) []config.ScrapeConfig {
	t.Helper()
	d := &yamlpos.Decoder{File: "test.yaml"}
	root := d.Parse([]byte(src))
	top := d.Mapping(root, "config", "scrape_configs")
	cfgs := config.ParseScrapeConfigs(d, top["scrape_configs"].Value, 0)
	if err := d.Err(); err != nil {
		t.Fatalf("config: %v\n%s", err, src)
	}
	return cfgs
}

type running struct {
	s   *Scraper
	rec *recorder
	reg *prometheus.Registry
}

func startScraper(t testing.TB, cfgs []config.ScrapeConfig, mod func(*Options)) *running {
	t.Helper()
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	opts := Options{Configs: cfgs, Observer: rec, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &running{s: s, rec: rec, reg: reg}
}

// waitScrapes waits until every target of the scraper has been scraped n
// times (and there are want targets), or fails after timeout.
func waitScrapes(t testing.TB, s *Scraper, want int, n uint64, timeout time.Duration) []TargetStatus {
	t.Helper()
	return testkit.WaitFor(t, fmt.Sprintf("%d targets scraped %d times each", want, n), timeout, func() ([]TargetStatus, bool) {
		ts := s.Targets()
		ok := len(ts) == want
		for _, st := range ts {
			ok = ok && st.Scrapes >= n
		}
		return ts, ok
	})
}

func hostOf(u string) string { return strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://") }

// growingHistogram serves a histogram whose le=0.5 bucket grows by 1 each request.
func growingHistogram() http.HandlerFunc {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		v := n.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# TYPE req_seconds histogram\n"+histText("req_seconds", `verb="GET"`, bounds4, []float64{0, float64(v), float64(v), float64(v)}))
	}
}

func TestTargetFailuresAreIsolated(t *testing.T) {
	good := httptest.NewServer(growingHistogram())
	defer good.Close()
	malformed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "req_seconds_bucket{le=\"1\" 3\n")
	}))
	defer malformed.Close()
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for i := 0; i < 200; i++ {
			fmt.Fprintf(w, "some_gauge{i=\"%d\"} 1\n", i)
		}
	}))
	defer huge.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	status := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusServiceUnavailable)
	}))
	defer status.Close()
	selfSigned := httptest.NewUnstartedServer(growingHistogram())
	selfSigned.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes fail on purpose
	selfSigned.StartTLS()
	defer selfSigned.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedAddr := hostOf(closed.URL)
	closed.Close()

	cfgs := parseConfigs(t, fmt.Sprintf(`
scrape_configs:
  - job_name: plain
    scrape_interval: 1s
    scrape_timeout: 500ms
    static_configs: [{targets: [%q, %q, %q, %q, %q, %q]}]
  - job_name: tls
    scrape_interval: 1s
    scrape_timeout: 900ms
    scheme: https
    static_configs: [{targets: [%q]}]
`, hostOf(good.URL), hostOf(malformed.URL), hostOf(huge.URL), hostOf(slow.URL), hostOf(status.URL), closedAddr, hostOf(selfSigned.URL)))
	r := startScraper(t, cfgs, func(o *Options) { o.MaxBodyBytes = 1024 })
	ts := waitScrapes(t, r.s, 7, 3, 60*time.Second)

	wantReason := map[string]string{
		hostOf(good.URL): "", hostOf(malformed.URL): ReasonParse, hostOf(huge.URL): ReasonBodyTooLarge,
		hostOf(slow.URL): ReasonTimeout, hostOf(status.URL): ReasonHTTPStatus, closedAddr: ReasonConnection,
		hostOf(selfSigned.URL): ReasonTLS,
	}
	for _, st := range ts {
		inst := st.Labels["instance"]
		reason, ok := wantReason[inst]
		if !ok {
			t.Errorf("unexpected target %+v", st)
			continue
		}
		wantHealth := HealthBad
		if reason == "" {
			wantHealth = HealthGood
		}
		if st.Health != wantHealth || st.LastErrorReason != reason || (reason != "") != (st.LastError != "") {
			t.Errorf("%s: health %q reason %q error %q; want %q %q", inst, st.Health, st.LastErrorReason, st.LastError, wantHealth, reason)
		}
		if st.LastScrape.IsZero() || st.ScrapePool != st.Labels["job"] {
			t.Errorf("%s: status %+v", inst, st)
		}
		if got := testutil.ToFloat64(r.s.metrics.up.WithLabelValues(st.Labels["job"], inst)); (got == 1) != (reason == "") {
			t.Errorf("%s: sentinel_scrape_up = %v", inst, got)
		}
		if reason != "" {
			// Every failed scrape is counted, under its reason. On two busy
			// cores one of them may also have timed out: the latest reason
			// is counted, and all reasons add up to the failures.
			var all float64
			for _, rs := range []string{ReasonParse, ReasonBodyTooLarge, ReasonTimeout, ReasonHTTPStatus, ReasonConnection, ReasonTLS} {
				all += testutil.ToFloat64(r.s.metrics.errors.WithLabelValues(st.Labels["job"], inst, rs))
			}
			if got := testutil.ToFloat64(r.s.metrics.errors.WithLabelValues(st.Labels["job"], inst, reason)); got < 1 || all < 3 {
				t.Errorf("%s: sentinel_scrape_errors_total{reason=%q} = %v, %v over all reasons; want ≥ 1 and ≥ 3", inst, reason, got, all)
			}
		}
	}
	if st := find(ts, hostOf(slow.URL)); st.LastScrapeDuration > 1 {
		t.Errorf("slow target took %vs: the timeout did not cut it off", st.LastScrapeDuration)
	}
	// The good target went on: every scrape after the first added one
	// observation in (0.1, 0.5].
	var total uint64
	for _, o := range r.rec.take() {
		if o.Instance != hostOf(good.URL) || o.LE != 0.5 {
			t.Errorf("observation from the wrong target or bucket: %+v", o)
		}
		total += o.Count
	}
	if total < 2 {
		t.Errorf("good target gave %d observations, want ≥ 2", total)
	}
	if n, err := testutil.GatherAndCount(r.reg, "sentinel_scrape_up", "sentinel_scrape_duration_seconds", "sentinel_scrape_samples"); err != nil || n < 7+7+1 {
		t.Errorf("metrics: %d series, %v", n, err)
	}
}

func find(ts []TargetStatus, instance string) TargetStatus {
	for _, st := range ts {
		if st.Labels["instance"] == instance {
			return st
		}
	}
	return TargetStatus{}
}

// writePEM writes a TLS server's certificate as a CA file.
func writeCA(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.crt")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHeadersAuthAndTLS(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]*http.Request{}
	handler := func(name string) http.HandlerFunc {
		h := growingHistogram()
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[name] = append(seen[name], r.Clone(context.Background()))
			mu.Unlock()
			h(w, r)
		}
	}
	bearer := httptest.NewTLSServer(handler("bearer"))
	defer bearer.Close()
	basic := httptest.NewServer(handler("basic"))
	defer basic.Close()

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("first-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgs := parseConfigs(t, fmt.Sprintf(`
scrape_configs:
  - job_name: bearer
    scrape_interval: 100ms
    scheme: https
    metrics_path: /custom/metrics
    bearer_token_file: %s
    tls_config: {ca_file: %s}
    static_configs: [{targets: [%q], labels: {cluster: c1}}]
  - job_name: basic
    scrape_interval: 100ms
    basic_auth: {username: alice, password: s3cret}
    static_configs: [{targets: [%q]}]
`, tokenFile, writeCA(t, bearer), hostOf(bearer.URL), hostOf(basic.URL)))
	r := startScraper(t, cfgs, nil)
	waitScrapes(t, r.s, 2, 2, 10*time.Second)
	// A rotated token is read again, as the kubelet rotates projected tokens.
	if err := os.WriteFile(tokenFile, []byte("second-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		reqs := seen["bearer"]
		last := reqs[len(reqs)-1].Header.Get("Authorization")
		mu.Unlock()
		if last != "Bearer second-token" {
			return fmt.Errorf("token file not re-read: last Authorization %q", last)
		}
		return nil
	})

	mu.Lock()
	defer mu.Unlock()
	if got := seen["bearer"][0].Header.Get("Authorization"); got != "Bearer first-token" {
		t.Errorf("first Authorization %q", got)
	}
	if p := seen["bearer"][0].URL.Path; p != "/custom/metrics" {
		t.Errorf("path %q", p)
	}
	u, p, ok := seen["basic"][0].BasicAuth()
	if !ok || u != "alice" || p != "s3cret" {
		t.Errorf("basic auth %q %q %v", u, p, ok)
	}
	for _, name := range []string{"bearer", "basic"} {
		req := seen[name][0]
		accept := req.Header.Get("Accept")
		if accept != acceptHeader || !strings.HasPrefix(accept, "application/openmetrics-text;version=1.0.0") {
			t.Errorf("%s: Accept %q", name, accept)
		}
		if req.Header.Get("X-Prometheus-Scrape-Timeout-Seconds") == "" {
			t.Errorf("%s: no scrape timeout header", name)
		}
	}
	for _, st := range r.s.Targets() {
		if st.Health != HealthGood {
			t.Errorf("%s: %+v", st.ScrapePool, st)
		}
		if st.ScrapePool == "bearer" && (st.Labels["cluster"] != "c1" || !strings.HasPrefix(st.ScrapeURL, "https://")) {
			t.Errorf("bearer target %+v", st)
		}
	}
}

func TestTargetsHandler(t *testing.T) {
	srv := httptest.NewServer(growingHistogram())
	defer srv.Close()
	r := startScraper(t, parseConfigs(t, fmt.Sprintf(`
scrape_configs: [{job_name: apiserver, scrape_interval: 100ms, static_configs: [{targets: [%q]}]}]`, hostOf(srv.URL))), nil)
	waitScrapes(t, r.s, 1, 1, 5*time.Second)
	rr := httptest.NewRecorder()
	r.s.TargetsHandler().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/api/v1/targets", nil))
	var resp struct {
		Status string
		Data   struct {
			ActiveTargets  []map[string]any `json:"activeTargets"`
			DroppedTargets []map[string]any `json:"droppedTargets"`
		}
	}
	if err := json.Unmarshal(rr.Body.Bytes(), &resp); err != nil {
		t.Fatalf("%v: %s", err, rr.Body)
	}
	if resp.Status != "success" || len(resp.Data.ActiveTargets) != 1 || resp.Data.DroppedTargets == nil {
		t.Fatalf("%s", rr.Body)
	}
	at := resp.Data.ActiveTargets[0]
	for _, k := range []string{"labels", "scrapePool", "scrapeUrl", "lastError", "lastScrape", "lastScrapeDuration", "health", "discoveredLabels", "scrapeInterval", "scrapeTimeout"} {
		if _, ok := at[k]; !ok {
			t.Errorf("activeTargets[0] has no %q: %v", k, at)
		}
	}
	if at["health"] != "up" || at["scrapeUrl"] != srv.URL+"/metrics" {
		t.Errorf("%v", at)
	}
}

func TestApplyConfigKeepsUnchangedJobs(t *testing.T) {
	a := httptest.NewServer(growingHistogram())
	defer a.Close()
	b := httptest.NewServer(growingHistogram())
	defer b.Close()
	jobA := fmt.Sprintf(`{job_name: a, scrape_interval: 100ms, static_configs: [{targets: [%q]}]}`, hostOf(a.URL))
	jobB := fmt.Sprintf(`{job_name: b, scrape_interval: 100ms, static_configs: [{targets: [%q]}]}`, hostOf(b.URL))
	r := startScraper(t, parseConfigs(t, "scrape_configs: ["+jobA+"]"), nil)
	waitScrapes(t, r.s, 1, 2, 5*time.Second)
	before := r.s.Targets()[0].Scrapes
	if err := r.s.ApplyConfig(parseConfigs(t, "scrape_configs: ["+jobA+", "+jobB+"]")); err != nil {
		t.Fatal(err)
	}
	ts := waitScrapes(t, r.s, 2, 1, 5*time.Second)
	if ts[0].ScrapePool != "a" || ts[0].Scrapes < before {
		t.Errorf("job a restarted: %d scrapes before, %+v after", before, ts[0])
	}
	if err := r.s.ApplyConfig(parseConfigs(t, "scrape_configs: ["+jobB+"]")); err != nil {
		t.Fatal(err)
	}
	if ts := r.s.Targets(); len(ts) != 1 || ts[0].ScrapePool != "b" {
		t.Errorf("after removing a: %+v", ts)
	}
	if got := testutil.ToFloat64(r.s.metrics.up.WithLabelValues("a", hostOf(a.URL))); got != 0 {
		// The series was deleted: ToFloat64 of a fresh child reads 0.
		t.Errorf("up for a removed target = %v", got)
	}
}
