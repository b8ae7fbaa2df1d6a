package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
)

// TestDemoLogLevel: the demo logs at warn unless --log.level says
// otherwise, and a bad level is refused.
func TestDemoLogLevel(t *testing.T) {
	cases := []struct {
		args   []string
		status int
		info   bool // whether info lines are logged
		debug  bool
	}{
		{nil, 0, false, false},
		{[]string{"--log.level=info"}, 0, true, false},
		{[]string{"--log.level=debug"}, 0, true, true},
		{[]string{"--log.level=loud"}, 2, false, false},
	}
	for _, c := range cases {
		_, logger, status := parseDemoFlags(c.args, io.Discard)
		if status != c.status || (logger == nil) != (c.status != 0) {
			t.Errorf("%v: status %d, logger %v", c.args, status, logger != nil)
			continue
		}
		if logger == nil {
			continue
		}
		ctx := context.Background()
		if got := logger.Enabled(ctx, slog.LevelInfo); got != c.info {
			t.Errorf("%v: info enabled %v, want %v", c.args, got, c.info)
		}
		if got := logger.Enabled(ctx, slog.LevelDebug); got != c.debug {
			t.Errorf("%v: debug enabled %v, want %v", c.args, got, c.debug)
		}
	}
}
