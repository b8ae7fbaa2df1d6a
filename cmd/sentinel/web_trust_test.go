package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kube-sentinel/sentinel/internal/testcerts"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// TestLifecycle: POST /-/reload needs --web.enable-lifecycle, and even
// then refuses what a browser sends on another site's behalf.
func TestLifecycle(t *testing.T) {
	off := startSentinel(t, e2eRules)
	on := startSentinelOpts(t, e2eRules, "", func(o *daemonOptions) { o.EnableLifecycle = true })
	cases := []struct {
		name    string
		d       *daemon
		headers map[string]string
		code    int
		body    string
		reason  string // counted in sentinel_web_lifecycle_refused_total
	}{
		{"without the flag", off, nil, http.StatusForbidden, "Lifecycle API is not enabled.", "disabled"},
		{"without the flag, cross-origin", off, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden, "Lifecycle API is not enabled.", "disabled"},
		{"with the flag, from a script", on, nil, http.StatusOK, "reloaded", ""},
		{"with the flag, a script posting JSON", on, map[string]string{"Content-Type": "application/json"}, http.StatusOK, "reloaded", ""},
		{"cross-origin text/plain with an Origin", on, map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}, http.StatusForbidden, "cross-origin", "cross_origin"},
		{"cross-site by Sec-Fetch-Site", on, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "cross-origin", "cross_origin"},
		{"same-site subdomain by Sec-Fetch-Site", on, map[string]string{"Sec-Fetch-Site": "same-site", "Content-Type": "application/x-www-form-urlencoded"}, http.StatusForbidden, "cross-origin", "cross_origin"},
		{"a same-origin form post", on, map[string]string{"Sec-Fetch-Site": "same-origin", "Content-Type": "application/x-www-form-urlencoded"}, http.StatusForbidden, "form post", "form_post"},
		{"a same-origin multipart post", on, map[string]string{"Sec-Fetch-Site": "same-origin", "Content-Type": "multipart/form-data; boundary=x"}, http.StatusForbidden, "form post", "form_post"},
		{"a same-origin fetch of JSON", on, map[string]string{"Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}, http.StatusOK, "reloaded", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := counterSum(t, tc.d.registry, "sentinel_web_lifecycle_refused_total", map[string]string{"reason": tc.reason})
			req, _ := http.NewRequest("POST", "http://"+tc.d.webLn.Addr().String()+"/-/reload", strings.NewReader("{}"))
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
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.code, tc.body)
			}
			if tc.reason == "" {
				return
			}
			if got := counterSum(t, tc.d.registry, "sentinel_web_lifecycle_refused_total", map[string]string{"reason": tc.reason}) - before; got != 1 {
				t.Errorf("refusal %s counted %v times", tc.reason, got)
			}
		})
	}
}

// TestWebConfigFile serves the web port with an exporter-toolkit web
// config: TLS, a required client certificate and basic auth.
func TestWebConfigFile(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "web-ca")
	ca.Server(t, "sentinel-web").WriteFiles(t, dir, "web", ca)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	os.WriteFile(webConfig, []byte(fmt.Sprintf(`
tls_server_config:
  cert_file: web.crt
  key_file: web.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: web-ca.crt
basic_auth_users:
  prometheus: %s
`, hash)), 0o644)
	if err := checkWebConfig(webConfig); err != nil {
		t.Fatal(err)
	}
	d := startSentinelOpts(t, e2eRules, "", func(o *daemonOptions) { o.WebConfigFile = webConfig })
	addr := d.webLn.Addr().String()
	withCert := testcerts.ClientTLS(ca, ca.Client(t, "prometheus"))
	cases := []struct {
		name       string
		scheme     string
		tls        *tls.Config
		user, pass string
		code       int // 0: the connection fails
	}{
		{"TLS, client certificate and password", "https", withCert, "prometheus", "s3cret", http.StatusOK},
		{"no credentials", "https", withCert, "", "", http.StatusUnauthorized},
		{"wrong password", "https", withCert, "prometheus", "guess", http.StatusUnauthorized},
		{"no client certificate", "https", testcerts.ClientTLS(ca, nil), "prometheus", "s3cret", 0},
		{"plain HTTP", "http", nil, "prometheus", "s3cret", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc.tls}}
			defer client.CloseIdleConnections()
			req, _ := http.NewRequest("GET", tc.scheme+"://"+addr+"/api/v1/rules", nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := client.Do(req)
			if tc.code == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("served: %d", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.code)
			}
		})
	}
}

// TestWebConfigFileInvalid: a web config that does not load stops `sentinel
// run` at start, with the file named.
func TestWebConfigFileInvalid(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "web.yml")
	os.WriteFile(bad, []byte("tls_server_config: {cert_file: missing.crt, key_file: missing.key}\n"), 0o644)
	var stderr testkit.SyncBuffer
	code := runCommand(t.Context(), []string{"run", "--config.file=testdata/good.yaml", "--web.config.file=" + bad,
		"--web.listen-address=127.0.0.1:0"}, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "--web.config.file "+bad) {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestSIGHUPReloadsWithoutLifecycle: the real binary without
// --web.enable-lifecycle refuses POST /-/reload and still reloads on SIGHUP.
func TestSIGHUPReloadsWithoutLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := sentinelBinary(t)
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesFile, []byte(e2eRules), 0o644)
	cfg := filepath.Join(dir, "sentinel.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("rule_files: [rules.yaml]\nstorage: {path: %q}\n", filepath.Join(dir, "data"))), 0o644)
	web := testkit.FreeAddr(t)
	p := startProcess(t, bin, []string{"run", "--config.file=" + cfg, "--web.listen-address=" + web,
		"--otlp.grpc-address=" + testkit.FreeAddr(t), "--otlp.http-address=" + testkit.FreeAddr(t)}, web, "")

	os.WriteFile(rulesFile, []byte(strings.Replace(e2eRules, "NamespacesGETLatency", "Renamed", 1)), 0o644)
	resp, err := http.Post("http://"+web+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST /-/reload without the flag: %d", resp.StatusCode)
	}
	if rules := p.rules(t); len(rules) != 1 || rules[0].Name != "NamespacesGETLatency" {
		t.Fatalf("the refused reload changed the rules: %+v", rules)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "SIGHUP to reload the rules", 20*time.Second, func() (bool, bool) {
		rules := p.rules(t)
		return true, len(rules) == 1 && rules[0].Name == "Renamed"
	})
}
