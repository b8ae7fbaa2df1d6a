package amtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/testkit"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/client/alert"
	"github.com/prometheus/alertmanager/api/v2/models"
)

// ReadyTimeout bounds how long Start waits for /-/ready.
const ReadyTimeout = 15 * time.Second

const config = `route:
  receiver: "null"
receivers:
  - name: "null"
`

// Options says how to start an Alertmanager. The zero value is fine.
type Options struct {
	// Port to listen on, on 127.0.0.1; 0 picks a free one.
	Port int
	// RoutePrefix serves the UI and API under a path, e.g. "/alertmanager"
	// (--web.route-prefix); URL then ends with it.
	RoutePrefix string
	// ConfigFile is an Alertmanager configuration to run with, e.g. a copy
	// of deploy/alertmanager/alertmanager.yaml whose receivers point at
	// stand-ins; "" routes everything to a null receiver.
	ConfigFile string
	// ClusterAddress gossips with peers on this 127.0.0.1:port
	// (--cluster.listen-address); "" runs without gossip. StartCluster
	// sets it.
	ClusterAddress string
	// Peers are the other cluster members' addresses (--cluster.peer).
	Peers []string
}

// PeerTimeout is how long a cluster member waits per position before it
// sends a notification its peers may already have sent
// (--cluster.peer-timeout; Alertmanager's default is 15s, with a default
// group_interval of 5m). Gossip on loopback (every 50ms here) takes
// milliseconds. Keep a route's group_interval 10 × PeerTimeout or more, as
// the defaults are: a member that flushed a firing group just before it
// heard the resolve waits PeerTimeout and then sends a stale "firing"
// when a peer has sent "resolved" in the meantime.
const PeerTimeout = time.Second

// Instance is one running Alertmanager.
type Instance struct {
	// URL is its base URL, route prefix included, without a trailing slash:
	// what sentinel's --alertmanager.url takes.
	URL  string
	Port int
	// ClusterAddress is where it gossips, "" without gossip.
	ClusterAddress string

	tb     testing.TB
	cmd    *exec.Cmd
	output *testkit.SyncBuffer
	exited chan struct{}
	client alert.ClientService

	stopOnce sync.Once
}

// Start runs an Alertmanager on a free loopback port.
func Start(t testing.TB) *Instance {
	t.Helper()
	return StartWithOptions(t, Options{})
}

// StartOnPort runs an Alertmanager on a port chosen earlier, e.g. with
// FreePort, to test a client that was pointed at it before it was up.
func StartOnPort(t testing.TB, port int) *Instance {
	t.Helper()
	return StartWithOptions(t, Options{Port: port})
}

// StartWithOptions runs an Alertmanager as opts says. It fails the test if
// the process exits or is not ready within ReadyTimeout, and stops it in
// t.Cleanup.
func StartWithOptions(t testing.TB, opts Options) *Instance {
	t.Helper()
	bin := Binary(t)
	if opts.Port != 0 {
		inst, err := start(t, bin, opts)
		if err != nil {
			t.Fatal(err)
		}
		return inst
	}
	// A port picked by FreePort can be taken by someone else before
	// Alertmanager binds it: try a few.
	var errs []error
	for range 3 {
		o := opts
		o.Port = FreePort(t)
		inst, err := start(t, bin, o)
		if err == nil {
			return inst
		}
		errs = append(errs, err)
	}
	t.Fatal(errors.Join(errs...))
	return nil
}

// StartCluster runs n Alertmanagers gossiping with each other on
// loopback, as an HA cluster: every one of them is a peer of the others,
// so that a notification one of them sends is not sent again by another.
// opts.Port, ClusterAddress and Peers are chosen here.
func StartCluster(t testing.TB, n int, opts Options) []*Instance {
	t.Helper()
	bin := Binary(t)
	gossip := make([]string, n)
	for i := range gossip {
		gossip[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
	}
	var members []*Instance
	for i := range n {
		o := opts
		o.ClusterAddress = gossip[i]
		o.Peers = nil
		for j, p := range gossip {
			if j != i {
				o.Peers = append(o.Peers, p)
			}
		}
		var errs []error
		for range 3 {
			o.Port = FreePort(t)
			inst, err := start(t, bin, o)
			if err == nil {
				members = append(members, inst)
				break
			}
			errs = append(errs, err)
		}
		if len(members) != i+1 {
			t.Fatal(errors.Join(errs...))
		}
	}
	for _, m := range members {
		if err := m.waitPeers(n); err != nil {
			t.Fatalf("alertmanager %s: %v\noutput:\n%s", m.URL, err, m.Output())
		}
	}
	return members
}

// waitPeers waits until the member's /api/v2/status lists n cluster peers
// (itself included).
func (inst *Instance) waitPeers(n int) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(ReadyTimeout)
	for {
		got, err := inst.peers(client)
		if err == nil && got == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d cluster peers after %v, want %d (last error: %v)", got, ReadyTimeout, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (inst *Instance) peers(client *http.Client) (int, error) {
	resp, err := client.Get(inst.URL + "/api/v2/status")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var status struct {
		Cluster struct {
			Peers []json.RawMessage `json:"peers"`
		} `json:"cluster"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&status); err != nil {
		return 0, fmt.Errorf("decode /api/v2/status: %w", err)
	}
	return len(status.Cluster.Peers), nil
}

// Binary returns the path of the Alertmanager binary on PATH, skipping the
// test when there is none (failing it when CI=true).
func Binary(t testing.TB) string {
	t.Helper()
	return testkit.Binary(t, "on Debian: apt-get install prometheus-alertmanager", "prometheus-alertmanager", "alertmanager")
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return testkit.FreePort(t)
}

func start(t testing.TB, bin string, opts Options) (*Instance, error) {
	dir := t.TempDir()
	configFile := opts.ConfigFile
	if configFile == "" {
		configFile = filepath.Join(dir, "alertmanager.yml")
		if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
			return nil, fmt.Errorf("write Alertmanager config: %w", err)
		}
	}
	storage := filepath.Join(dir, "data")
	if err := os.Mkdir(storage, 0o700); err != nil {
		return nil, fmt.Errorf("create Alertmanager storage: %w", err)
	}
	prefix := strings.TrimSuffix(opts.RoutePrefix, "/")
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port))
	args := []string{
		"--config.file=" + configFile,
		"--storage.path=" + storage,
		"--web.listen-address=" + addr,
	}
	if opts.ClusterAddress == "" {
		args = append(args, "--cluster.listen-address=") // no gossip
	} else {
		args = append(args,
			"--cluster.listen-address="+opts.ClusterAddress,
			"--cluster.advertise-address="+opts.ClusterAddress,
			"--cluster.peer-timeout="+PeerTimeout.String(),
			// Peers are up or coming up on loopback: settle fast.
			"--cluster.settle-timeout=2s",
			"--cluster.reconnect-interval=1s",
			"--cluster.gossip-interval=50ms",
		)
		for _, p := range opts.Peers {
			args = append(args, "--cluster.peer="+p)
		}
	}
	if prefix != "" {
		args = append(args, "--web.route-prefix="+prefix)
	}

	inst := &Instance{
		URL:            "http://" + addr + prefix,
		Port:           opts.Port,
		ClusterAddress: opts.ClusterAddress,
		tb:             t,
		output:         &testkit.SyncBuffer{},
		exited:         make(chan struct{}),
	}
	inst.cmd = exec.Command(bin, args...)
	inst.cmd.Stdout = inst.output
	inst.cmd.Stderr = inst.output
	if err := inst.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		_ = inst.cmd.Wait()
		close(inst.exited)
	}()
	t.Cleanup(inst.Stop)

	transport := httptransport.NewWithClient(addr, prefix+"/api/v2", []string{"http"}, &http.Client{})
	inst.client = alert.New(transport, strfmt.Default)

	if err := inst.waitReady(); err != nil {
		inst.Stop()
		return nil, fmt.Errorf("alertmanager on %s: %w\noutput:\n%s", addr, err, inst.output.String())
	}
	return inst, nil
}

func (inst *Instance) waitReady() error {
	readyURL := inst.URL + "/-/ready"
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(ReadyTimeout)
	for {
		select {
		case <-inst.exited:
			return fmt.Errorf("exited before it was ready: %v", inst.cmd.ProcessState)
		default:
		}
		resp, err := client.Get(readyURL)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v (last: %v)", ReadyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Alerts returns the alerts Alertmanager holds that have not resolved
// (GET /api/v2/alerts: active, silenced, inhibited and unprocessed).
func (inst *Instance) Alerts(ctx context.Context) ([]*models.GettableAlert, error) {
	params := alert.NewGetAlertsParamsWithContext(ctx)
	params.SetDefaults()
	resp, err := inst.client.GetAlerts(params)
	if err != nil {
		return nil, fmt.Errorf("get alerts from %s: %w", inst.URL, err)
	}
	return resp.Payload, nil
}

// Output is what the process has written to stdout and stderr so far.
func (inst *Instance) Output() string {
	return inst.output.String()
}

// Stop kills the process and waits for it to exit. It is safe to call more
// than once; t.Cleanup calls it too.
func (inst *Instance) Stop() {
	inst.stopOnce.Do(func() {
		_ = inst.cmd.Process.Kill()
		select {
		case <-inst.exited:
		case <-time.After(10 * time.Second):
			inst.tb.Errorf("alertmanager (pid %d) did not exit after SIGKILL", inst.cmd.Process.Pid)
		}
	})
}
