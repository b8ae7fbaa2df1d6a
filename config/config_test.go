package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/golden"
)

func TestLoadContractExample(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"evaluation_interval", c.EvaluationInterval, 15 * time.Second},
		{"external label", c.ExternalLabels["cluster"], "prod-eu1"},
		{"rule pattern relative to the file", c.RulePatterns()[0], "testdata/rules/*.yaml"},
		{"grpc", c.OTLPGRPCAddress, ":4317"},
		{"max bytes", c.OTLPMaxRequestBytes, int64(8388608)},
		{"read timeout", c.OTLPLimits.ReadTimeout, 30 * time.Second},
		{"idle timeout", c.OTLPLimits.IdleTimeout, 2 * time.Minute},
		{"header timeout", c.OTLPLimits.ReadHeaderTimeout, 10 * time.Second},
		{"header bytes", c.OTLPLimits.MaxHeaderBytes, 65536},
		{"streams", c.OTLPLimits.MaxConcurrentStreams, 100},
		{"spans per request", c.OTLPLimits.MaxSpansPerRequest, 32768},
		{"attributes", c.OTLPLimits.MaxAttributesPerSpan, 128},
		{"key bytes", c.OTLPLimits.MaxAttributeKeyBytes, 256},
		{"value bytes", c.OTLPLimits.MaxAttributeValueBytes, 1024},
		{"depth", c.OTLPLimits.MaxAttributeDepth, 8},
		{"budget", c.OTLPLimits.MemoryBudgetBytes, int64(256 << 20)},
		{"refusing after", c.OTLPLimits.RefusingAfter, 30 * time.Second},
		{"max queue wait", c.OTLPLimits.MaxQueueWait, time.Second},
		{"max queued requests", c.OTLPLimits.MaxQueuedRequests, 128},
		{"http connections", c.OTLPLimits.MaxHTTPConnections, 2048},
		{"grpc connections", c.OTLPLimits.MaxGRPCConnections, 512},
		{"alertmanager", c.Alertmanagers[0], "http://alertmanager.monitoring:9093"},
		{"resend", c.ResendDelay, time.Minute},
		{"trace url", c.TraceURLTemplate, "https://tracing.example/trace/{{ .TraceID }}"},
		{"storage", c.StoragePath, "/var/lib/sentinel"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestEmptyConfigIsDefaults(t *testing.T) {
	c, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.OTLPHTTPAddress != ":4318" || c.EvaluationInterval != 15*time.Second || c.StoragePath != "data/" ||
		c.ResendDelay != 0 || c.MaxSnapshotBytes != 0 || c.OTLPLimits != (OTLPLimits{}) { // the receiver's and engine's defaults
		t.Fatalf("defaults: %+v", c)
	}
}

// TestStorageAndAlertingBounds: the snapshot cap is read and must be
// positive; a trace_url_template is executed, not only parsed.
func TestStorageAndAlertingBounds(t *testing.T) {
	cases := []struct {
		name, yaml, err string
	}{
		{"cap", "storage: {max_snapshot_bytes: 1048576}", ""},
		{"zero cap", "storage: {max_snapshot_bytes: 0}", "t.yaml:1:31: max_snapshot_bytes must be positive"},
		{"misspelt field", `alerting: {trace_url_template: "x/{{ .TraceId }}"}`, `t.yaml:1:32: trace_url_template: template: trace_url_template:1:5: executing "trace_url_template" at <.TraceId>: can't evaluate field TraceId`},
		{"zero resend", "alerting: {resend_delay: 0s}", "t.yaml:1:26: resend_delay must be positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("t.yaml", []byte(c.yaml))
			switch {
			case c.err == "" && err != nil:
				t.Fatal(err)
			case c.err == "" && cfg.MaxSnapshotBytes != 1<<20:
				t.Fatalf("max_snapshot_bytes %d", cfg.MaxSnapshotBytes)
			case c.err != "" && (err == nil || !strings.HasPrefix(err.Error(), c.err)):
				t.Fatalf("error %v, want %s…", err, c.err)
			}
		})
	}
}

func TestInvalidReportsEveryError(t *testing.T) {
	_, err := Load("testdata/invalid.yaml")
	if err == nil {
		t.Fatal("accepted")
	}
	golden.Check(t, "testdata/invalid.golden", err.Error()+"\n")
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/full.yaml", "testdata/invalid.yaml"} {
		data, _ := os.ReadFile(p)
		f.Add(data)
	}
	// The HTTP client settings, decoded by reflection into Prometheus's type.
	f.Add([]byte(`alerting:
  alertmanagers:
    - scheme: https
      path_prefix: am
      static_configs: [{targets: ["a:1"]}]
      tls_config: {ca_file: ca.crt, min_version: TLS12}
      oauth2: {client_id: c, token_url: "http://t", endpoint_params: {a: b}, proxy_connect_header: {X: [s]}}
      http_headers: {X-A: {values: [v], secrets: [s]}}
scrape_configs:
  - job_name: a
    basic_auth: {username: u, password: p}
    proxy_url: http://proxy:1
`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		l := c.OTLPLimits
		if c.EvaluationInterval <= 0 || c.OTLPMaxRequestBytes <= 0 || l.MemoryBudgetBytes < 0 || l.ReadTimeout < 0 ||
			l.MaxSpansPerRequest < 0 || (l.MaxAttributeValueBytes != 0 && l.MaxAttributeValueBytes < MinAttributeValueBytes) {
			t.Fatalf("accepted invalid config %+v", c)
		}
	})
}

func TestTargetLabelNames(t *testing.T) {
	c, err := Parse("t.yaml", []byte(`
scrape_configs:
  - job_name: static
    static_configs: [{targets: ["a:1"], labels: {zone: z1, cluster: c}}]
  - job_name: kubelets
    kubernetes_sd_configs: [{role: node}]
  - job_name: apiserver
    kubernetes_sd_configs: [{role: endpoints}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.TargetLabelNames(), ","); got != "cluster,namespace,node,service,zone" {
		t.Fatalf("target labels %s", got)
	}
}

func TestResolveTimeout(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       time.Duration
		wantErr    string
	}{
		{"unset: the engine's default", "alerting: {resend_delay: 1m}", 0, ""},
		{"set", "alerting: {resolve_timeout: 30m}", 30 * time.Minute, ""},
		{"zero", "alerting: {resolve_timeout: 0s}", 0, "t.yaml:1:29: resolve_timeout must be positive"},
		{"not a duration", "alerting: {resolve_timeout: soon}", 0, "t.yaml:1:29: resolve_timeout: \"soon\" is not a duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("t.yaml", []byte(c.yaml))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ResolveTimeout != c.want {
				t.Errorf("resolve_timeout %v, want %v", cfg.ResolveTimeout, c.want)
			}
		})
	}
}
