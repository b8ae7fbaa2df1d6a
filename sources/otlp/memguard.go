package otlp

import (
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	runtimemetrics "runtime/metrics"
	"sync/atomic"
	"time"
)

// memoryGuard holds back part of the requests' memory budget while the
// process's live memory is near its Go memory limit (which sentinel run
// sets from the container's): the budget bounds what requests hold, but
// not the rest (the trace buffer, the engine's groups, connections), and
// near the limit the garbage collector runs without pause and the kernel
// may kill the process. So the guard takes budget as requests give it
// back — new requests wait for it before their bodies are read, then are
// refused with 429 MEMORY_BUDGET_EXHAUSTED — and gives it back once live
// memory is low again, as the Collector's memory_limiter does with data.
type memoryGuard struct {
	b     *budget
	log   *slog.Logger
	every time.Duration
	// read returns the live memory (heap live at the last collection and
	// goroutine stacks) and the Go memory limit; 0 or math.MaxInt64 for
	// the limit turns the guard off.
	read func() (live, limit uint64)

	held atomic.Int64 // bytes of the budget held back
}

// guardShare is the share of the Go memory limit that live memory may
// reach with the whole budget held: the rest is the garbage collector's
// room. The guard holds back what the budget would take beyond it.
const guardShare = 0.80

func newMemoryGuard(b *budget, log *slog.Logger) *memoryGuard {
	return &memoryGuard{b: b, log: log, every: 100 * time.Millisecond, read: readLiveMemory}
}

func readLiveMemory() (live, limit uint64) {
	samples := []runtimemetrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	runtimemetrics.Read(samples)
	for _, s := range samples {
		if s.Value.Kind() == runtimemetrics.KindUint64 {
			live += s.Value.Uint64()
		}
	}
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		limit = uint64(l)
	}
	return live, limit
}

func (g *memoryGuard) run(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	t := time.NewTicker(g.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if n := g.held.Swap(0); n > 0 {
				g.b.sem.Release(n)
			}
			return
		case <-t.C:
			g.step(ctx)
		}
	}
}

// step moves what is held back towards what keeps live memory, with the
// requests holding the whole budget, under guardShare of the limit:
// what lives besides the requests, plus the budget, minus that share.
// It takes budget as requests give it back (before those waiting after
// it), and gives back once it holds a sixteenth of the budget too much.
func (g *memoryGuard) step(ctx context.Context) {
	live, limit := g.read()
	held := g.held.Load()
	if limit == 0 {
		if held > 0 {
			g.held.Add(-held)
			g.b.sem.Release(held)
		}
		return
	}
	besides := int64(live) - g.b.inUse.Load() // memory the requests do not hold
	target := min(max(besides+g.b.total-int64(guardShare*float64(limit)), 0), g.b.total)
	switch {
	case target > held:
		if g.b.sem.Acquire(ctx, target-held) != nil {
			return
		}
		if held == 0 {
			g.log.Warn("live memory near the Go memory limit: OTLP requests get less of the memory budget until it is low again",
				"live_bytes", live, "limit_bytes", limit, "held_back_bytes", target)
		}
		g.held.Store(target)
	case target < held-g.b.total/16 || (target == 0 && held > 0):
		g.held.Store(target)
		g.b.sem.Release(held - target)
		if target == 0 {
			g.log.Info("live memory low again: OTLP requests have the whole memory budget", "live_bytes", live, "limit_bytes", limit)
		}
	}
}
