package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kube-sentinel/sentinel/internal/testcerts"
)

// serve accepts TLS connections with cfg on loopback until the test ends,
// completing each handshake and writing "ok".
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte("ok"))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes, reads the server's "ok" and returns the server's leaf
// certificate, or the error.
func dial(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// With TLS 1.3 the server's verdict on the client certificate arrives
	// after the client's handshake is done: read to see it.
	b, err := io.ReadAll(c)
	if err != nil {
		return nil, err
	}
	if string(b) != "ok" {
		return nil, io.ErrUnexpectedEOF
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := testcerts.NewCA(t, "sentinel-ca"), testcerts.NewCA(t, "attacker-ca")
	files := ca.Server(t, "sentinel").WriteFiles(t, dir, "server", ca)
	metrics, _ := NewMetrics(prometheus.NewRegistry())
	r, err := New(Files{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.CA}, Options{Listener: "test", Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r.TLSConfig())

	cases := []struct {
		name    string
		client  *tls.Config
		refused string // reason counted; "" means the handshake succeeds
	}{
		{"a client certificate from the client CA", testcerts.ClientTLS(ca, ca.Client(t, "collector")), ""},
		{"no client certificate", testcerts.ClientTLS(ca, nil), ReasonNoClientCertificate},
		{"a client certificate from another CA", testcerts.ClientTLS(ca, other.Client(t, "attacker")), ReasonUntrustedClientCertificate},
		{"a server certificate used as a client's", testcerts.ClientTLS(ca, ca.Server(t, "not-a-client")), ReasonUntrustedClientCertificate},
		{"TLS 1.2, no client certificate", func() *tls.Config {
			c := testcerts.ClientTLS(ca, nil)
			c.MaxVersion = tls.VersionTLS12
			return c
		}(), ReasonNoClientCertificate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			counter := metrics.refused.WithLabelValues("test", tc.refused)
			before := testutil.ToFloat64(counter)
			_, err := dial(addr, tc.client)
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("the handshake succeeded")
			}
			if got := testutil.ToFloat64(counter) - before; got != 1 {
				t.Errorf("%s counted %v times, want 1", tc.refused, got)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	first := ca.Server(t, "first")
	files := first.WriteFiles(t, dir, "server", ca)
	metrics, _ := NewMetrics(prometheus.NewRegistry())
	r, err := New(Files{CertFile: files.Cert, KeyFile: files.Key}, Options{Listener: "test", Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r.TLSConfig())
	client := testcerts.ClientTLS(ca, nil)
	served := func() string {
		t.Helper()
		cert, err := dial(addr, client)
		if err != nil {
			t.Fatal(err)
		}
		return cert.Subject.CommonName
	}
	if got := served(); got != "first" {
		t.Fatalf("serves %q", got)
	}

	// A new pair replaces the old without a restart.
	second := ca.Server(t, "second")
	testcerts.WriteFile(t, files.Key, second.KeyPEM)
	testcerts.WriteFile(t, files.Cert, second.CertPEM)
	if got := served(); got != "second" {
		t.Fatalf("after rotation serves %q", got)
	}
	if got := testutil.ToFloat64(metrics.reloads.WithLabelValues("test", "success")); got != 1 {
		t.Errorf("successful reloads %v, want 1", got)
	}

	// A broken file keeps the previous pair in force, counted.
	testcerts.WriteFile(t, files.Cert, []byte("not a certificate"))
	if got := served(); got != "second" {
		t.Fatalf("after a bad file serves %q", got)
	}
	if got := testutil.ToFloat64(metrics.reloads.WithLabelValues("test", "failure")); got != 1 {
		t.Errorf("failed reloads %v, want 1", got)
	}
	// Tried once per change, not at every handshake.
	served()
	if got := testutil.ToFloat64(metrics.reloads.WithLabelValues("test", "failure")); got != 1 {
		t.Errorf("failed reloads %v after another handshake, want still 1", got)
	}

	// Fixed again: taken.
	third := ca.Server(t, "third")
	testcerts.WriteFile(t, files.Key, third.KeyPEM)
	testcerts.WriteFile(t, files.Cert, third.CertPEM)
	if got := served(); got != "third" {
		t.Fatalf("after the fix serves %q", got)
	}
}

func TestClientCARotation(t *testing.T) {
	dir := t.TempDir()
	oldCA, newCA := testcerts.NewCA(t, "old"), testcerts.NewCA(t, "new")
	files := oldCA.Server(t, "sentinel").WriteFiles(t, dir, "server", oldCA)
	r, err := New(Files{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.CA}, Options{Listener: "test"})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r.TLSConfig())
	newClient := testcerts.ClientTLS(oldCA, newCA.Client(t, "collector"))
	if _, err := dial(addr, newClient); err == nil {
		t.Fatal("a client of a CA not yet trusted was admitted")
	}
	testcerts.WriteFile(t, files.CA, newCA.CertPEM)
	if _, err := dial(addr, newClient); err != nil {
		t.Fatalf("a client of the new client CA is refused: %v", err)
	}
	if _, err := dial(addr, testcerts.ClientTLS(oldCA, oldCA.Client(t, "old-collector"))); err == nil {
		t.Fatal("a client of the removed CA is still admitted")
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	files := ca.Server(t, "s").WriteFiles(t, dir, "server", ca)
	other := ca.Server(t, "other").WriteFiles(t, dir, "other", ca)
	garbage := filepath.Join(dir, "garbage")
	testcerts.WriteFile(t, garbage, []byte("garbage"))
	cases := []struct {
		name  string
		files Files
		want  string
	}{
		{"valid", Files{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.CA}, ""},
		{"no key", Files{CertFile: files.Cert}, "cert_file and key_file are both required"},
		{"missing cert", Files{CertFile: filepath.Join(dir, "nope"), KeyFile: files.Key}, "cert_file: open"},
		{"key of another cert", Files{CertFile: files.Cert, KeyFile: other.Key}, "private key does not match public key"},
		{"client CA without PEM", Files{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: garbage}, "no PEM certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.files.Check()
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestResumptionAfterCARotation: a client admitted under a CA since
// removed from client_ca_file cannot come back by resuming its session.
func TestResumptionAfterCARotation(t *testing.T) {
	dir := t.TempDir()
	oldCA, newCA := testcerts.NewCA(t, "old"), testcerts.NewCA(t, "new")
	files := oldCA.Server(t, "sentinel").WriteFiles(t, dir, "server", oldCA)
	r, err := New(Files{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.CA}, Options{Listener: "test"})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r.TLSConfig())
	client := testcerts.ClientTLS(oldCA, oldCA.Client(t, "collector"))
	client.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	resumed := func() (bool, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, client)
		if err != nil {
			return false, err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c) // also takes the session ticket
		if err == nil && string(b) != "ok" {
			err = io.ErrUnexpectedEOF
		}
		return c.ConnectionState().DidResume, err
	}
	if _, err := resumed(); err != nil {
		t.Fatal(err)
	}
	if did, err := resumed(); err != nil || !did {
		t.Fatalf("the control resumption: resumed %v, %v", did, err)
	}
	testcerts.WriteFile(t, files.CA, newCA.CertPEM)
	if did, err := resumed(); err == nil {
		t.Fatalf("admitted (resumed %v) after its CA was removed", did)
	}
}
