package amtest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/client/alert"
	"golang.org/x/crypto/bcrypt"

	"github.com/kube-sentinel/sentinel/internal/testcerts"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// SecureOptions run an Alertmanager that wants TLS and basic auth, through
// its own --web.config.file (exporter-toolkit), as one exposed beyond a
// cluster's network would.
type SecureOptions struct {
	CA     *testcerts.CA
	Server *testcerts.Pair // signed by CA, for 127.0.0.1
	// Username and Password are the one user the web config admits; the
	// file holds the password's bcrypt hash.
	Username, Password string
}

// StartSecure runs an Alertmanager behind TLS and basic auth on a free
// loopback port. Its URL is https://127.0.0.1:port.
func StartSecure(t testing.TB, opts SecureOptions) *Instance {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(opts.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	certs := opts.Server.WriteFiles(t, dir, "alertmanager", opts.CA)
	webConfig := filepath.Join(dir, "web.yml")
	testcerts.WriteFile(t, webConfig, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  %s: %s\n",
		certs.Cert, certs.Key, opts.Username, hash))
	configFile := filepath.Join(dir, "alertmanager.yml")
	testcerts.WriteFile(t, configFile, []byte(config))
	client := &http.Client{Transport: &basicAuth{user: opts.Username, password: opts.Password,
		next: &http.Transport{TLSClientConfig: testcerts.ClientTLS(opts.CA, nil)}}, Timeout: time.Second}
	var errs []error
	for range 3 {
		port := FreePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		storage := filepath.Join(dir, "data-"+strconv.Itoa(port))
		inst := &Instance{URL: "https://" + addr, Port: port, tb: t, output: &testkit.SyncBuffer{}, exited: make(chan struct{})}
		inst.cmd = exec.Command(bin, "--config.file="+configFile, "--storage.path="+storage, "--web.listen-address="+addr,
			"--web.config.file="+webConfig, "--cluster.listen-address=")
		inst.cmd.Stdout, inst.cmd.Stderr = inst.output, inst.output
		if err := inst.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		go func() {
			_ = inst.cmd.Wait()
			close(inst.exited)
		}()
		t.Cleanup(inst.Stop)
		inst.client = alert.New(httptransport.NewWithClient(addr, "/api/v2", []string{"https"}, client), strfmt.Default)
		err := waitReadyWith(inst, client)
		if err == nil {
			return inst
		}
		inst.Stop()
		errs = append(errs, fmt.Errorf("alertmanager on %s: %w\noutput:\n%s", addr, err, inst.output.String()))
	}
	t.Fatal(errors.Join(errs...))
	return nil
}

func waitReadyWith(inst *Instance, client *http.Client) error {
	deadline := time.Now().Add(ReadyTimeout)
	for {
		select {
		case <-inst.exited:
			return fmt.Errorf("exited before it was ready: %v", inst.cmd.ProcessState)
		default:
		}
		resp, err := client.Get(inst.URL + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v (last: %v)", ReadyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type basicAuth struct {
	user, password string
	next           http.RoundTripper
}

func (b *basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.password)
	return b.next.RoundTrip(r)
}
