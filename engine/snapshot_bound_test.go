package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// manyGroups feeds one slow GET per namespace-like group value, so that the
// rule holds n series.
func manyGroups(e *Engine, n int) {
	for i := 0; i < n; i++ {
		l := apiserverSpan(fmt.Sprintf("GET%04d", i), "/api/v1/namespaces/a")
		l["verb"] = fmt.Sprintf("GET%04d", i)
		e.Observe(&Observation{End: t0.Add(time.Second), Duration: 2 * time.Second, TraceID: traceID(i), Labels: l})
	}
}

const anyVerbRule = `
groups:
  - name: apiserver
    interval: 15s
    rules:
      - alert: NamespacesP99
        matchers: ['service.name="apiserver"', 'resource="namespaces"']
        group_by: [verb]
        objective: {quantile: 0.99, threshold: 1s}
        window: 1m
`

// TestSnapshotWriteStopsAtTheCap: a snapshot larger than MaxSnapshotBytes
// is refused before anything reaches the writer, so a partial file can
// never replace a good one.
func TestSnapshotWriteStopsAtTheCap(t *testing.T) {
	e, _, _ := newTestEngine(t, anyVerbRule, Options{MaxSnapshotBytes: 4096})
	manyGroups(e, 200)
	var w countingWriter
	err := e.WriteSnapshot(&w)
	if !errors.Is(err, ErrSnapshotTooLarge) {
		t.Fatalf("err = %v, want ErrSnapshotTooLarge", err)
	}
	if w.n != 0 {
		t.Fatalf("%d bytes reached the writer", w.n)
	}
	// Under the cap it is written, and restores.
	small, _, _ := newTestEngine(t, anyVerbRule, Options{MaxSnapshotBytes: 4096})
	manyGroups(small, 2)
	var buf bytes.Buffer
	if err := small.WriteSnapshot(&buf); err != nil || int64(buf.Len()) > 4096 {
		t.Fatalf("small state: %d bytes, %v", buf.Len(), err)
	}
}

// TestSnapshotRestoreRefusesOverTheCap: a snapshot over the cap is refused
// after reading at most the cap (plus one byte), never read whole.
func TestSnapshotRestoreRefusesOverTheCap(t *testing.T) {
	big, _, _ := newTestEngine(t, anyVerbRule, Options{})
	manyGroups(big, 200)
	var buf bytes.Buffer
	if err := big.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	limit := int64(buf.Len() / 4)
	fresh, _, _ := newTestEngine(t, anyVerbRule, Options{MaxSnapshotBytes: limit})
	// The good snapshot followed by an endless stream: a reader that read
	// it all would never return.
	rd := &countingReader{r: io.MultiReader(bytes.NewReader(buf.Bytes()), endless{})}
	n, err := fresh.RestoreSnapshot(rd)
	if !errors.Is(err, ErrSnapshotTooLarge) || n != 0 {
		t.Fatalf("restored %d: %v, want ErrSnapshotTooLarge", n, err)
	}
	if rd.n > limit+1 {
		t.Fatalf("read %d bytes of a snapshot over the %d-byte cap", rd.n, limit)
	}
	if len(fresh.Status()[0].Rules[0].Series) != 0 {
		t.Fatal("a refused snapshot changed state")
	}
	// The same file under a cap it fits restores.
	ok, _, _ := newTestEngine(t, anyVerbRule, Options{MaxSnapshotBytes: int64(buf.Len())})
	if n, err := ok.RestoreSnapshot(bytes.NewReader(buf.Bytes())); err != nil || n != 1 {
		t.Fatalf("at the cap: restored %d, %v", n, err)
	}
}

type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// TestStateChangedOnFiringAndResolve: the engine says when an alert began
// or stopped firing (so the daemon snapshots then), and not on a mere
// resend or while pending.
func TestStateChangedOnFiringAndResolve(t *testing.T) {
	e, clock, _ := newTestEngine(t, namespacesRule, Options{ResendDelay: 15 * time.Second})
	get := apiserverSpan("GET", "/api/v1/namespaces/default")
	steps := []struct {
		at      time.Duration
		dur     time.Duration
		changed bool
	}{
		{60, 50 * time.Millisecond, false},
		{75, 3 * time.Second, false},       // pending
		{90, 3 * time.Second, false},       // pending
		{105, 3 * time.Second, true},       // firing
		{120, 3 * time.Second, false},      // resent
		{135, 3 * time.Second, false},      // resent
		{210, 10 * time.Millisecond, true}, // resolved
		{225, 10 * time.Millisecond, false},
	}
	prev := time.Duration(0)
	for _, s := range steps {
		at := s.at * time.Second
		feed(e, get, prev, at, time.Second, constant(s.dur))
		prev = at
		clock.t = t0.Add(at)
		e.Evaluate(context.Background(), clock.t)
		got := false
		select {
		case <-e.StateChanged():
			got = true
		default:
		}
		if got != s.changed {
			t.Fatalf("at %v: state change signalled %v, want %v (state %v)", at, got, s.changed, e.Status()[0].Rules[0].State)
		}
	}
}
