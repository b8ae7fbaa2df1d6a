package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/amtest"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// start builds a notifier and runs it until the test ends.
func start(t *testing.T, opts Options) *Notifier {
	t.Helper()
	n := build(t, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2*opts.Timeout + 5*time.Second):
			t.Errorf("Run did not return after its context was cancelled")
		}
	})
	return n
}

func build(t *testing.T, opts Options) *Notifier {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func alertsOf(t *testing.T, am *amtest.Instance) map[string]*models.GettableAlert {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := am.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := make(map[string]*models.GettableAlert, len(got))
	for _, a := range got {
		byName[a.Labels["alertname"]] = a
	}
	return byName
}

// waitForAlerts waits until am holds exactly the named unresolved alerts.
func waitForAlerts(t *testing.T, am *amtest.Instance, timeout time.Duration, names ...string) map[string]*models.GettableAlert {
	t.Helper()
	var got map[string]*models.GettableAlert
	testkit.Eventually(t, timeout, func() error {
		got = alertsOf(t, am)
		have := make([]string, 0, len(got))
		for name := range got {
			have = append(have, name)
		}
		slices.Sort(have)
		want := slices.Sorted(slices.Values(names))
		if !slices.Equal(have, want) {
			return fmt.Errorf("%s has alerts %q, want %q", am.URL, have, want)
		}
		return nil
	})
	return got
}

func testAlert(name string, now time.Time) engine.Alert {
	return engine.Alert{
		Labels:      map[string]string{"alertname": name, "severity": "page", "verb": "GET"},
		Annotations: map[string]string{"summary": name + " is slow", "exemplar_trace_ids": "4bf92f3577b34da6a3ce929d0e0e4736,00f067aa0ba902b7a3ce929d0e0e4736"},
		// The API carries milliseconds.
		StartsAt:     now.Add(-time.Minute).Truncate(time.Millisecond),
		EndsAt:       now.Add(time.Hour).Truncate(time.Millisecond),
		GeneratorURL: "http://sentinel.example:9464/rules#" + name,
	}
}

func TestDeliver(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "/alertmanager"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			t.Parallel()
			am := amtest.StartWithOptions(t, amtest.Options{RoutePrefix: prefix})
			n := start(t, Options{URLs: []string{am.URL}})

			want := testAlert("KubeAPINamespacesLatencyP99", time.Now().UTC())
			n.Send(want)

			got := waitForAlerts(t, am, 10*time.Second, "KubeAPINamespacesLatencyP99")["KubeAPINamespacesLatencyP99"]
			if !mapsEqual(got.Labels, want.Labels) {
				t.Errorf("labels = %v, want %v", got.Labels, want.Labels)
			}
			if !mapsEqual(got.Annotations, want.Annotations) {
				t.Errorf("annotations = %v, want %v", got.Annotations, want.Annotations)
			}
			if s := time.Time(*got.StartsAt); !s.Equal(want.StartsAt) {
				t.Errorf("startsAt = %v, want %v", s, want.StartsAt)
			}
			if e := time.Time(*got.EndsAt); !e.Equal(want.EndsAt) {
				t.Errorf("endsAt = %v, want %v", e, want.EndsAt)
			}
			if string(got.GeneratorURL) != want.GeneratorURL {
				t.Errorf("generatorURL = %q, want %q", got.GeneratorURL, want.GeneratorURL)
			}
			if got.Status == nil || got.Status.State == nil || *got.Status.State == models.AlertStatusStateSuppressed {
				t.Errorf("status = %+v, want active or unprocessed", got.Status)
			}
			// Alertmanager may show the alert before the notifier has read its answer.
			testkit.Eventually(t, 5*time.Second, func() error {
				if v := testutil.ToFloat64(n.metrics.sent.WithLabelValues(am.URL)); v != 1 {
					return fmt.Errorf("sent_total{alertmanager=%q} = %v, want 1", am.URL, v)
				}
				if l := n.QueueLength(); l != 0 {
					return fmt.Errorf("QueueLength() = %d after delivery, want 0", l)
				}
				return nil
			})
			if v := testutil.ToFloat64(n.metrics.errors.WithLabelValues(am.URL)); v != 0 {
				t.Errorf("errors_total = %v, want 0", v)
			}
		})
	}
}

func mapsEqual(got models.LabelSet, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if gv, ok := got[k]; !ok || gv != v {
			return false
		}
	}
	return true
}

func TestResolved(t *testing.T) {
	t.Parallel()
	am := amtest.Start(t)
	n := start(t, Options{URLs: []string{am.URL}})

	now := time.Now().UTC()
	firing := testAlert("Resolving", now)
	n.Send(firing, testAlert("StillFiring", now))
	waitForAlerts(t, am, 10*time.Second, "Resolving", "StillFiring")

	resolved := firing
	resolved.EndsAt = time.Now().Add(-time.Second).Truncate(time.Millisecond)
	n.Send(resolved)
	waitForAlerts(t, am, 10*time.Second, "StillFiring")
}

func TestEveryAlertmanagerGetsEveryAlert(t *testing.T) {
	t.Parallel()
	am1 := amtest.Start(t)
	am2 := amtest.Start(t)
	// Nothing listens here: this Alertmanager must not hold up the others.
	down := "http://127.0.0.1:" + strconv.Itoa(amtest.FreePort(t))
	n := start(t, Options{URLs: []string{am1.URL, down, am2.URL}, Backoff: 50 * time.Millisecond})

	now := time.Now().UTC()
	n.Send(testAlert("A", now), testAlert("B", now))
	waitForAlerts(t, am1, 10*time.Second, "A", "B")
	waitForAlerts(t, am2, 10*time.Second, "A", "B")

	testkit.Eventually(t, 10*time.Second, func() error {
		if v := testutil.ToFloat64(n.metrics.errors.WithLabelValues(down)); v == 0 {
			return fmt.Errorf("errors_total{alertmanager=%q} = 0, want > 0", down)
		}
		return nil
	})
	for _, u := range []string{am1.URL, am2.URL} {
		testkit.Eventually(t, 5*time.Second, func() error {
			if v := testutil.ToFloat64(n.metrics.sent.WithLabelValues(u)); v != 2 {
				return fmt.Errorf("sent_total{alertmanager=%q} = %v, want 2", u, v)
			}
			return nil
		})
	}
	if l := n.QueueLength(); l != 2 {
		t.Errorf("QueueLength() = %d, want 2 (both alerts still owed to the down Alertmanager)", l)
	}
}

func TestQueueFullDropsOldest(t *testing.T) {
	t.Parallel()
	down := "http://127.0.0.1:" + strconv.Itoa(amtest.FreePort(t))
	n := build(t, Options{URLs: []string{down}, QueueCapacity: 10})

	now := time.Now().UTC()
	for i := range 15 {
		n.Send(testAlert(fmt.Sprintf("A%02d", i), now))
	}
	if l := n.QueueLength(); l != 10 {
		t.Errorf("QueueLength() = %d, want 10", l)
	}
	if v := testutil.ToFloat64(n.metrics.dropped); v != 5 {
		t.Errorf("dropped_total = %v, want 5", v)
	}
	if v := testutil.ToFloat64(n.metrics.length); v != 10 {
		t.Errorf("queue_length = %v, want 10", v)
	}
	if v := testutil.ToFloat64(n.metrics.capacity); v != 10 {
		t.Errorf("queue_capacity = %v, want 10", v)
	}
	if got, want := queuedNames(n.loops[0].queue), names(5, 15); !slices.Equal(got, want) {
		t.Errorf("queued %q, want the newest %q", got, want)
	}

	// A newer state of a queued alert replaces it: nothing more is dropped.
	resolved := testAlert("A07", now)
	resolved.EndsAt = now
	n.Send(resolved)
	if l := n.QueueLength(); l != 10 {
		t.Errorf("QueueLength() = %d after superseding, want 10", l)
	}
	if v := testutil.ToFloat64(n.metrics.dropped); v != 5 {
		t.Errorf("dropped_total = %v after superseding, want 5", v)
	}
	b := n.loops[0].queue.peek(10)
	if endsAt := time.Time(b.alerts[2].EndsAt); !endsAt.Equal(now) {
		t.Errorf("queued A07 ends at %v, want the newer state's %v", endsAt, now)
	}
}

func queuedNames(q *queue) []string {
	var got []string
	for _, a := range q.peek(q.len()).alerts {
		got = append(got, a.Labels["alertname"])
	}
	return got
}

func names(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("A%02d", i))
	}
	return out
}

// The alerts that reach Alertmanager after an overflow are the newest ones.
func TestQueueFullDeliversNewest(t *testing.T) {
	t.Parallel()
	port := amtest.FreePort(t)
	n := build(t, Options{URLs: []string{"http://127.0.0.1:" + strconv.Itoa(port)}, QueueCapacity: 4})
	now := time.Now().UTC()
	for i := range 7 {
		n.Send(testAlert(fmt.Sprintf("A%02d", i), now))
	}
	am := amtest.StartOnPort(t, port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	waitForAlerts(t, am, 10*time.Second, names(3, 7)...)
	if v := testutil.ToFloat64(n.metrics.dropped); v != 3 {
		t.Errorf("dropped_total = %v, want 3", v)
	}
}

// An Alertmanager that is down when the alert is sent, and comes up 20s
// later, still gets it: the notifier retries with backoff (default settings).
func TestLateAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about half a minute")
	}
	t.Parallel()
	begin := time.Now()
	port := amtest.FreePort(t)
	amURL := "http://127.0.0.1:" + strconv.Itoa(port)
	n := start(t, Options{URLs: []string{amURL}})
	n.Send(testAlert("Late", time.Now().UTC()))

	// Until Alertmanager starts, every attempt fails and the alert stays queued.
	time.Sleep(20 * time.Second)
	if v := testutil.ToFloat64(n.metrics.errors.WithLabelValues(amURL)); v < 3 {
		t.Errorf("errors_total = %v after 20s of a down Alertmanager, want >= 3 retries", v)
	}
	if l := n.QueueLength(); l != 1 {
		t.Fatalf("QueueLength() = %d while Alertmanager is down, want 1", l)
	}

	am := amtest.StartOnPort(t, port)
	waitForAlerts(t, am, 60*time.Second-time.Since(begin), "Late")
	t.Logf("delivered %v after the alert was sent", time.Since(begin).Round(time.Second))
	testkit.Eventually(t, 5*time.Second, func() error {
		if v := testutil.ToFloat64(n.metrics.sent.WithLabelValues(amURL)); v != 1 {
			return fmt.Errorf("sent_total = %v, want 1", v)
		}
		return nil
	})
}

// batchRecorder is a reverse proxy in front of a real Alertmanager that
// records the number of alerts in each POST.
type batchRecorder struct {
	mu      sync.Mutex
	batches []int
	bodies  []int // bytes of each POST
}

func (r *batchRecorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

func proxyTo(t *testing.T, target string) (*httptest.Server, *batchRecorder) {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &batchRecorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost && req.URL.Path == "/api/v2/alerts" {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var alerts []json.RawMessage
			if err := json.Unmarshal(body, &alerts); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rec.mu.Lock()
			rec.batches = append(rec.batches, len(alerts))
			rec.bodies = append(rec.bodies, len(body))
			rec.mu.Unlock()
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

func TestBatchesAreSplit(t *testing.T) {
	t.Parallel()
	am := amtest.Start(t)
	proxy, rec := proxyTo(t, am.URL)
	n := build(t, Options{URLs: []string{proxy.URL}, MaxBatchSize: 3})
	now := time.Now().UTC()
	var alerts []engine.Alert
	for i := range 10 {
		alerts = append(alerts, testAlert(fmt.Sprintf("A%02d", i), now))
	}
	n.Send(alerts...) // before Run: the queue holds all ten when sending starts

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	defer func() { cancel(); <-done }()

	waitForAlerts(t, am, 10*time.Second, names(0, 10)...)
	if got, want := rec.sizes(), []int{3, 3, 3, 1}; !slices.Equal(got, want) {
		t.Errorf("batch sizes = %v, want %v", got, want)
	}
}

// Alertmanager answers 400 to a batch with an invalid alert and keeps the
// valid ones; retrying would never succeed and would block the queue.
func TestInvalidAlertDoesNotBlockQueue(t *testing.T) {
	t.Parallel()
	am := amtest.Start(t)
	n := start(t, Options{URLs: []string{am.URL}, MaxBatchSize: 1})
	now := time.Now().UTC()
	n.Send(engine.Alert{Labels: map[string]string{}, StartsAt: now}, testAlert("Valid", now))
	waitForAlerts(t, am, 10*time.Second, "Valid")
	testkit.Eventually(t, 5*time.Second, func() error {
		if l := n.QueueLength(); l != 0 {
			return fmt.Errorf("QueueLength() = %d, want 0", l)
		}
		return nil
	})
	if v := testutil.ToFloat64(n.metrics.errors.WithLabelValues(am.URL)); v != 1 {
		t.Errorf("errors_total = %v, want 1 (the invalid alert)", v)
	}
}

// On shutdown, what is queued gets one last attempt.
func TestFinalFlush(t *testing.T) {
	t.Parallel()
	am := amtest.Start(t)
	down := "http://127.0.0.1:" + strconv.Itoa(amtest.FreePort(t))
	n := build(t, Options{URLs: []string{am.URL, down}})
	now := time.Now().UTC()
	n.Send(testAlert("A", now), testAlert("B", now))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		n.Run(ctx)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	waitForAlerts(t, am, 5*time.Second, "A", "B")
	if v := testutil.ToFloat64(n.metrics.dropped); v != 2 {
		t.Errorf("dropped_total = %v, want 2 (undelivered to %s at shutdown)", v, down)
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no URL", Options{}},
		{"bad scheme", Options{URLs: []string{"ftp://127.0.0.1:9093"}}},
		{"no host", Options{URLs: []string{"http:///alertmanager"}}},
		{"unparsable", Options{URLs: []string{"http://127.0.0.1:port"}}},
		{"query", Options{URLs: []string{"http://127.0.0.1:9093/?x=1"}}},
		{"duplicate", Options{URLs: []string{"http://127.0.0.1:9093", "http://127.0.0.1:9093/"}}},
		{"negative capacity", Options{URLs: []string{"http://127.0.0.1:9093"}, QueueCapacity: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil {
				t.Errorf("New(%+v) succeeded, want an error", tc.opts)
			}
		})
	}
}

func TestNewRegistersMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Options{URLs: []string{"http://127.0.0.1:9093"}, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"sentinel_notifications_dropped_total",
		"sentinel_notifications_errors_total",
		"sentinel_notifications_queue_capacity",
		"sentinel_notifications_queue_length",
		"sentinel_notifications_sent_total",
	}
	if n, err := testutil.GatherAndCount(reg, want...); err != nil || n != len(want) {
		t.Errorf("gathered %d of %v (err %v)", n, want, err)
	}
	if _, err := New(Options{URLs: []string{"http://127.0.0.1:9093"}, Registerer: reg}); err == nil {
		t.Errorf("second New on the same registry succeeded, want a duplicate registration error")
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		raw, basePath, name string
	}{
		{"http://127.0.0.1:9093", "/api/v2", "http://127.0.0.1:9093"},
		{"http://127.0.0.1:9093/", "/api/v2", "http://127.0.0.1:9093"},
		{"https://am.example/alertmanager", "/alertmanager/api/v2", "https://am.example/alertmanager"},
		{"http://am:9093/alertmanager/", "/alertmanager/api/v2", "http://am:9093/alertmanager"},
		{"http://user:secret@am:9093", "/api/v2", "http://user:xxxxx@am:9093"},
	} {
		got, err := parseURL(tc.raw)
		if err != nil {
			t.Errorf("parseURL(%q): %v", tc.raw, err)
			continue
		}
		if got.basePath != tc.basePath || got.name != tc.name {
			t.Errorf("parseURL(%q) = base path %q, name %q; want %q, %q", tc.raw, got.basePath, got.name, tc.basePath, tc.name)
		}
	}
}
