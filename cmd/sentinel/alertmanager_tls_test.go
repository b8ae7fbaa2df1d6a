package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/amtest"
	"github.com/kube-sentinel/sentinel/internal/testcerts"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

const tlsAlertRule = `
groups:
  - name: tls
    interval: 1h
    rules:
      - alert: NamespacesSlowOverTLS
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        objective: {quantile: 0.5, threshold: 100ms}
        window: 1h
`

// TestAlertmanagerTLSAndBasicAuth configures sentinel as a Prometheus
// user would (alertmanagers with scheme, static_configs, tls_config and
// basic_auth) against a real Alertmanager that wants TLS and a password.
// The entry with the right CA and password delivers; one with a wrong
// password is logged with what to check and counted, and the daemon runs
// on; a reload of the same file keeps the notifier as it is.
func TestAlertmanagerTLSAndBasicAuth(t *testing.T) {
	ca := testcerts.NewCA(t, "alertmanager-ca")
	am := amtest.StartSecure(t, amtest.SecureOptions{CA: ca, Server: ca.Server(t, "alertmanager"), Username: "sentinel", Password: "s3cret"})
	amURL, _ := url.Parse(am.URL)

	dir := t.TempDir()
	testcerts.WriteFile(t, filepath.Join(dir, "ca.crt"), ca.CertPEM)
	testcerts.WriteFile(t, filepath.Join(dir, "am-password"), []byte("s3cret"))
	testcerts.WriteFile(t, filepath.Join(dir, "rules.yaml"), []byte(tlsAlertRule))
	cfgFile := filepath.Join(dir, "sentinel.yaml")
	testcerts.WriteFile(t, cfgFile, fmt.Appendf(nil, `
rule_files: [rules.yaml]
otlp: {grpc: {listen_address: "127.0.0.1:0"}, http: {listen_address: "127.0.0.1:0"}}
storage: {path: %q}
alerting:
  alertmanagers:
    - scheme: https
      static_configs: [{targets: [%q]}]
      tls_config: {ca_file: ca.crt}
      basic_auth: {username: sentinel, password_file: am-password}
    - url: https://localhost:%s
      tls_config: {ca_file: ca.crt}
      basic_auth: {username: sentinel, password: wrong}
`, filepath.Join(dir, "data"), amURL.Host, amURL.Port()))
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	d := startDaemon(t, daemonOptions{Config: cfg, ConfigFile: cfgFile, WebAddress: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx := context.Background()

	l := labelMap{"service.name": "apiserver", "resource": "namespaces", "span.kind": "server"}
	for range 10 {
		d.engine.Observe(&engine.Observation{End: time.Now(), Duration: time.Second, Labels: l})
	}
	d.engine.Evaluate(ctx, time.Now())

	good, bad := "https://"+amURL.Host, "https://localhost:"+amURL.Port()
	errorsOf := func(name string) float64 {
		return metricValue(t, d, "sentinel_notifications_errors_total", "alertmanager", name)
	}
	testkit.Eventually(t, 20*time.Second, func() error {
		alerts, err := am.Alerts(ctx)
		delivered := err == nil && len(alerts) == 1 && alerts[0].Labels["alertname"] == "NamespacesSlowOverTLS"
		if delivered && errorsOf(bad) > 0 && strings.Contains(logs.String(), "refused sentinel's credentials") {
			return nil
		}
		return fmt.Errorf("delivered %v (err %v), errors for %s: %v; log:\n%s", delivered, err, bad, errorsOf(bad), logs)
	})
	if v := errorsOf(good); v != 0 {
		t.Errorf("%v errors for the entry with the right credentials", v)
	}
	if code, _ := httpDo(t, "GET", "http://"+d.webLn.Addr().String()+"/-/healthy"); code != 200 {
		t.Errorf("/-/healthy %d while an Alertmanager refuses sentinel", code)
	}
	if needRestart, err := d.reload(); err != nil || len(needRestart) > 0 {
		t.Errorf("reloading the same file: %v, restart needed for %v", err, needRestart)
	}
}

// metricValue is the value of the series of name whose label has value
// (0 when there is none).
func metricValue(t *testing.T, d *daemon, name, label, value string) float64 {
	t.Helper()
	mfs, err := d.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// TestBuildInfo: sentinel_build_info has prometheus/common/version's labels.
func TestBuildInfo(t *testing.T) {
	d, _, _ := runDaemonWith(t, reloadConfigPlain, noIntervalRules)
	if v := metricValue(t, d, "sentinel_build_info", "version", "dev"); v != 1 {
		t.Fatalf("sentinel_build_info{version=\"dev\"} %v", v)
	}
	if v := metricValue(t, d, "sentinel_build_info", "goversion", runtime.Version()); v != 1 {
		t.Fatalf("sentinel_build_info{goversion=%q} %v", runtime.Version(), v)
	}
}

const reloadConfigPlain = `
rule_files: [rules.yaml]
otlp: {grpc: {listen_address: "127.0.0.1:0"}, http: {listen_address: "127.0.0.1:0"}}
storage: {path: %q}
`
