package ruletest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSLOFromMetrics: input_series of apiserver_request_total drive an
// availability SLO (5xx = failed) through the scrape source's counter
// code; the file passes, and the same file with a wrong expectation fails.
func TestSLOFromMetrics(t *testing.T) {
	const file = "testdata/slo-metrics_test.yaml"
	var out bytes.Buffer
	if code := Run(context.Background(), &out, []string{file}); code != ExitSuccess {
		t.Fatalf("exit code %d, want %d; output:\n%s", code, ExitSuccess, out.String())
	}

	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rulesFile, err := filepath.Abs("testdata/rules/slo-metrics.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Replace(string(text), "rule_files: [rules/slo-metrics.yaml]", "rule_files: ["+rulesFile+"]", 1)
	wrong = strings.Replace(wrong, "exp_labels: {severity: page,", "exp_labels: {severity: ticket,", 1)
	if wrong == string(text) || !strings.Contains(wrong, rulesFile) || !strings.Contains(wrong, "severity: ticket") {
		t.Fatal("the wrong variant is not different")
	}
	wrongFile := filepath.Join(t.TempDir(), "wrong_test.yaml")
	if err := os.WriteFile(wrongFile, []byte(wrong), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := Run(context.Background(), &out, []string{wrongFile}); code != ExitFailure {
		t.Fatalf("wrong expectation: exit code %d, want %d; output:\n%s", code, ExitFailure, out.String())
	}
	for _, want := range []string{"5xx on namespaces burn the availability budget", "severity=\"page\""} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the failure report does not mention %q:\n%s", want, out.String())
		}
	}
}
