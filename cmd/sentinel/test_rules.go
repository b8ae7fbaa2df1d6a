package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kube-sentinel/sentinel/ruletest"
)

// testRules runs rule unit tests: exit 0 all pass, 1 a test failed, 2 a
// file could not be read or parsed.
func testRules(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: sentinel test rules FILE...")
		return 2
	}
	return ruletest.Run(ctx, stdout, args)
}
