package testkit

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Chromium returns the headless browser to test pages with, skipping the
// test when there is none (failing it when CI=true).
func Chromium(t testing.TB) string {
	t.Helper()
	return Binary(t, "on Debian: apt-get install chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
}

// RunChromium runs a headless Chromium that talks to loopback only, with
// args such as --dump-dom URL or --screenshot=FILE URL, and returns its
// standard output.
func RunChromium(t testing.TB, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--no-default-browser-check", "--mute-audio",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}
