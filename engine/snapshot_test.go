package engine

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestSnapshotRoundTrip: a firing alert and an SLO's budget survive a
// snapshot into a new engine, with the same startsAt and without going
// back through `for`.
func TestSnapshotRoundTrip(t *testing.T) {
	both := namespacesRule + strings.Replace(budgetRule, "groups:\n", "", 1)
	e, clock, rec := newTestEngine(t, both, Options{})
	feed(e, apiserverSpan("GET", "/api/v1/namespaces/a"), 0, 60*time.Second, time.Second, constant(2*time.Second))
	for _, at := range []time.Duration{15, 30, 45, 60} {
		clock.t = t0.Add(at * time.Second)
		e.Evaluate(context.Background(), clock.t)
	}
	first := rec.take()
	if len(first) == 0 {
		t.Fatal("did not fire")
	}
	before := e.Status()
	var buf bytes.Buffer
	if err := e.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}

	e2, clock2, rec2 := newTestEngine(t, both, Options{})
	clock2.t = clock.t
	n, err := e2.RestoreSnapshot(bytes.NewReader(buf.Bytes()))
	if err != nil || n != 2 {
		t.Fatalf("restored %d rules: %v", n, err)
	}
	// Evaluate at the same instant as the last evaluation before the snapshot.
	e2.Evaluate(context.Background(), clock2.t)
	after := e2.Status()
	if after[0].Rules[0].State != StateFiring || after[0].Rules[0].Series[0].Observations != before[0].Rules[0].Series[0].Observations {
		t.Fatalf("latency rule not restored: %+v", after[0].Rules[0])
	}
	if got, want := after[0].Rules[0].Series[0].Value, before[0].Rules[0].Series[0].Value; got != want {
		t.Fatalf("quantile after restore %v, before %v: the sketches did not survive", got, want)
	}
	if b, a := before[1].Rules[0].Series[0].SLO.BudgetRemaining, after[1].Rules[0].Series[0].SLO.BudgetRemaining; a != b {
		t.Fatalf("budget %v, was %v", a, b)
	}
	sent := rec2.take()
	if len(sent) == 0 || !sent[0].StartsAt.Equal(first[0].StartsAt) {
		t.Fatalf("after restore: %+v, want resent at once with startsAt %v", sent, first[0].StartsAt)
	}
}

func TestSnapshotRefusesBadInput(t *testing.T) {
	e, clock, _ := newTestEngine(t, namespacesRule, Options{})
	feed(e, apiserverSpan("GET", "/api/v1/namespaces/a"), 0, 60*time.Second, time.Second, constant(2*time.Second))
	clock.t = t0.Add(time.Minute)
	var buf bytes.Buffer
	if err := e.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-3] ^= 0xff
	cases := map[string][]byte{
		"empty":     nil,
		"foreign":   []byte("{\"some\": \"json\"}"),
		"truncated": good[:len(good)/2],
		"corrupt":   flipped,
		"newer":     append(append([]byte(snapshotMagic), 99), good[len(snapshotMagic)+1:]...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			fresh, _, _ := newTestEngine(t, namespacesRule, Options{})
			n, err := fresh.RestoreSnapshot(bytes.NewReader(data))
			if err == nil || n != 0 {
				t.Fatalf("accepted: %d, %v", n, err)
			}
			if len(fresh.Status()[0].Rules[0].Series) != 0 {
				t.Fatal("a refused snapshot changed state")
			}
		})
	}
	// A changed rule does not take the old state.
	changed, _, _ := newTestEngine(t, strings.Replace(namespacesRule, "threshold: 1s", "threshold: 2s", 1), Options{})
	if n, err := changed.RestoreSnapshot(bytes.NewReader(good)); err != nil || n != 0 {
		t.Fatalf("changed rule restored: %d %v", n, err)
	}
}

func FuzzRestoreSnapshot(f *testing.F) {
	e, clock, _ := newTestEngine(f, namespacesRule, Options{})
	feed(e, apiserverSpan("GET", "/api/v1/namespaces/a"), 0, 60*time.Second, time.Second, constant(2*time.Second))
	clock.t = t0.Add(time.Minute)
	var buf bytes.Buffer
	if err := e.WriteSnapshot(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		fresh, _, _ := newTestEngine(t, namespacesRule, Options{})
		fresh.RestoreSnapshot(bytes.NewReader(data)) // must not panic
	})
}
