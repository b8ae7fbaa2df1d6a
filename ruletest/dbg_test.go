package ruletest

import (
	"context"
	"os"
	"testing"
)

func TestDebug(t *testing.T) {
	code := Run(context.Background(), os.Stdout, []string{"testdata/passing.yaml", "testdata/failing.yaml", "testdata/malformed.yaml"})
	t.Log(code)
}
