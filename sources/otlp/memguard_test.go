package otlp

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// The guard holds back what the budget would take beyond 80% of the Go
// memory limit, given what lives besides the requests: requests wait for
// the rest of the budget, and with all of it held back are refused with
// 429 MEMORY_BUDGET_EXHAUSTED; as live memory falls it gives the budget
// back and requests are served again. The memory read is the test's: the
// process's own is not near any limit.
func TestMemoryGuardHoldsBackTheBudget(t *testing.T) {
	const (
		budget = 8 << 20
		limit  = 100 << 20 // 80%: 80 MiB
	)
	opts := Options{Observer: &countingObserver{}, GRPCAddress: "127.0.0.1:0", HTTPAddress: "127.0.0.1:0",
		Limits: Limits{MemoryBudgetBytes: budget, MaxQueueWait: 200 * time.Millisecond}}
	r, _ := newTestReceiver(t, opts)
	var live atomic.Uint64
	r.guard.every = 5 * time.Millisecond
	r.guard.read = func() (uint64, uint64) { return live.Load(), limit }
	serveReceiver(t, r)
	body := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(71, 72)), 8), false)
	send := func() (int, string) {
		rec := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", body)
		if rec.Code == http.StatusOK {
			return rec.Code, ""
		}
		_, reason := decodeStatus(t, rec)
		return rec.Code, reason
	}
	heldBack := func(want int64) {
		t.Helper()
		testkit.WaitFor(t, fmt.Sprintf("the guard to hold back %d bytes", want), 20*time.Second, func() (bool, bool) {
			return true, r.guard.held.Load() == want
		})
	}

	live.Store(60 << 20) // with the budget, 68 MiB: nothing held back
	if code, reason := send(); code != http.StatusOK {
		t.Fatalf("with room for the budget: %d %s", code, reason)
	}
	if got := r.guard.held.Load(); got != 0 {
		t.Fatalf("%d bytes held back with room for the budget", got)
	}

	live.Store(78 << 20) // with the budget, 86 MiB: 6 MiB held back
	heldBack(6 << 20)
	if code, reason := send(); code != http.StatusOK {
		t.Errorf("with 2 MiB of the budget left: %d %s", code, reason)
	}

	live.Store(90 << 20) // no room at all
	heldBack(budget)
	if code, reason := send(); code != http.StatusTooManyRequests || reason != reasonOverBudget {
		t.Errorf("with the budget held back: %d %s, want 429 %s", code, reason, reasonOverBudget)
	}

	live.Store(50 << 20)
	heldBack(0)
	if code, reason := send(); code != http.StatusOK {
		t.Errorf("after the guard gave the budget back: %d %s", code, reason)
	}
	if got := r.budget.inUse.Load(); got != 0 {
		t.Errorf("%d bytes of the budget still held by requests", got)
	}
}

// The guard measures the process: live heap and stacks are non-zero, and
// without a Go memory limit (as in tests) it stays off.
func TestReadLiveMemory(t *testing.T) {
	live, limit := readLiveMemory()
	if live == 0 {
		t.Error("live memory read as 0")
	}
	if limit != 0 {
		t.Skipf("a Go memory limit of %d bytes is set in this environment", limit)
	}
}
