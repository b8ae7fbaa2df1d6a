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
	if c.OTLPHTTPAddress != ":4318" || c.EvaluationInterval != 15*time.Second || c.StoragePath != "data/" {
		t.Fatalf("defaults: %+v", c)
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
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil && (c.EvaluationInterval <= 0 || c.OTLPMaxRequestBytes <= 0) {
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
