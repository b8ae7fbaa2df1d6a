package ruletest

import (
	"context"
	"os"
	"testing"
)

func TestDebug(t *testing.T) {
	code := Run(context.Background(), os.Stdout, []string{"testdata/passing.yaml"})
	t.Log(code)
}
