package alertmanager

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	promconfig "github.com/prometheus/common/config"

	"github.com/kube-sentinel/sentinel/internal/amtest"
	"github.com/kube-sentinel/sentinel/internal/testcerts"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// TestTLSAndBasicAuth sends to a real Alertmanager that wants TLS and
// basic auth (its own --web.config.file), with the HTTP client settings of
// Prometheus's alertmanager_config: the right CA and password deliver; a
// wrong CA or password is an error that says which, counted, and the
// notifier keeps trying.
func TestTLSAndBasicAuth(t *testing.T) {
	ca := testcerts.NewCA(t, "alertmanager-ca")
	am := amtest.StartSecure(t, amtest.SecureOptions{CA: ca, Server: ca.Server(t, "alertmanager"), Username: "sentinel", Password: "s3cret"})
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	testcerts.WriteFile(t, caFile, ca.CertPEM)
	otherCA := filepath.Join(dir, "other-ca.crt")
	testcerts.WriteFile(t, otherCA, testcerts.NewCA(t, "someone-else").CertPEM)
	passwordFile := filepath.Join(dir, "password")
	testcerts.WriteFile(t, passwordFile, []byte("s3cret\n"))

	httpConfig := func(ca, password string) *promconfig.HTTPClientConfig {
		c := promconfig.DefaultHTTPClientConfig
		c.TLSConfig = promconfig.TLSConfig{CAFile: ca}
		c.BasicAuth = &promconfig.BasicAuth{Username: "sentinel", Password: promconfig.Secret(password)}
		if password == "" {
			c.BasicAuth.PasswordFile = passwordFile
		}
		return &c
	}
	for _, tc := range []struct {
		name      string
		http      *promconfig.HTTPClientConfig
		wantError string // in the log; "" means the alert arrives
	}{
		{"right CA and password", httpConfig(caFile, ""), ""},
		{"wrong CA", httpConfig(otherCA, ""), "x509: certificate signed by unknown authority (check tls_config of this alerting.alertmanagers entry"},
		{"wrong password", httpConfig(caFile, "guess"), "HTTP 401 Unauthorized: Alertmanager refused sentinel's credentials"},
		{"no credentials", func() *promconfig.HTTPClientConfig { c := httpConfig(caFile, ""); c.BasicAuth = nil; return c }(), "HTTP 401 Unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &testkit.SyncBuffer{}
			reg := prometheus.NewRegistry()
			n := start(t, Options{Alertmanagers: []Alertmanager{{URL: am.URL, HTTPClientConfig: tc.http}}, Registerer: reg,
				Backoff: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			name := "Secure" + strings.ReplaceAll(tc.name, " ", "")
			n.Send(testAlert(name, time.Now()))
			if tc.wantError == "" {
				waitForAlerts(t, am, 15*time.Second, name)
				if v := testutil.ToFloat64(n.metrics.errors.WithLabelValues(am.URL)); v != 0 {
					t.Errorf("%v errors counted", v)
				}
				return
			}
			testkit.Eventually(t, 15*time.Second, func() error {
				if testutil.ToFloat64(n.metrics.errors.WithLabelValues(am.URL)) < 2 || !strings.Contains(logs.String(), tc.wantError) {
					return fmt.Errorf("want %q logged and retried; sentinel_notifications_errors_total %v, log:\n%s",
						tc.wantError, testutil.ToFloat64(n.metrics.errors.WithLabelValues(am.URL)), logs)
				}
				return nil
			})
			if _, ok := alertsOf(t, am)[name]; ok {
				t.Errorf("%s reached Alertmanager", name)
			}
			if n.QueueLength() != 1 {
				t.Errorf("queue length %d: the undelivered alert must stay queued for the next attempt", n.QueueLength())
			}
		})
	}
}
