package web

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestEndpoints: what each endpoint answers from what Options give it;
// reload is called only when the lifecycle guard lets the request through.
func TestEndpoints(t *testing.T) {
	reloads := 0
	reg := prometheus.NewRegistry()
	notReady := errors.New("OTLP ingestion refuses every export")
	readyErr := error(nil)
	base := serve(t, Options{
		Rules:           &fakeRules{},
		Ready:           func() error { return readyErr },
		Reload:          func() ([]string, error) { reloads++; return []string{"storage.path"}, nil },
		EnableLifecycle: true,
		Gatherer:        reg,
		Registerer:      reg,
	})
	cases := []struct {
		name, method, path string
		headers            map[string]string
		ready              error
		code               int
		body               string
		reloaded           bool
	}{
		{name: "healthy", method: "GET", path: "/-/healthy", code: 200, body: "Sentinel is Healthy."},
		{name: "ready", method: "GET", path: "/-/ready", code: 200, body: "Sentinel is Ready."},
		{name: "not ready says why", method: "GET", path: "/-/ready", ready: notReady, code: 503, body: "Sentinel is not ready: OTLP ingestion refuses every export"},
		{name: "rules", method: "GET", path: "/api/v1/rules", code: 200, body: `{"status":"success","data":{"groups":[]}}`},
		{name: "alerts", method: "GET", path: "/api/v1/alerts", code: 200, body: `{"status":"success","data":{"alerts":[]}}`},
		{name: "metrics", method: "GET", path: "/metrics", code: 200, body: "sentinel_status_page_errors_total 0"},
		{name: "no targets handler", method: "GET", path: "/api/v1/targets", code: 404},
		{name: "reload", method: "POST", path: "/-/reload", code: 200, body: "reloaded\nstorage.path changed but takes effect on restart only", reloaded: true},
		{name: "reload by GET", method: "GET", path: "/-/reload", code: 405},
		{name: "cross-origin reload", method: "POST", path: "/-/reload", headers: map[string]string{"Sec-Fetch-Site": "cross-site"}, code: 403, body: "cross-origin"},
		{name: "form post reload", method: "POST", path: "/-/reload", headers: map[string]string{"Sec-Fetch-Site": "same-origin", "Content-Type": "text/plain"}, code: 403, body: "form post"},
		{name: "unknown path", method: "GET", path: "/nope", code: 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			readyErr, reloads = tc.ready, 0
			req, _ := http.NewRequest(tc.method, base+tc.path, nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.body) {
				t.Errorf("%d %q, want %d with %q", resp.StatusCode, body, tc.code, tc.body)
			}
			if (reloads == 1) != tc.reloaded {
				t.Errorf("reload called %d times", reloads)
			}
		})
	}
	if got := refusals(t, reg, "cross_origin"); got != 1 {
		t.Errorf("cross-origin refusals counted %v times", got)
	}
}

// refusals is sentinel_web_lifecycle_refused_total{reason}.
func refusals(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == "sentinel_web_lifecycle_refused_total" && l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestEndpointsDisabledLifecycle: without --web.enable-lifecycle a reload
// is refused, and the daemon's reload is not called.
func TestEndpointsDisabledLifecycle(t *testing.T) {
	called := false
	base := serve(t, Options{Rules: &fakeRules{}, Reload: func() ([]string, error) { called = true; return nil, nil }})
	resp, err := http.Post(base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || called {
		t.Errorf("%d, reload called %v", resp.StatusCode, called)
	}
	if code, _, _ := get(t, base+"/-/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("ready without a readiness check: %d", code)
	}
}
