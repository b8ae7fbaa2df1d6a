package otlp

import (
	"context"
	"sync/atomic"
	"time"
)

// queue bounds the export requests admitted but not yet decoding: those
// whose bodies arrive and those read and waiting for a decoding slot
// (Limits.MaxQueuedRequests). A request beyond it waits for a place
// before its body is read, for Limits.MaxQueueWait at most: it holds no
// memory and takes no CPU meanwhile, and its client, whose body is not
// read, is held back by TCP flow control instead of being answered 429
// at once and sending the next request. So under overload what is
// runnable stays a few requests deep, and what is held stays far under
// the memory budget (which still bounds it).
type queue struct {
	places  chan struct{}
	wait    time.Duration // for a place, at most
	hold    time.Duration // a place, while the body arrives, at most
	waiters atomic.Int64  // requests waiting for a place
}

// newQueue holds a place for half the wait while a body arrives: a
// request that waits the whole of it finds a place unless requests whose
// bodies did arrive hold them all.
func newQueue(size int, wait time.Duration) *queue {
	return &queue{places: make(chan struct{}, size), wait: wait, hold: wait / 2}
}

// place is a request's place in the queue. It is given back once: when
// the request takes a decoding slot or ends, or when its body has been
// arriving for longer than queue.hold — so that clients stalling their
// bodies cannot hold the places (they hold their memory, until the body's
// deadline).
type place struct {
	q     *queue
	given atomic.Bool
	timer *time.Timer
}

// take waits for a place, for queue.wait at most or until ctx is done;
// false means none was free.
func (q *queue) take(ctx context.Context) (*place, bool) {
	select {
	case q.places <- struct{}{}:
	default:
		q.waiters.Add(1)
		defer q.waiters.Add(-1)
		t := time.NewTimer(q.wait)
		defer t.Stop()
		select {
		case q.places <- struct{}{}:
		case <-t.C:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
	p := &place{q: q}
	p.timer = time.AfterFunc(q.hold, p.give)
	return p, true
}

// done gives the place back, if it was not already.
func (p *place) done() {
	p.timer.Stop()
	p.give()
}

func (p *place) give() {
	if p.given.CompareAndSwap(false, true) {
		<-p.q.places
	}
}

// queued is the number of places taken.
func (q *queue) queued() int { return len(q.places) }
