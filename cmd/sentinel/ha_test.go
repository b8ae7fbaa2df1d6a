package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kube-sentinel/sentinel/internal/amtest"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// traffic is the load generator of the restart and HA tests: every
// trafficTick it sends trafficBatch apiserver GET namespaces SERVER spans,
// one trace each, taking `took`, and routes each trace by its trace ID to
// one of the replicas that are up, as the shipped Collector's
// loadbalancing exporter does (routing_key: traceID). Spans for a replica
// that is down are lost, as they would be once the Collector's retries
// give up.
type traffic struct {
	mu      sync.Mutex
	targets []string // OTLP/HTTP addresses
	took    time.Duration
	seq     uint64
	sent    map[string]int // spans accepted, per target
}

const (
	trafficTick  = 250 * time.Millisecond
	trafficBatch = 8
	// trafficMaxTicks bounds the generator at 10 minutes, whatever the test does.
	trafficMaxTicks = 2400
)

func startTraffic(t *testing.T, took time.Duration, targets ...string) *traffic {
	tr := &traffic{targets: targets, took: took, sent: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(trafficTick)
		defer tick.Stop()
		for range trafficMaxTicks {
			tr.send(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return tr
}

// route sets the replicas that are up.
func (tr *traffic) route(targets ...string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.targets = targets
}

func (tr *traffic) setTook(d time.Duration) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.took = d
}

func (tr *traffic) send(ctx context.Context) {
	tr.mu.Lock()
	targets, took := tr.targets, tr.took
	byTarget := map[string][]uint64{}
	for range trafficBatch {
		tr.seq++
		if len(targets) > 0 {
			// The trace ID's low 64 bits are seq: a uniform split.
			to := targets[tr.seq%uint64(len(targets))]
			byTarget[to] = append(byTarget[to], tr.seq)
		}
	}
	tr.mu.Unlock()
	end := time.Now()
	for addr, seqs := range byTarget {
		if exportSpans(ctx, addr, seqs, end, took) == nil {
			tr.mu.Lock()
			tr.sent[addr] += len(seqs)
			tr.mu.Unlock()
		}
	}
}

// exportSpans posts one apiserver SERVER span per trace over OTLP/HTTP.
func exportSpans(ctx context.Context, addr string, seqs []uint64, end time.Time, took time.Duration) error {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "apiserver")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for _, seq := range seqs {
		var tid pcommon.TraceID
		tid[0] = 0x4a
		binary.BigEndian.PutUint64(tid[8:], seq)
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
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/traces", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("post to %s: %s", addr, resp.Status)
	}
	return nil
}

// haRules: the median of GET namespaces over 1s. The window is short so
// that every replica's window holds the same traffic soon after it
// starts, and all replicas resolve within an evaluation of each other.
func haRules(window string) string {
	return fmt.Sprintf(`
groups:
  - name: ha
    interval: 1s
    rules:
      - alert: NamespacesSlow
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        objective: {quantile: 0.5, threshold: 1s}
        window: %s
        for: 2s
        labels: {severity: page}
`, window)
}

// replicaSet starts sentinel processes that share one rule file and
// Alertmanager list; each has its own addresses and storage.
type replicaSet struct {
	t        *testing.T
	bin, dir string
	config   string
	n        int
}

func newReplicaSet(t *testing.T, rulesYAML, alerting string) *replicaSet {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(rulesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return &replicaSet{t: t, bin: sentinelBinary(t), dir: dir, config: alerting}
}

// start runs a new replica with a storage directory of its own (a pod
// with its own volume).
func (rs *replicaSet) start() *process {
	rs.t.Helper()
	rs.n++
	storage := filepath.Join(rs.dir, fmt.Sprintf("data-%d", rs.n))
	cfg := filepath.Join(rs.dir, fmt.Sprintf("sentinel-%d.yaml", rs.n))
	// No external label tells the replicas apart: Alertmanager must see
	// one alert.
	text := fmt.Sprintf("global: {evaluation_interval: 1s}\nrule_files: [rules.yaml]\nstorage: {path: %q, snapshot_interval: 1s}\nalerting: %s\n", storage, rs.config)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		rs.t.Fatal(err)
	}
	web, otlp := testkit.FreeAddr(rs.t), testkit.FreeAddr(rs.t)
	return startProcess(rs.t, rs.bin, []string{"run", "--config.file=" + cfg, "--web.listen-address=" + web,
		"--otlp.grpc-address=" + testkit.FreeAddr(rs.t), "--otlp.http-address=" + otlp}, web, otlp)
}

// restart runs p's binary again with the same flags, storage and addresses
// (the container restarted in its pod).
func (p *process) restart(t *testing.T) *process {
	t.Helper()
	return startProcess(t, p.bin, p.args, p.web, p.otlpHTTP)
}

func (p *process) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

// stop is a pod's termination: SIGTERM, then wait for the exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("sentinel did not exit within 30s of SIGTERM:\n%s", p.logs.String())
	}
}

// firingState is the state of sentinel's own alert, from /api/v1/rules.
func (p *process) firing(t *testing.T, name string) bool {
	t.Helper()
	return p.rule(t, name).State == "firing"
}

// capturedPost is one alert as sentinel posted it to Alertmanager.
type capturedPost struct {
	Labels   map[string]string `json:"labels"`
	StartsAt time.Time         `json:"startsAt"`
	EndsAt   time.Time         `json:"endsAt"`
	At       time.Time         `json:"-"`
}

// alertCapture stands in for an Alertmanager and keeps what sentinel
// posts: what it sends, before Alertmanager merges it with what it holds.
type alertCapture struct {
	*httptest.Server
	mu    sync.Mutex
	posts []capturedPost
}

func newAlertCapture(t *testing.T) *alertCapture {
	c := &alertCapture{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" {
			http.NotFound(w, r)
			return
		}
		var batch []capturedPost
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now()
		c.mu.Lock()
		for _, a := range batch {
			a.At = now
			c.posts = append(c.posts, a)
		}
		c.mu.Unlock()
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *alertCapture) since(t time.Time) []capturedPost {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []capturedPost
	for _, p := range c.posts {
		if !p.At.Before(t) {
			out = append(out, p)
		}
	}
	return out
}

// amAlert returns Alertmanager's copy of the named alert, nil when it
// holds none that has not resolved.
func amAlert(t *testing.T, am *amtest.Instance, name string) *amAlertView {
	t.Helper()
	for _, a := range amAlerts(t, am) {
		if a.Labels["alertname"] == name {
			return &amAlertView{StartsAt: time.Time(*a.StartsAt), UpdatedAt: time.Time(*a.UpdatedAt), State: *a.Status.State}
		}
	}
	return nil
}

type amAlertView struct {
	StartsAt, UpdatedAt time.Time
	State               string
}

// checkNotifications checks how many firing and resolved notifications of
// NamespacesSlow the pager got. Others (SentinelNoData) are logged.
func checkNotifications(t *testing.T, wh *amtest.Webhook, when string, firing, resolved int) {
	t.Helper()
	got, err := wh.Notifications()
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	var lines bytes.Buffer
	for _, g := range got {
		ours := false
		fmt.Fprintf(&lines, "  %s %s", g.At.Format("15:04:05.000"), g.Status)
		for _, a := range g.Alerts {
			ours = ours || a.Labels["alertname"] == "NamespacesSlow"
			fmt.Fprintf(&lines, " [%s %s startsAt %s]", a.Labels["alertname"], a.Status, a.StartsAt.Format("15:04:05.000"))
		}
		lines.WriteString("\n")
		if ours {
			n[g.Status]++
		}
	}
	if n["firing"] != firing || n["resolved"] != resolved {
		t.Fatalf("%s: %d firing and %d resolved notifications of NamespacesSlow, want %d and %d:\n%s", when, n["firing"], n["resolved"], firing, resolved, lines.String())
	}
	if len(got) != firing+resolved {
		t.Logf("%s: other notifications too:\n%s", when, lines.String())
	}
}

// TestRestartLongerThanOldHorizonPagesOnce: sentinel is kill -9'd while an
// alert fires and stays down several times longer than Prometheus's
// 4 × max(interval, resend_delay) horizon (4s here, with resend_delay 1s;
// 4m with the default 1m, shorter than a pod rescheduled with an image
// pull). Alertmanager must keep the alert firing the whole time, and the
// restarted sentinel must send it again with its first startsAt: the
// pager sees one page and no resolve.
func TestRestartLongerThanOldHorizonPagesOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and Alertmanager")
	}
	t.Parallel()
	wh := amtest.NewWebhook(t)
	// repeat_interval 1h: a second page can only come from Alertmanager
	// seeing the alert anew.
	am := amtest.StartWithOptions(t, amtest.Options{ConfigFile: wh.ConfigFile(t, amtest.Route{
		GroupWait: time.Second, GroupInterval: 2 * time.Second, RepeatInterval: time.Hour})})
	capture := newAlertCapture(t)
	const resendDelay = time.Second
	oldHorizon := 4 * max(time.Second, resendDelay) // evaluation_interval 1s
	rs := newReplicaSet(t, haRules("2m"), fmt.Sprintf("{alertmanagers: [{url: %q}, {url: %q}], resend_delay: %s}", am.URL, capture.URL, resendDelay))
	p := rs.start()
	tr := startTraffic(t, 2*time.Second, p.otlpHTTP)

	testkit.Eventually(t, time.Minute, func() error {
		if n := countOf(wh, "NamespacesSlow", "firing"); n != 1 {
			return fmt.Errorf("%d firing notifications, want the page", n)
		}
		return nil
	})
	first := testkit.WaitFor(t, "the alert at Alertmanager", 30*time.Second, func() (*amAlertView, bool) {
		a := amAlert(t, am, "NamespacesSlow")
		return a, a != nil
	})
	// Let a periodic snapshot (every 1s) record the firing alert.
	snapshot := filepath.Join(rs.dir, "data-1", snapshotFile)
	paged := time.Now()
	testkit.Eventually(t, 30*time.Second, func() error {
		st, err := os.Stat(snapshot)
		if err != nil {
			return err
		}
		if !st.ModTime().After(paged) {
			return fmt.Errorf("no snapshot since the page")
		}
		return nil
	})

	p.kill9(t)
	tr.route()
	down := time.Now()
	// Down for three old horizons: with that horizon Alertmanager would
	// resolve the alert after 4s and tell the pager.
	for time.Since(down) < 3*oldHorizon {
		if a := amAlert(t, am, "NamespacesSlow"); a == nil || a.State != "active" {
			t.Fatalf("%v after kill -9, Alertmanager no longer has the alert active (%+v): it resolved it", time.Since(down).Round(time.Millisecond), a)
		}
		time.Sleep(500 * time.Millisecond)
	}
	checkNotifications(t, wh, "while sentinel was down", 1, 0)

	restarted := time.Now()
	p = p.restart(t)
	tr.route(p.otlpHTTP)
	if !p.firing(t, "NamespacesSlow") {
		t.Fatalf("after the restart the alert is %s, want firing (restored)", p.rule(t, "NamespacesSlow").State)
	}
	// The restarted sentinel resends it, with its first startsAt and the
	// long horizon; Alertmanager takes the resend as the same alert.
	testkit.Eventually(t, 30*time.Second, func() error {
		a := amAlert(t, am, "NamespacesSlow")
		if a == nil || !a.UpdatedAt.After(restarted) {
			return fmt.Errorf("no resend since the restart reached Alertmanager: %+v", a)
		}
		return nil
	})
	posts := capture.since(restarted)
	if len(posts) == 0 {
		t.Fatal("the restarted sentinel sent nothing")
	}
	for _, a := range posts {
		if !a.StartsAt.Equal(first.StartsAt) {
			t.Errorf("resent with startsAt %v, want the first %v", a.StartsAt, first.StartsAt)
		}
		if ahead := a.EndsAt.Sub(a.At); ahead < 10*time.Minute {
			t.Errorf("resent with endsAt %v ahead, want the 15m horizon", ahead.Round(time.Second))
		}
	}
	// Two group intervals more: a second page would have come by now.
	time.Sleep(3 * 2 * time.Second)
	checkNotifications(t, wh, "after the restart", 1, 0)
	if a := amAlert(t, am, "NamespacesSlow"); a == nil || !a.StartsAt.Equal(first.StartsAt) || a.State != "active" {
		t.Fatalf("after the restart Alertmanager has %+v, want active since %v", a, first.StartsAt)
	}
}

// TestHAPagesOnce is the HA pair with real parts: two sentinel replicas,
// each fed only its half of the traces (routed by trace ID, as the HA
// component's Collector does), each sending to both members of a real
// two-node Alertmanager cluster, and a pager (webhook) behind it. One
// page, however the replicas come and go, and one resolve at the end:
//
//  1. one replica is kill -9'd while the alert fires, and restarts in its
//     pod (same storage);
//  2. a rolling update restarts both, as the HA component's StatefulSet
//     does (OrderedReady, RollingUpdate): one at a time, highest ordinal
//     first, each on its own storage and Ready before the next stops;
//  3. the traffic becomes fast: the replicas resolve the alert.
func TestHAPagesOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and an Alertmanager cluster")
	}
	t.Parallel()
	wh := amtest.NewWebhook(t)
	// group_interval ≥ 10 × the peers' timeout, as Alertmanager's defaults
	// (5m, 15s): see amtest.PeerTimeout.
	const groupInterval = 10 * amtest.PeerTimeout
	ams := amtest.StartCluster(t, 2, amtest.Options{ConfigFile: wh.ConfigFile(t, amtest.Route{
		GroupWait: time.Second, GroupInterval: groupInterval, RepeatInterval: time.Hour})})
	// By then a duplicate page or a resolve would have reached the pager:
	// the second Alertmanager sends what the first did not after
	// PeerTimeout, and a change is sent at the next group interval.
	settle := amtest.PeerTimeout + 2*groupInterval
	// resend_delay is the default, 1m.
	rs := newReplicaSet(t, haRules("10s"), fmt.Sprintf("{alertmanagers: [{url: %q}, {url: %q}]}", ams[0].URL, ams[1].URL))
	a, b := rs.start(), rs.start()
	tr := startTraffic(t, 2*time.Second, a.otlpHTTP, b.otlpHTTP)
	waitFiring := func(when string, ps ...*process) {
		t.Helper()
		testkit.Eventually(t, time.Minute, func() error {
			for _, p := range ps {
				if !p.firing(t, "NamespacesSlow") {
					return fmt.Errorf("%s: the replica on %s is not firing", when, p.web)
				}
			}
			return nil
		})
	}
	waitFiring("both replicas on half the traces", a, b)
	testkit.Eventually(t, time.Minute, func() error {
		if n := countOf(wh, "NamespacesSlow", "firing"); n != 1 {
			return fmt.Errorf("%d firing notifications, want the page", n)
		}
		return nil
	})
	for _, am := range ams {
		if al := amAlert(t, am, "NamespacesSlow"); al == nil || al.State != "active" {
			t.Fatalf("Alertmanager %s has %+v, want the alert active", am.URL, al)
		}
	}
	checkNotifications(t, wh, "both replicas firing", 1, 0)

	// 1. kill -9 while firing; the Collector routes every trace to b.
	a.kill9(t)
	tr.route(b.otlpHTTP)
	time.Sleep(2 * time.Second) // a few of b's evaluations alone
	checkNotifications(t, wh, "one replica killed", 1, 0)
	a = a.restart(t)
	tr.route(a.otlpHTTP, b.otlpHTTP)
	waitFiring("the killed replica restarted", a)
	replicas := []*process{a, b} // by StatefulSet ordinal
	checkNotifications(t, wh, "the killed replica back", 1, 0)

	// 2. A rolling update, as the StatefulSet does it (OrderedReady,
	// RollingUpdate): the highest ordinal first, stopped, started again on
	// its volume, Ready, then the next. The Collector routes around the
	// replica that is down.
	for _, i := range []int{1, 0} {
		others := replicas[1-i].otlpHTTP
		replicas[i].stop(t)
		tr.route(others)
		replicas[i] = replicas[i].restart(t)
		tr.route(replicas[0].otlpHTTP, replicas[1].otlpHTTP)
		waitFiring(fmt.Sprintf("replica %d updated", i), replicas[i])
	}
	updated := time.Now()
	a, b = replicas[0], replicas[1]
	waitFiring("after the rolling update", a, b)
	// Scenarios 1 and 2 together: a second page or a resolve would have
	// reached the pager by now.
	time.Sleep(settle)
	checkNotifications(t, wh, "after the kill -9 and the rolling update", 1, 0)

	// 3. Fast again. Both windows (10s) hold only the last two replicas'
	// halves by now, so both resolve within an evaluation of each other.
	if wait := 12*time.Second - time.Since(updated); wait > 0 {
		time.Sleep(wait)
	}
	tr.setTook(20 * time.Millisecond)
	testkit.Eventually(t, time.Minute, func() error {
		if n := countOf(wh, "NamespacesSlow", "resolved"); n < 1 {
			return fmt.Errorf("%d resolved notifications, want 1", n)
		}
		return nil
	})
	for _, p := range []*process{a, b} {
		if p.firing(t, "NamespacesSlow") {
			t.Errorf("the replica on %s still fires on fast traffic", p.web)
		}
	}
	time.Sleep(settle)
	checkNotifications(t, wh, "traffic fast again", 1, 1)
	for _, am := range ams {
		if al := amAlert(t, am, "NamespacesSlow"); al != nil {
			t.Errorf("Alertmanager %s still has the alert: %+v", am.URL, al)
		}
	}
}

// countOf counts the notifications of one status that carry alertname.
func countOf(wh *amtest.Webhook, alertname, status string) int {
	got, _ := wh.Notifications()
	n := 0
	for _, g := range got {
		for _, a := range g.Alerts {
			if g.Status == status && a.Labels["alertname"] == alertname {
				n++
				break
			}
		}
	}
	return n
}

// TestReloadChangesResolveTimeout: alerting.resolve_timeout is a setting
// the running engine takes on reload, not one that waits for a restart.
func TestReloadChangesResolveTimeout(t *testing.T) {
	const cfgText = `rule_files: [rules.yaml]
otlp: {grpc: {listen_address: "127.0.0.1:0"}, http: {listen_address: "127.0.0.1:0"}}
storage: {path: %%q, snapshot_interval: 1h}
alerting: {resolve_timeout: %s}
`
	d, _, cfgFile := runDaemonWith(t, fmt.Sprintf(cfgText, "20m"), noIntervalRules)
	if got := d.engine.Settings().ResolveTimeout; got != 20*time.Minute {
		t.Fatalf("resolve_timeout %v at start, want 20m", got)
	}
	next := fmt.Sprintf(fmt.Sprintf(cfgText, "30m"), d.cfg.Load().StoragePath)
	if err := os.WriteFile(cfgFile, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	needRestart, err := d.reload()
	if err != nil || len(needRestart) != 0 {
		t.Fatalf("reload: %v, needs a restart for %v", err, needRestart)
	}
	if got := d.engine.Settings().ResolveTimeout; got != 30*time.Minute {
		t.Errorf("resolve_timeout %v after reload, want 30m", got)
	}
}
