package ruletest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/rules"
)

// rulePackDir is the control-plane rule pack that deploy/ ships as a
// ConfigMap: rule files NAME.yaml, each with its unit tests NAME_test.yaml.
const rulePackDir = "../deploy/rules"

// rulePack lists the pack's rule files and test files.
func rulePack(t *testing.T) (ruleFiles, testFiles []string) {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(rulePackDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		if strings.HasSuffix(f, "_test.yaml") {
			testFiles = append(testFiles, f)
		} else {
			ruleFiles = append(ruleFiles, f)
		}
	}
	if len(ruleFiles) == 0 || len(testFiles) == 0 {
		t.Fatalf("no rule files or no test files in %s", rulePackDir)
	}
	return ruleFiles, testFiles
}

// TestRulePack runs the rule pack's unit tests, as `sentinel test rules
// deploy/rules/*_test.yaml` does in CI, and requires every one to pass,
// logging how long each took (a timing claim belongs in a benchmark, not in
// a test that shares the machine with others).
func TestRulePack(t *testing.T) {
	_, testFiles := rulePack(t)
	for _, f := range testFiles {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out bytes.Buffer
			start := time.Now()
			code := Run(context.Background(), &out, []string{f})
			took := time.Since(start)
			if code != ExitSuccess {
				t.Fatalf("sentinel test rules %s: exit %d, want %d:\n%s", f, code, ExitSuccess, out.String())
			}
			t.Logf("%s: %s", f, took)
		})
	}
}

// TestRulePackIsTested checks that the pack stays tested as it grows: every
// rule file has a NAME_test.yaml that loads it, and every alert of the pack
// is both expected to fire and expected not to fire by some test.
func TestRulePackIsTested(t *testing.T) {
	ruleFiles, testFiles := rulePack(t)

	fires, silent := map[string]bool{}, map[string]bool{}
	loaded := map[string]bool{}
	for _, f := range testFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tf, err := parseFile(f, data)
		if err != nil {
			t.Fatal(err)
		}
		files, err := resolveRuleFiles(tf)
		if err != nil {
			t.Fatal(err)
		}
		for _, rf := range files {
			loaded[filepath.Clean(rf)] = true
		}
		for _, tc := range tf.tests {
			for _, at := range tc.alertTests {
				if len(at.expected) > 0 {
					fires[at.alertname] = true
				} else {
					silent[at.alertname] = true
				}
			}
		}
	}

	var alerts []string
	for _, rf := range ruleFiles {
		test := strings.TrimSuffix(rf, ".yaml") + "_test.yaml"
		if _, err := os.Stat(test); err != nil {
			t.Errorf("%s has no unit tests: want %s", rf, test)
		}
		if !loaded[filepath.Clean(rf)] {
			t.Errorf("no test file loads %s", rf)
		}
		groups, err := rules.ParseFile(rf, rules.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range groups {
			for _, r := range g.Rules {
				alerts = append(alerts, r.Name)
			}
		}
	}
	sort.Strings(alerts)
	for _, name := range alerts {
		if !fires[name] {
			t.Errorf("no test expects %s to fire", name)
		}
		if !silent[name] {
			t.Errorf("no test expects %s not to fire", name)
		}
	}
}
