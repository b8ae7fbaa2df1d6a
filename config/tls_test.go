package config

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kube-sentinel/sentinel/internal/golden"
	"github.com/kube-sentinel/sentinel/internal/testcerts"
)

func TestOTLPTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	ca.Server(t, "sentinel").WriteFiles(t, dir, "server", ca)
	ca.Server(t, "other").WriteFiles(t, dir, "other", ca)
	cases := []struct {
		name       string
		yaml       string
		want       string // an error's text; "" means valid
		grpc, http bool
	}{
		{"none", `otlp: {grpc: {listen_address: ":4317"}}`, "", false, false},
		{"both, relative to the config file, with client CA", `
otlp:
  grpc: {tls: {cert_file: server.crt, key_file: server.key, client_ca_file: server-ca.crt}}
  http: {tls: {cert_file: server.crt, key_file: server.key, min_version: "1.3"}}
`, "", true, true},
		{"key of another certificate", `otlp: {http: {tls: {cert_file: server.crt, key_file: other.key}}}`,
			"sentinel.yaml:1:20: otlp.http.tls: cert_file", false, false},
		{"missing key file", `otlp: {grpc: {tls: {cert_file: server.crt, key_file: nope.key}}}`,
			"sentinel.yaml:1:54: otlp.grpc.tls.key_file: stat", false, false},
		{"key_file forgotten", `otlp: {grpc: {tls: {cert_file: server.crt}}}`,
			"otlp.grpc.tls: cert_file and key_file are both required", false, false},
		{"client CA that is not PEM", `otlp: {grpc: {tls: {cert_file: server.crt, key_file: server.key, client_ca_file: server.key}}}`,
			"no PEM certificate", false, false},
		{"the Collector's reload_interval is not ours", `otlp: {grpc: {tls: {cert_file: server.crt, key_file: server.key, reload_interval: 1m}}}`,
			`unknown field "reload_interval" in otlp.grpc.tls`, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, "sentinel.yaml")
			c, err := Parse(file, []byte(strings.TrimPrefix(tc.yaml, "\n")))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (c.OTLPGRPCTLS != nil) != tc.grpc || (c.OTLPHTTPTLS != nil) != tc.http {
				t.Fatalf("grpc tls %+v, http tls %+v", c.OTLPGRPCTLS, c.OTLPHTTPTLS)
			}
			if tc.grpc {
				if g := c.OTLPGRPCTLS; g.CertFile != filepath.Join(dir, "server.crt") || g.ClientCAFile != filepath.Join(dir, "server-ca.crt") ||
					g.MinVersion != 0 {
					t.Errorf("grpc tls %+v", g)
				}
			}
			if tc.http && c.OTLPHTTPTLS.MinVersion != tls.VersionTLS13 {
				t.Errorf("http min_version %x", c.OTLPHTTPTLS.MinVersion)
			}
		})
	}
}

func TestInvalidTLS(t *testing.T) {
	if _, err := os.Stat("testdata/invalid_tls.yaml"); err != nil {
		t.Fatal(err)
	}
	_, err := Load("testdata/invalid_tls.yaml")
	if err == nil {
		t.Fatal("accepted")
	}
	golden.Check(t, "testdata/invalid_tls.golden", err.Error()+"\n")
}
