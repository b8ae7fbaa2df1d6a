package ruletest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/yamlpos"
	"github.com/kube-sentinel/sentinel/rules"
)

// Exit codes of Run, as `sentinel test rules` exits.
const (
	ExitSuccess = 0 // every test passed
	ExitFailure = 1 // a test failed
	ExitError   = 2 // a file could not be read or parsed, or its rule files are invalid
)

// Run runs the rule unit tests of every file, printing a report to w the
// way promtool does ("Unit Testing: FILE", then "  SUCCESS" or every
// failure), and returns the exit code: ExitSuccess when every test passed,
// ExitFailure when a test failed, ExitError when a file could not be read
// or parsed or its rule files are invalid (printed as FILE:LINE:COL:
// message). Of several files, the worst outcome decides.
func Run(ctx context.Context, w io.Writer, files []string) int {
	if len(files) == 0 {
		fmt.Fprintln(w, "no rule test files given")
		return ExitError
	}
	code := ExitSuccess
	for _, f := range files {
		code = max(code, runFile(ctx, w, f))
	}
	return code
}

func runFile(ctx context.Context, w io.Writer, path string) int {
	fmt.Fprintf(w, "Unit Testing: %s\n", path)
	failures, err := runTests(ctx, path)
	switch {
	case err != nil:
		fmt.Fprintf(w, "  FAILED:\n%s\n\n", err)
		return ExitError
	case len(failures) > 0:
		fmt.Fprintln(w, "  FAILED:")
		for _, f := range failures {
			fmt.Fprint(w, f)
		}
		fmt.Fprintln(w)
		return ExitFailure
	}
	fmt.Fprint(w, "  SUCCESS\n\n")
	return ExitSuccess
}

// runTests runs every test of one file and returns the failures, each
// rendered; an error means the file or its rule files are unusable.
func runTests(ctx context.Context, path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *PathError: "open FILE: ..."
	}
	tf, err := parseFile(path, data)
	if err != nil {
		return nil, err
	}
	files, err := resolveRuleFiles(tf)
	if err != nil {
		return nil, err
	}
	set, err := rules.LoadFiles(files, rules.Options{DefaultInterval: tf.evaluationInterval})
	if err != nil {
		return nil, err
	}
	var failures []string
	for i, tc := range tf.tests {
		out, err := runTest(ctx, tf, i, tc, set)
		if err != nil {
			return nil, fmt.Errorf("%s: test %s: %w", path, testLabel(i, tc), err)
		}
		failures = append(failures, out...)
	}
	return failures, nil
}

// resolveRuleFiles expands rule_files, relative to the test file's
// directory; a name or pattern that finds no file is an error at its line.
func resolveRuleFiles(tf *testFile) ([]string, error) {
	var out []string
	var errs []error
	seen := map[string]bool{}
	fail := func(ref ruleFileRef, format string, args ...any) {
		errs = append(errs, &yamlpos.Error{File: tf.path, Line: ref.pos.line, Col: ref.pos.col, Msg: fmt.Sprintf(format, args...)})
	}
	for _, ref := range tf.ruleFiles {
		p := ref.pattern
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(tf.path), p)
		}
		matches, err := filepath.Glob(p)
		switch {
		case err != nil:
			fail(ref, "rule_files: bad pattern %q: %v", ref.pattern, err)
			continue
		case len(matches) == 0 && strings.ContainsAny(ref.pattern, `*?[\`):
			fail(ref, "rule_files: %q matches no file", ref.pattern)
			continue
		case len(matches) == 0:
			_, err := os.Stat(p)
			if err == nil {
				err = errors.New("cannot be read")
			}
			fail(ref, "rule_files: %v", err)
			continue
		}
		for _, m := range matches {
			if !seen[m] {
				seen[m] = true
				// rules.LoadFiles globs again: keep a matched name literal.
				out = append(out, escapeGlob(m))
			}
		}
	}
	return out, errors.Join(errs...)
}

func escapeGlob(s string) string {
	if filepath.Separator == '\\' {
		return s // no escaping there; names with glob characters are rare
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func testLabel(i int, tc *testCase) string {
	if tc.name == "" {
		return fmt.Sprintf("#%d", i+1)
	}
	return fmt.Sprintf("%q", tc.name)
}

// runTest runs one test on a fresh engine and returns its failures.
func runTest(ctx context.Context, tf *testFile, i int, tc *testCase, set *rules.Set) ([]string, error) {
	head := fmt.Sprintf("    test %s (%s:%d:%d)", testLabel(i, tc), tf.path, tc.pos.line, tc.pos.col)

	var failures []string
	external := map[string]string{}
	for k, v := range tf.externalLabels {
		external[k] = v
	}
	for k, v := range tc.externalLabels {
		external[k] = v
	}
	sim, err := newSimulation(tc, set, tf.evaluationInterval, external)
	if err != nil {
		return nil, err
	}
	results, err := sim.run(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{engine.NoDataAlertName: true} // the built-in alert can be tested too
	for _, g := range set.Groups {
		for _, r := range g.Rules {
			names[r.Name] = true
		}
	}
	for _, res := range results {
		at := res.test
		where := fmt.Sprintf("%s, eval_time %s", head, model.Duration(at.evalTime))
		switch {
		case res.lastEval < 0:
			where += " (before any evaluation)"
		case res.lastEval != at.evalTime:
			where += fmt.Sprintf(" (last evaluation at %s)", model.Duration(res.lastEval))
		}
		where += ", alertname " + at.alertname
		if !names[at.alertname] {
			failures = append(failures, fmt.Sprintf("%s:\n        no rule in the rule files is named %q\n", where, at.alertname))
			continue
		}
		exp, got, same := compareAlerts(at.expected, res.got)
		if same {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s:\n        expected %s, got %d (- expected, + got):\n", where, plural(len(exp), "alert"), len(got))
		for _, l := range diffLines(exp, got) {
			fmt.Fprintf(&b, "        %s\n", l)
		}
		failures = append(failures, b.String())
	}
	return failures, nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
