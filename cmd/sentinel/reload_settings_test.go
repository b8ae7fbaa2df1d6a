package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// noIntervalRules has a group without an interval of its own: it runs at
// global.evaluation_interval.
const noIntervalRules = `
groups:
  - name: default-interval
    rules:
      - alert: NamespacesSlow
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        objective: {quantile: 0.9, threshold: 10s}
        window: 2h
`

// runDaemonWith runs a daemon in-process over the given config text (a
// format string whose %q is the storage path) and rules.
func runDaemonWith(t *testing.T, cfgText, ruleText string) (*daemon, *testkit.SyncBuffer, string) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(ruleText), 0o644)
	cfgFile := filepath.Join(dir, "sentinel.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(cfgText, filepath.Join(dir, "data"))), 0o644)
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	d := startDaemon(t, daemonOptions{Config: cfg, ConfigFile: cfgFile, WebAddress: "127.0.0.1:0", EnableLifecycle: true,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	return d, logs, cfgFile
}

const reloadConfig = `
global: {evaluation_interval: %s, external_labels: {cluster: %s}}
rule_files: [rules.yaml]
otlp: {grpc: {listen_address: "127.0.0.1:0"}, http: {listen_address: "127.0.0.1:0"}}
storage: {path: %%q, snapshot_interval: 1h}
alerting: {resend_delay: %s, trace_url_template: %q}
`

// TestReloadChangesEvaluationInterval: a reload that changes
// global.evaluation_interval changes how often the groups without an
// interval of their own are evaluated, and the other settings the engine
// holds (resend delay, trace URL template) with it; settings that need a
// restart are named in the log and in what reload returns.
func TestReloadChangesEvaluationInterval(t *testing.T) {
	d, logs, cfgFile := runDaemonWith(t, fmt.Sprintf(reloadConfig, "1h", "one", "1m", "http://old/{{ .TraceID }}"), noIntervalRules)
	evaluations := func() float64 {
		mfs, err := d.registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "sentinel_rule_evaluations_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "default-interval" {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	if g := d.engine.Status()[0]; g.Interval != time.Hour || evaluations() != 0 {
		t.Fatalf("before: interval %v, %v evaluations", g.Interval, evaluations())
	}

	storage := strings.Replace(reloadConfig, "%%q", fmt.Sprintf("%q", d.cfg.Load().StoragePath), 1)
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(storage, "1s", "two", "5s", "http://new/{{ .TraceID }}")), 0o644)
	code, body := httpDo(t, "POST", "http://"+d.webLn.Addr().String()+"/-/reload")
	if code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if want := "reloaded\nglobal.external_labels changed but takes effect on restart only; the running value stays\n"; body != want {
		t.Errorf("reload response %q, want %q", body, want)
	}
	if !strings.Contains(logs.String(), "take effect on restart only") || !strings.Contains(logs.String(), "settings=global.external_labels") {
		t.Errorf("no log line names the restart-only setting:\n%s", logs.String())
	}
	if s := d.engine.Settings(); s.ResendDelay != 5*time.Second || s.TraceURLTemplate != "http://new/{{ .TraceID }}" || s.DefaultInterval != time.Second {
		t.Errorf("engine settings after reload: %+v", s)
	}
	if g := d.engine.Status()[0]; g.Interval != time.Second {
		t.Fatalf("after reload: interval %v, want 1s", g.Interval)
	}
	// Evaluated at the new cadence: with the old one (1h) not even once.
	testkit.WaitFor(t, "evaluations at the new 1s interval", 30*time.Second, func() (bool, bool) {
		return true, evaluations() >= 3
	})
}

// TestStatusPageTemplateErrorsAreLogged: a trace_url_template that fails
// for a real trace (it passed the config check's sample) loses the link on
// the status page, and says so in a log line naming the rule and in
// sentinel_rule_template_errors_total.
func TestStatusPageTemplateErrorsAreLogged(t *testing.T) {
	tmpl := `{{ if eq .TraceID "4bf92f3577b34da6a3ce929d0e0e4736" }}{{ .TraceID }}{{ else }}{{ .Nope }}{{ end }}`
	d, logs, _ := runDaemonWith(t, fmt.Sprintf(reloadConfig, "1s", "one", "1m", tmpl), noIntervalRules)
	var seq uint64
	postSpans(t, []string{d.receiver.HTTPAddr().String()}, 5, 20*time.Millisecond, &seq)
	d.engine.Evaluate(context.Background(), time.Now())
	code, body := httpDo(t, "GET", "http://"+d.webLn.Addr().String()+"/")
	if code != 200 || !strings.Contains(body, "NamespacesSlow") {
		t.Fatalf("status page: %d", code)
	}
	if !strings.Contains(logs.String(), "template expansion failed") || !strings.Contains(logs.String(), "rule=NamespacesSlow") {
		t.Errorf("no log line names the rule whose link failed:\n%s", logs.String())
	}
	_, metrics := httpDo(t, "GET", "http://"+d.webLn.Addr().String()+"/metrics")
	if !strings.Contains(metrics, `sentinel_rule_template_errors_total{rule="NamespacesSlow",rule_group="default-interval"}`) {
		t.Errorf("/metrics does not count the failure")
	}
}

// TestRunWaitsForItsGoroutines: when run returns, every goroutine it
// started (engine, status sampler, scraper, snapshot loop) has ended.
func TestRunWaitsForItsGoroutines(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(noIntervalRules), 0o644)
	cfgFile := filepath.Join(dir, "sentinel.yaml")
	os.WriteFile(cfgFile, []byte(strings.Replace(fmt.Sprintf(reloadConfig, "1s", "one", "1m", ""), "%q", fmt.Sprintf("%q", filepath.Join(dir, "data")), 1)), 0o644)
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		d, err := newDaemon(daemonOptions{Config: cfg, ConfigFile: cfgFile, WebAddress: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := d.start(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- d.run(ctx) }()
		testkit.WaitFor(t, "ready", 10*time.Second, func() (bool, bool) { return true, d.ready.Load() })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		for _, fn := range []string{"(*Handler).SampleStatus", "(*daemon).snapshotLoop", "(*Engine).Run"} {
			if strings.Contains(stacks, fn) {
				t.Fatalf("%s still runs after run returned", fn)
			}
		}
	}
}
