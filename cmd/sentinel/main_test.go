package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/testkit"

	"github.com/kube-sentinel/sentinel/internal/golden"
)

func TestCommands(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		status int
	}{
		{"check_rules_valid", []string{"check", "rules", "testdata/good_rules.yaml"}, 0},
		{"check_rules_invalid", []string{"check", "rules", "testdata/bad_rules.yaml", "testdata/good_rules.yaml"}, 1},
		{"check_rules_missing", []string{"check", "rules", "testdata/nope.yaml"}, 1},
		{"check_config_valid", []string{"check", "config", "testdata/good.yaml"}, 0},
		{"check_config_bad_rules", []string{"check", "config", "testdata/bad_config.yaml"}, 1},
		{"check_config_bad_both", []string{"check", "config", "testdata/bad_config_and_rules.yaml"}, 1},
		{"check_config_bad_trace_url", []string{"check", "config", "testdata/bad_trace_url.yaml"}, 1},
		{"unknown_command", []string{"frobnicate"}, 2},
		{"run_bad_flag", []string{"run", "--log.format=xml"}, 2},
		{"run_missing_config", []string{"run", "--config.file=testdata/nope.yaml"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			status := runCommand(context.Background(), c.args, &out, &out)
			if status != c.status {
				t.Errorf("exit %d, want %d; output:\n%s", status, c.status, out.String())
			}
			golden.Check(t, filepath.Join("testdata", c.name+".golden"), out.String())
		})
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if status := runCommand(context.Background(), []string{"version"}, &out, &out); status != 0 {
		t.Fatal(status)
	}
	if !strings.HasPrefix(out.String(), "sentinel, version dev (branch: ") || !regexp.MustCompile(`go version: +go1\.`).MatchString(out.String()) {
		t.Fatalf("version output %q", out.String())
	}
}

// TestBinarySIGTERM builds the real binary with a stamped version, runs the
// daemon and stops it with SIGTERM: it must exit 0.
func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "sentinel")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.9.9 -X main.commit=abc", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "sentinel, version v9.9.9 (branch: , revision: abc)") {
		t.Fatalf("version: %q %v", out, err)
	}
	cmd := exec.Command(bin, "run", "--config.file=testdata/good.yaml", "--web.listen-address=127.0.0.1:0",
		"--otlp.grpc-address=127.0.0.1:0", "--otlp.http-address=127.0.0.1:0", "--storage.path="+t.TempDir())
	var logs testkit.SyncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the daemon to be ready", 20*time.Second, func() (bool, bool) {
		return true, strings.Contains(logs.String(), "sentinel is ready")
	})
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("no exit after SIGTERM\n%s", logs.String())
	}
}
