package main

import (
	"fmt"
	"io"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/rules"
)

// checkConfig validates a config file and every rule file it names.
func checkConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: sentinel check config FILE")
		return 2
	}
	cfg, err := config.Load(args[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		// Report the rule files' errors as well, as far as they can be found.
		if patterns := config.RulePatternsOf(args[0]); len(patterns) > 0 {
			if _, err := rules.LoadFiles(patterns, rules.Options{}); err != nil {
				fmt.Fprintln(stderr, err)
			}
		}
		return 1
	}
	set, err := rules.LoadFiles(cfg.RulePatterns(), rules.Options{DefaultInterval: cfg.EvaluationInterval, TargetLabels: cfg.TargetLabelNames()})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: SUCCESS: %d rule files, %d groups, %d rules\n", args[0], len(set.Files), len(set.Groups), countRules(set))
	return 0
}

// checkRules validates rule files, reporting every error of every file.
func checkRules(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: sentinel check rules FILE...")
		return 2
	}
	status := 0
	for _, f := range args {
		groups, err := rules.ParseFile(f, rules.Options{})
		if err != nil {
			fmt.Fprintln(stderr, err)
			status = 1
			continue
		}
		n := 0
		for _, g := range groups {
			n += len(g.Rules)
		}
		fmt.Fprintf(stdout, "%s: SUCCESS: %d groups, %d rules\n", f, len(groups), n)
	}
	return status
}

func countRules(set *rules.Set) int {
	n := 0
	for _, g := range set.Groups {
		n += len(g.Rules)
	}
	return n
}
