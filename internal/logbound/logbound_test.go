package logbound

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/time/rate"
)

func TestFloodIsBoundedAndCounted(t *testing.T) {
	var buf bytes.Buffer
	dropped := 0
	// A rate of nearly zero: only the burst passes within the test.
	l := NewLogLogger(slog.NewTextHandler(&buf, nil), slog.LevelWarn, 1e-9, 5, func() { dropped++ })
	for i := 0; i < 10000; i++ {
		l.Printf("http: TLS handshake error from 127.0.0.1:%d: bad certificate", i)
	}
	lines := strings.Count(buf.String(), "\n")
	if lines != 5 {
		t.Errorf("%d lines written from a flood of 10000, want the burst of 5", lines)
	}
	if dropped != 9995 {
		t.Errorf("counted %d dropped lines, want 9995", dropped)
	}
}

func TestSuppressedCountIsReported(t *testing.T) {
	var buf bytes.Buffer
	h := New(slog.NewTextHandler(&buf, nil), 1e-9, 1, nil)
	log := slog.New(h)
	log.Warn("first")
	log.Warn("dropped")
	log.Warn("dropped")
	h.shared.limiter.SetLimit(rate.Inf) // let the next one through
	log.With("component", "web").Warn("after")
	out := buf.String()
	if !strings.Contains(out, "msg=after") || !strings.Contains(out, "suppressed_since_last=2") {
		t.Errorf("the line after a drop should say how many were dropped; got:\n%s", out)
	}
}
