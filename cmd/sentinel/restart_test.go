package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/testkit"
	"github.com/kube-sentinel/sentinel/web"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kube-sentinel/sentinel/internal/amtest"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// sentinelBinary builds cmd/sentinel once per test run.
func sentinelBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sentinel-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "sentinel")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// process is a sentinel binary running as its own process.
type process struct {
	cmd           *exec.Cmd
	web, otlpHTTP string
	logs          *testkit.SyncBuffer
	args          []string
	bin           string
}

func startProcess(t *testing.T, bin string, args []string, web, otlpHTTP string) *process {
	t.Helper()
	p := &process{web: web, otlpHTTP: otlpHTTP, logs: &testkit.SyncBuffer{}, args: args, bin: bin}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	testkit.WaitFor(t, "sentinel to be ready", 20*time.Second, func() (bool, bool) {
		resp, err := http.Get("http://" + web + "/-/ready")
		if err != nil {
			return false, false
		}
		resp.Body.Close()
		return true, resp.StatusCode == 200
	})
	return p
}

func (p *process) rules(t *testing.T) []web.Rule {
	t.Helper()
	return fetchRules(t, "http://"+p.web)
}

func (p *process) rule(t *testing.T, name string) web.Rule {
	for _, r := range p.rules(t) {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no rule %s", name)
	return web.Rule{}
}

const restartRules = `
groups:
  - name: restart
    interval: 1s
    rules:
      - alert: NamespacesSlow
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        objective: {quantile: 0.9, threshold: 1s}
        window: 1m
        for: 3s
        labels: {severity: page}
      - slo: NamespacesBudget
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        objective: {target: 99, latency: 1s}
        period: 1d
        burn_rate_alerts: [{severity: page, long_window: 1m, short_window: 10s, factor: 2, for: 0s}]
`

// postSpans sends n apiserver SERVER spans on namespaces over OTLP/HTTP to
// every address, ending now, taking took each.
func postSpans(t *testing.T, addrs []string, n int, took time.Duration, seq *uint64) {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "apiserver")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	end := time.Now()
	for i := 0; i < n; i++ {
		*seq++
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[8:], *seq)
		tid[0] = 0x5e
		s := spans.AppendEmpty()
		s.SetTraceID(tid)
		s.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
		s.SetKind(ptrace.SpanKindServer)
		s.SetName("GET /api/v1/namespaces/{:name}")
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-took)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		s.Attributes().PutStr("http.method", "GET")
		s.Attributes().PutStr("http.target", "/api/v1/namespaces/default")
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		resp, err := http.Post("http://"+a+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("post to %s: %v", a, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("post to %s: %d", a, resp.StatusCode)
		}
	}
}

// TestRestartKeepsState is the durability promise with the real binary:
// kill -9 mid-incident and start again; the firing alert is still firing
// at Alertmanager with its original startsAt (without going back through
// `for`), and the error budget matches an instance that was never
// interrupted within one snapshot interval's worth of traffic.
func TestRestartKeepsState(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := sentinelBinary(t)
	am := amtest.Start(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(restartRules), 0o644)
	configFor := func(name string) string {
		path := filepath.Join(dir, name+".yaml")
		os.WriteFile(path, []byte(fmt.Sprintf(`
global: {evaluation_interval: 1s, external_labels: {instance: %s}}
rule_files: [rules.yaml]
storage: {path: %q, snapshot_interval: 1s}
alerting: {alertmanagers: [{url: %q}], resend_delay: 2s}
`, name, filepath.Join(dir, "data-"+name), am.URL)), 0o644)
		return path
	}
	start := func(name string, web, otlp string) *process {
		return startProcess(t, bin, []string{"run", "--config.file=" + configFor(name), "--web.listen-address=" + web,
			"--otlp.grpc-address=" + testkit.FreeAddr(t), "--otlp.http-address=" + otlp}, web, otlp)
	}
	webA, otlpA := testkit.FreeAddr(t), testkit.FreeAddr(t)
	a := start("a", webA, otlpA)
	b := start("b", testkit.FreeAddr(t), testkit.FreeAddr(t))
	addrs := []string{a.otlpHTTP, b.otlpHTTP}

	// The incident: a third of the requests take 2s, for 6s.
	var seq uint64
	for i := 0; i < 12; i++ {
		postSpans(t, addrs, 20, 20*time.Millisecond, &seq)
		postSpans(t, addrs, 10, 2*time.Second, &seq)
		time.Sleep(500 * time.Millisecond)
	}
	firing := testkit.WaitFor(t, "instance a's alert at Alertmanager", 20*time.Second, func() (time.Time, bool) {
		for _, al := range amAlerts(t, am) {
			if al.Labels["alertname"] == "NamespacesSlow" && al.Labels["instance"] == "a" {
				return time.Time(*al.StartsAt), true
			}
		}
		return time.Time{}, false
	})

	// Let a snapshot cover everything, then kill a without warning.
	time.Sleep(2500 * time.Millisecond)
	budgetB := *b.rule(t, "NamespacesBudget").Series[0].BudgetRemaining
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	a = start("a", webA, otlpA)

	r := a.rule(t, "NamespacesSlow")
	if r.State != "firing" {
		t.Fatalf("after restart the alert is %s: it went back through for", r.State)
	}
	slo := a.rule(t, "NamespacesBudget")
	if len(slo.Series) != 1 || slo.Series[0].BudgetRemaining == nil {
		t.Fatalf("budget not restored: %+v", slo)
	}
	// One snapshot interval (1s) of this traffic is at most 60 requests,
	// 20 of them bad, out of the total seen: that much budget at most.
	total := float64(slo.Series[0].Observations)
	bound := 20.0 / total / 0.01
	if d := math.Abs(*slo.Series[0].BudgetRemaining - budgetB); d > bound {
		t.Fatalf("budget after restart %v, uninterrupted %v: differs by %v > %v", *slo.Series[0].BudgetRemaining, budgetB, d, bound)
	}
	// Alertmanager still has a's alert firing with its first startsAt, after a resend.
	time.Sleep(3 * time.Second)
	found := false
	for _, al := range amAlerts(t, am) {
		if al.Labels["alertname"] == "NamespacesSlow" && al.Labels["instance"] == "a" {
			found = true
			if !time.Time(*al.StartsAt).Equal(firing) || *al.Status.State != "active" {
				t.Fatalf("after restart: startsAt %v state %s, want %v active", time.Time(*al.StartsAt), *al.Status.State, firing)
			}
		}
	}
	if !found {
		t.Fatal("a's alert is gone from Alertmanager after the restart")
	}
	testkit.WaitFor(t, "the log to say the state was restored", 30*time.Second, func() (bool, bool) {
		return true, strings.Contains(a.logs.String(), "restored state from snapshot")
	})
}

// TestCorruptSnapshotIsIgnored: garbage at the snapshot path is logged
// and ignored; sentinel starts fresh.
func TestCorruptSnapshotIsIgnored(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := sentinelBinary(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	os.WriteFile(filepath.Join(dir, "data", snapshotFile), []byte("not a snapshot at all"), 0o644)
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(restartRules), 0o644)
	cfg := filepath.Join(dir, "sentinel.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("rule_files: [rules.yaml]\nstorage: {path: %q}\n", filepath.Join(dir, "data"))), 0o644)
	web := testkit.FreeAddr(t)
	p := startProcess(t, bin, []string{"run", "--config.file=" + cfg, "--web.listen-address=" + web,
		"--otlp.grpc-address=" + testkit.FreeAddr(t), "--otlp.http-address=" + testkit.FreeAddr(t)}, web, "")
	// The log reaches the test through a pipe: wait for the line.
	testkit.WaitFor(t, "the log to say the snapshot is ignored", 30*time.Second, func() (bool, bool) {
		return true, strings.Contains(p.logs.String(), "ignoring the state snapshot")
	})
	if len(p.rules(t)) != 2 {
		t.Fatal("rules not loaded")
	}
	_ = context.Background
}
