package main

import (
	"io"
	"log/slog"
	"math"
	"testing"
)

func TestSetMemoryLimitRefusesBadRatios(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, r := range []float64{0, -0.5, 1.5, math.NaN()} {
		if err := setMemoryLimit(log, r); err == nil {
			t.Errorf("ratio %v accepted", r)
		}
	}
}
