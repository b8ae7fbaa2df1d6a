package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// apiAlert is an entry of /api/v1/alerts.
type apiAlertEntry struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"`
	ActiveAt string            `json:"activeAt"`
}

func (p *process) alerts(t *testing.T) []apiAlertEntry {
	t.Helper()
	resp, err := http.Get("http://" + p.web + "/api/v1/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct{ Alerts []apiAlertEntry }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Data.Alerts
}

// postedAlerts is a stand-in Alertmanager that records what it is sent.
type postedAlerts struct {
	mu     sync.Mutex
	alerts []postedAlert
}

type postedAlert struct {
	Labels   map[string]string `json:"labels"`
	StartsAt time.Time         `json:"startsAt"`
	EndsAt   time.Time         `json:"endsAt"`
}

func (p *postedAlerts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var batch []postedAlert
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&batch) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.alerts = append(p.alerts, batch...)
	p.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// take returns what was posted since the last take.
func (p *postedAlerts) take() []postedAlert {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.alerts
	p.alerts = nil
	return out
}

// TestKillAfterFreshTransition: an alert that began firing after the last
// periodic snapshot (an hour apart here, so there is none) keeps its
// activeAt and the startsAt it is sent with across kill -9, because a
// change of alert state is snapshotted at once.
func TestKillAfterFreshTransition(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := sentinelBinary(t)
	am := &postedAlerts{}
	srv := httptest.NewServer(am)
	defer srv.Close()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(restartRules), 0o644)
	cfg := filepath.Join(dir, "sentinel.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
global: {evaluation_interval: 1s}
rule_files: [rules.yaml]
storage: {path: %q, snapshot_interval: 1h}
alerting: {alertmanagers: [{url: %q}], resend_delay: 1s}
`, data, srv.URL)), 0o644)
	web, otlp := testkit.FreeAddr(t), testkit.FreeAddr(t)
	args := []string{"run", "--config.file=" + cfg, "--web.listen-address=" + web,
		"--otlp.grpc-address=" + testkit.FreeAddr(t), "--otlp.http-address=" + otlp}
	a := startProcess(t, bin, args, web, otlp)

	var seq uint64
	for i := 0; i < 8; i++ {
		postSpans(t, []string{otlp}, 20, 20*time.Millisecond, &seq)
		postSpans(t, []string{otlp}, 10, 2*time.Second, &seq)
		time.Sleep(500 * time.Millisecond)
	}
	firing := func(p *process) (apiAlertEntry, bool) {
		for _, al := range p.alerts(t) {
			if al.Labels["alertname"] == "NamespacesSlow" && al.State == "firing" {
				return al, true
			}
		}
		return apiAlertEntry{}, false
	}
	sentStartsAt := func() (time.Time, bool) {
		for _, al := range am.take() {
			if al.Labels["alertname"] == "NamespacesSlow" {
				return al.StartsAt, true
			}
		}
		return time.Time{}, false
	}
	before := testkit.WaitFor(t, "NamespacesSlow firing", 20*time.Second, func() (apiAlertEntry, bool) { return firing(a) })
	startsAt := testkit.WaitFor(t, "the alert sent", 20*time.Second, sentStartsAt)
	// It fired `for` (3s) after activeAt; wait for a snapshot written
	// after that (another rule's transition may have made an earlier one).
	activeAt, err := time.Parse(time.RFC3339Nano, before.ActiveAt)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "a snapshot after the alert began firing (snapshot_interval is 1h)", 10*time.Second, func() (bool, bool) {
		fi, err := os.Stat(filepath.Join(data, snapshotFile))
		return true, err == nil && fi.ModTime().After(activeAt.Add(3*time.Second))
	})

	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	am.take()
	a = startProcess(t, bin, args, web, otlp)

	after, ok := firing(a)
	if !ok {
		t.Fatalf("after kill -9 NamespacesSlow is not firing: %+v\n%s", a.alerts(t), a.logs.String())
	}
	if after.ActiveAt != before.ActiveAt {
		t.Fatalf("activeAt %s after kill -9, was %s", after.ActiveAt, before.ActiveAt)
	}
	if got := testkit.WaitFor(t, "the alert sent after the restart", 20*time.Second, sentStartsAt); !got.Equal(startsAt) {
		t.Fatalf("sent with startsAt %v after kill -9, was %v", got, startsAt)
	}
}

// TestFinalSnapshotFailureExitsNonZero: when the snapshot at shutdown
// cannot be written (the storage path replaced by a file), sentinel says
// so in a log line and in its exit status.
func TestFinalSnapshotFailureExitsNonZero(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := sentinelBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(restartRules), 0o644)
	cfg := filepath.Join(dir, "sentinel.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("rule_files: [rules.yaml]\nstorage: {path: %q, snapshot_interval: 1h}\n", data)), 0o644)
	web := testkit.FreeAddr(t)
	p := startProcess(t, bin, []string{"run", "--config.file=" + cfg, "--web.listen-address=" + web,
		"--otlp.grpc-address=" + testkit.FreeAddr(t), "--otlp.http-address=" + testkit.FreeAddr(t)}, web, "")
	os.RemoveAll(data)
	if err := os.WriteFile(data, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	err := p.cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("exit %v after a failed final snapshot, want a non-zero status\n%s", err, p.logs.String())
	}
	if !strings.Contains(p.logs.String(), "final state snapshot failed") {
		t.Fatalf("no log line says the final snapshot failed:\n%s", p.logs.String())
	}
}

// newStorageDaemon builds (without running) a daemon over dir/data with
// extra storage settings, as `sentinel run` would at start.
func newStorageDaemon(t *testing.T, dir, storage string) (*daemon, *testkit.SyncBuffer, error) {
	t.Helper()
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(restartRules), 0o644)
	cfgFile := filepath.Join(dir, "sentinel.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
rule_files: [rules.yaml]
otlp: {grpc: {listen_address: "127.0.0.1:0"}, http: {listen_address: "127.0.0.1:0"}}
storage: {path: %q, snapshot_interval: 1h%s}
`, filepath.Join(dir, "data"), storage)), 0o644)
	cfg, err := config.Load(cfgFile)
	if err != nil {
		return nil, nil, err
	}
	logs := &testkit.SyncBuffer{}
	d, err := newDaemon(daemonOptions{Config: cfg, ConfigFile: cfgFile, WebAddress: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err == nil {
		t.Cleanup(func() { d.webLn.Close() })
	}
	return d, logs, err
}

// TestStaleSnapshotTempsRemovedAtStart: the temporary files of snapshots a
// crash interrupted are removed at start; nothing else is touched.
func TestStaleSnapshotTempsRemovedAtStart(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	for _, name := range []string{snapshotFile + ".tmp-123", snapshotFile + ".tmp-9876543", "keep-me"} {
		os.WriteFile(filepath.Join(data, name), []byte("partial"), 0o644)
	}
	if _, _, err := newStorageDaemon(t, dir, ""); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(data, "*"))
	if len(left) != 1 || filepath.Base(left[0]) != "keep-me" {
		t.Fatalf("left in the storage path: %v", left)
	}
}

// TestOversizedSnapshotIsRefused: a snapshot over storage.max_snapshot_bytes
// is refused at start by its size (logged, counted, sentinel starts
// fresh); one that would grow over it is not written, and the previous
// snapshot stays whole.
func TestOversizedSnapshotIsRefused(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	big := make([]byte, 2<<20)
	os.WriteFile(filepath.Join(data, snapshotFile), big, 0o644)
	d, logs, err := newStorageDaemon(t, dir, ", max_snapshot_bytes: 1048576")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "larger than storage.max_snapshot_bytes") {
		t.Fatalf("no log line says why the snapshot was ignored:\n%s", logs.String())
	}
	if n := testutil.ToFloat64(d.snapshotTooLarge.WithLabelValues("restore")); n != 1 {
		t.Fatalf("sentinel_snapshot_too_large_total{op=restore} = %v", n)
	}

	// A good snapshot, then state that outgrows the cap.
	if err := d.saveSnapshot("test"); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(filepath.Join(data, snapshotFile))
	var seq uint64
	if err := d.receiver.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.receiver.Shutdown(t.Context()) })
	postSpans(t, []string{d.receiver.HTTPAddr().String()}, 50, 2*time.Second, &seq)
	d.engine.Evaluate(t.Context(), time.Now())
	s := d.engine.Settings()
	s.MaxSnapshotBytes = int64(len(good)) + 10
	if err := d.engine.Apply(s); err != nil {
		t.Fatal(err)
	}
	if err := d.saveSnapshot("test"); !errors.Is(err, engine.ErrSnapshotTooLarge) {
		t.Fatalf("save over the cap: %v", err)
	}
	if n := testutil.ToFloat64(d.snapshotTooLarge.WithLabelValues("write")); n != 1 {
		t.Fatalf("sentinel_snapshot_too_large_total{op=write} = %v", n)
	}
	now, _ := os.ReadFile(filepath.Join(data, snapshotFile))
	if string(now) != string(good) {
		t.Fatal("the good snapshot was replaced by one over the cap")
	}
	if tmps, _ := filepath.Glob(filepath.Join(data, snapshotFile+".tmp-*")); len(tmps) != 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
}
