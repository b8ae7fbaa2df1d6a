package main

import (
	"context"
	"encoding/json"
	"github.com/kube-sentinel/sentinel/config"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func httpDo(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestReload(t *testing.T) {
	d := startSentinelOpts(t, e2eRules, "", func(o *daemonOptions) { o.EnableLifecycle = true })
	base := "http://" + d.webLn.Addr().String()
	rulesFile := filepath.Join(filepath.Dir(d.opts.ConfigFile), "rules.yaml")
	ruleNames := func() string {
		_, body := httpDo(t, "GET", base+"/api/v1/rules")
		var r struct {
			Data struct {
				Groups []struct{ Rules []struct{ Name string } }
			}
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				names = append(names, rule.Name)
			}
		}
		return strings.Join(names, ",")
	}
	if got := ruleNames(); got != "NamespacesGETLatency" {
		t.Fatalf("rules %q", got)
	}

	// A valid change is taken.
	os.WriteFile(rulesFile, []byte(strings.Replace(e2eRules, "NamespacesGETLatency", "Renamed", 1)), 0o644)
	if code, body := httpDo(t, "POST", base+"/-/reload"); code != 200 {
		t.Fatalf("valid reload: %d %s", code, body)
	}
	if got := ruleNames(); got != "Renamed" {
		t.Fatalf("after reload: %q", got)
	}
	if v := testutil.ToFloat64(d.reloadSuccessful); v != 1 {
		t.Fatalf("last_reload_successful %v", v)
	}

	// An invalid one is refused with its error, and the old rules stay.
	os.WriteFile(rulesFile, []byte(strings.Replace(e2eRules, "window: 8s", "window: eight", 1)), 0o644)
	code, body := httpDo(t, "POST", base+"/-/reload")
	if code != http.StatusBadRequest || !strings.Contains(body, "rules.yaml:10:17: window") {
		t.Fatalf("invalid reload: %d %s", code, body)
	}
	if got := ruleNames(); got != "Renamed" {
		t.Fatalf("invalid reload changed the rules: %q", got)
	}
	if v := testutil.ToFloat64(d.reloadSuccessful); v != 0 {
		t.Fatalf("last_reload_successful %v", v)
	}
	_, metrics := httpDo(t, "GET", base+"/metrics")
	if !strings.Contains(metrics, "sentinel_config_last_reload_successful 0") {
		t.Error("/metrics does not show the failed reload")
	}
	if code, _ := httpDo(t, "GET", base+"/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d", code)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	d := startSentinel(t, e2eRules)
	base := "http://" + d.webLn.Addr().String()
	cases := []struct {
		path     string
		code     int
		contains []string
	}{
		{"/-/healthy", 200, []string{"Healthy"}},
		{"/-/ready", 200, []string{"Ready"}},
		{"/api/v1/alerts", 200, []string{`{"status":"success","data":{"alerts":[]}}`}},
		{"/api/v1/rules", 200, []string{`"name":"NamespacesGETLatency"`, `"type":"alerting"`, `"state":"inactive"`, `"series":[]`}},
		{"/metrics", 200, []string{"sentinel_observations_total", "sentinel_spans_received_total", "sentinel_rule_evaluations_total",
			"sentinel_config_last_reload_successful 1"}},
		{"/", 200, []string{"NamespacesGETLatency"}},
		{"/debug/pprof/", 200, []string{"goroutine", "heap", "profile"}},
		{"/debug/pprof/goroutine?debug=1", 200, []string{"goroutine profile: total"}},
		{"/debug/pprof/profile?seconds=3600", 400, []string{"at most 60"}},
		{"/debug/pprof/trace?seconds=x", 400, []string{"at most 60"}},
		{"/nope", 404, nil},
	}
	for _, c := range cases {
		code, body := httpDo(t, "GET", base+c.path)
		if code != c.code {
			t.Errorf("%s: %d, want %d", c.path, code, c.code)
		}
		for _, s := range c.contains {
			if !strings.Contains(body, s) {
				t.Errorf("%s: body lacks %q:\n%s", c.path, s, body)
			}
		}
	}
}

// TestReloadKeepsFlagsAndStorage: a reload re-reads the file, but the
// command line's overrides and the running storage path stay.
func TestReloadKeepsFlagsAndStorage(t *testing.T) {
	d := startSentinel(t, e2eRules)
	before := d.cfg.Load().StoragePath
	d.opts.ConfigOverrides = func(c *config.Config) { c.OTLPHTTPAddress = d.cfg.Load().OTLPHTTPAddress }
	if _, err := d.reload(); err != nil {
		t.Fatal(err)
	}
	if got := d.cfg.Load().StoragePath; got != before {
		t.Fatalf("storage path moved from %q to %q on reload", before, got)
	}
	// And the file's own changes to storage do not move it either.
	cfgText, _ := os.ReadFile(d.opts.ConfigFile)
	os.WriteFile(d.opts.ConfigFile, []byte(strings.Replace(string(cfgText), "snapshot_interval: 1s", "snapshot_interval: 1s}\n#", 1)+"\n"), 0o644)
	if _, err := d.reload(); err != nil {
		t.Fatal(err)
	}
	if got := d.cfg.Load().StoragePath; got != before {
		t.Fatalf("storage path moved from %q to %q", before, got)
	}
}

// TestReloadKeepsState: an unchanged rule keeps its window over a reload;
// a changed one starts fresh.
func TestReloadKeepsState(t *testing.T) {
	d := startSentinel(t, e2eRules)
	var seq uint64
	postSpans(t, []string{d.receiver.HTTPAddr().String()}, 30, 20*time.Millisecond, &seq)
	observations := func() uint64 {
		d.engine.Evaluate(context.Background(), time.Now())
		for _, g := range d.engine.Status() {
			for _, r := range g.Rules {
				for _, s := range r.Series {
					return s.Observations
				}
			}
		}
		return 0
	}
	if n := observations(); n != 30 {
		t.Fatalf("%d observations before the reload, want 30", n)
	}
	if _, err := d.reload(); err != nil { // same files
		t.Fatal(err)
	}
	if n := observations(); n != 30 {
		t.Fatalf("an unchanged rule lost its window over a reload: %d observations", n)
	}
	rulesFile := filepath.Join(filepath.Dir(d.opts.ConfigFile), "rules.yaml")
	os.WriteFile(rulesFile, []byte(strings.Replace(e2eRules, "quantile: 0.99", "quantile: 0.95", 1)), 0o644)
	if _, err := d.reload(); err != nil {
		t.Fatal(err)
	}
	if n := observations(); n != 0 {
		t.Fatalf("a changed rule kept %d observations", n)
	}
}
