package testkit

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"
)

func TestWaitForReturnsTheValue(t *testing.T) {
	n := 0
	got := WaitFor(t, "the third try", 10*time.Second, func() (int, bool) {
		n++
		return n, n == 3
	})
	if got != 3 {
		t.Errorf("WaitFor returned %d, want 3", got)
	}
}

func TestEventuallyStopsAtNil(t *testing.T) {
	n := 0
	Eventually(t, 10*time.Second, func() error {
		if n++; n < 2 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 2 {
		t.Errorf("cond called %d times, want 2", n)
	}
}

func TestBinary(t *testing.T) {
	if p := Binary(t, "it is POSIX", "sh"); p == "" {
		t.Error("no path for sh")
	}
	t.Run("missing", func(t *testing.T) {
		t.Setenv("CI", "")
		defer func() {
			if !t.Skipped() {
				t.Error("a missing binary did not skip the test")
			}
		}()
		Binary(t, "none", "no-such-binary-anywhere")
		t.Error("Binary returned for a missing binary")
	})
}

func TestFreeAddrs(t *testing.T) {
	for _, addr := range []string{FreeAddr(t), net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen on %s: %v", addr, err)
			continue
		}
		l.Close()
	}
}
