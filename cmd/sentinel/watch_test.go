package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// watchRules: a rule that stays as it is while another is added.
const watchRules = `
groups:
  - name: watched
    interval: 1h
    rules:
      - alert: NamespacesSlow
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        objective: {quantile: 0.9, threshold: 10s}
        window: 2h
`

const watchRuleAdded = `
      - alert: PodsSlow
        matchers: ['service.name="apiserver"', 'resource="pods"']
        objective: {quantile: 0.9, threshold: 10s}
        window: 2h
`

type labelMap map[string]string

func (m labelMap) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }

// watchDaemon runs a daemon over rulesDir/*.yaml. With interval 0 the test
// drives the watcher itself (check), so that nothing depends on timing.
func watchDaemon(t *testing.T, rulesDir string, interval time.Duration) (*daemon, *fileWatcher, *testkit.SyncBuffer) {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "sentinel.yaml")
	cfgText := fmt.Sprintf(`
rule_files: [%q]
otlp: {grpc: {listen_address: "127.0.0.1:0"}, http: {listen_address: "127.0.0.1:0"}}
storage: {path: %q, snapshot_interval: 1h}
`, filepath.Join(rulesDir, "*.yaml"), filepath.Join(dir, "data"))
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	if interval > 0 {
		d := startDaemon(t, daemonOptions{Config: cfg, ConfigFile: cfgFile, WebAddress: "127.0.0.1:0", WatchInterval: interval, Logger: logger})
		return d, d.watcher, logs
	}
	// The test drives this watcher itself (check); the daemon runs none.
	d := startDaemon(t, daemonOptions{Config: cfg, ConfigFile: cfgFile, WebAddress: "127.0.0.1:0", Logger: logger})
	w := newFileWatcher(prometheus.NewRegistry(), logger, time.Hour, d.watchedFiles, func() error { _, err := d.reload(); return err })
	w.settle = 0
	w.seen = w.fingerprint()
	return d, w, logs
}

// observationsOf evaluates now and returns each rule's observations.
func observationsOf(d *daemon) map[string]uint64 {
	d.engine.Evaluate(context.Background(), time.Now())
	out := map[string]uint64{}
	for _, g := range d.engine.Status() {
		for _, r := range g.Rules {
			out[r.Name] = 0
			for _, s := range r.Series {
				out[r.Name] += s.Observations
			}
		}
	}
	return out
}

func observeNamespaces(d *daemon, n int) {
	l := labelMap{"service.name": "apiserver", "resource": "namespaces", "span.kind": "server"}
	for range n {
		d.engine.Observe(&engine.Observation{End: time.Now(), Duration: time.Millisecond, Labels: l})
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatchReloadsKeepingWindows: editing a rule file reloads; the rule
// that did not change keeps its window. An invalid (half-written) file is
// refused, the old rules stay in force, the failure is counted, and it is
// not retried until the file changes again.
func TestWatchReloadsKeepingWindows(t *testing.T) {
	rulesDir := t.TempDir()
	rulesFile := filepath.Join(rulesDir, "rules.yaml")
	writeFile(t, rulesFile, watchRules)
	d, w, logs := watchDaemon(t, rulesDir, 0)
	ctx := context.Background()
	observeNamespaces(d, 30)
	if got := observationsOf(d); got["NamespacesSlow"] != 30 {
		t.Fatalf("before the edit: %v", got)
	}
	if w.check(ctx) {
		t.Fatal("reloaded though nothing changed")
	}

	writeFile(t, rulesFile, watchRules+watchRuleAdded)
	if !w.check(ctx) {
		t.Fatal("an edited rule file was not reloaded")
	}
	got := observationsOf(d)
	if _, ok := got["PodsSlow"]; !ok || got["NamespacesSlow"] != 30 {
		t.Fatalf("after adding a rule: %v (NamespacesSlow must keep its 30 observations)", got)
	}
	if v := testutil.ToFloat64(d.reloadSuccessful); v != 1 {
		t.Fatalf("sentinel_config_last_reload_successful %v", v)
	}

	// Half-written: cut inside the added rule.
	half := watchRules + watchRuleAdded
	writeFile(t, rulesFile, half[:strings.Index(half, "objective")+len("objective: {quan")])
	if !w.check(ctx) {
		t.Fatal("a changed (invalid) rule file was not tried")
	}
	if v := testutil.ToFloat64(d.reloadSuccessful); v != 0 {
		t.Fatalf("sentinel_config_last_reload_successful %v after an invalid rule file", v)
	}
	if v := testutil.ToFloat64(w.reloads.WithLabelValues("failure")); v != 1 {
		t.Fatalf("sentinel_config_watch_reloads_total{result=\"failure\"} %v", v)
	}
	if got := observationsOf(d); len(got) != 2 || got["NamespacesSlow"] != 30 {
		t.Fatalf("the old rules are not in force after an invalid file: %v", got)
	}
	if !strings.Contains(logs.String(), "rules.yaml:") {
		t.Errorf("the log does not name the file and position:\n%s", logs)
	}
	if w.check(ctx) {
		t.Fatal("an unchanged invalid file was tried again")
	}

	// Finished writing: loads.
	writeFile(t, rulesFile, watchRules)
	if !w.check(ctx) {
		t.Fatal("the repaired file was not reloaded")
	}
	if got := observationsOf(d); len(got) != 1 || got["NamespacesSlow"] != 30 || testutil.ToFloat64(d.reloadSuccessful) != 1 {
		t.Fatalf("after the repair: %v", got)
	}
}

// configMapDir lays out dir as the kubelet does for a ConfigMap volume:
// the files live in a timestamped directory, ..data points at it, and
// each key is a symlink through ..data. update swaps ..data atomically.
type configMapDir struct {
	t   *testing.T
	dir string
	n   int
}

func (c *configMapDir) update(files map[string]string) {
	c.t.Helper()
	c.n++
	ts := fmt.Sprintf("..2026_12_02_07_00_%02d.%d", c.n, c.n)
	if err := os.Mkdir(filepath.Join(c.dir, ts), 0o755); err != nil {
		c.t.Fatal(err)
	}
	for name, text := range files {
		writeFile(c.t, filepath.Join(c.dir, ts, name), text)
		link := filepath.Join(c.dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
}

// TestWatchConfigMapSwap: a ConfigMap update (the ..data symlink swapped,
// the rule file's own path untouched) is picked up by the running watcher.
func TestWatchConfigMapSwap(t *testing.T) {
	cm := &configMapDir{t: t, dir: t.TempDir()}
	cm.update(map[string]string{"rules.yaml": watchRules})
	d, w, _ := watchDaemon(t, cm.dir, 20*time.Millisecond)
	observeNamespaces(d, 5)
	cm.update(map[string]string{"rules.yaml": watchRules + watchRuleAdded})
	testkit.Eventually(t, 30*time.Second, func() error {
		if testutil.ToFloat64(w.reloads.WithLabelValues("success")) < 1 {
			return errors.New("the ConfigMap update was not reloaded")
		}
		return nil
	})
	if got := observationsOf(d); got["NamespacesSlow"] != 5 || len(got) != 2 {
		t.Fatalf("after the ConfigMap update: %v", got)
	}
}
