package otlp

import (
	"net"
	"sync/atomic"
	"time"
)

// connLimiter bounds the open connections of one listener: a connection
// costs memory (its goroutine, its read and write buffers) whether or not
// a request arrives on it, and the number of connections is the client's
// to choose (an HTTP/1.1 connection that has served an export holds about
// 22 KiB: its goroutine's stack and the server's buffers; measured in
// docs/limits.md). Beyond max, a new connection is accepted and closed at
// once (a client sees the connection reset and retries, as OTLP
// exporters do on transport errors) and counted. The memory budget does
// not count connections: a client whose request is refused for the
// budget gets a 429 or RESOURCE_EXHAUSTED with a retry delay on the
// connection it has, not a reset.
//
// Near the bound, onPressure(true) is called (the HTTP server then stops
// keeping connections alive, which closes the idle HTTP/1.1 ones, so that
// clients holding connections without using them cannot keep others out);
// well under it again, and a second later at the soonest,
// onPressure(false).
type connLimiter struct {
	max        int64
	open       atomic.Int64
	onRefused  func()
	onPressure func(bool) // may be nil; called by run only

	applied atomic.Bool   // what run last passed to onPressure
	kick    chan struct{} // the count changed
}

func newConnLimiter(max int64, onRefused func()) *connLimiter {
	return &connLimiter{max: max, onRefused: onRefused, kick: make(chan struct{}, 1)}
}

// limit wraps ln.
func (c *connLimiter) limit(ln net.Listener) net.Listener {
	return &limitedListener{Listener: ln, c: c}
}

// changed tells run that the count changed. Only a non-blocking send: it
// is called from Close, which the server may call while it holds its own
// locks.
func (c *connLimiter) changed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// minPressure is how long pressure, once applied, stays at least: a
// connection that finishes its request while keep-alives are off closes
// itself, and one that was between its answer and that check when the
// idle ones were closed must still find them off.
const minPressure = time.Second

// run calls onPressure(true) when the count of open connections reaches
// 90% of max and onPressure(false) when it is back at 75% or under (and
// minPressure has passed), reading the count itself each time it changes,
// until done is closed.
func (c *connLimiter) run(done <-chan struct{}) {
	high := max(c.max*9/10, 1)
	low := min(c.max*3/4, high-1)
	for {
		select {
		case <-done:
			return
		case <-c.kick:
		}
		if c.onPressure == nil {
			continue
		}
		open, on := c.open.Load(), c.applied.Load()
		switch {
		case !on && open >= high:
			c.onPressure(true)
			c.applied.Store(true)
			select {
			case <-done:
				return
			case <-time.After(minPressure):
			}
			c.changed() // what changed meanwhile is looked at now
		case on && open <= low:
			c.onPressure(false)
			c.applied.Store(false)
		}
	}
}

type limitedListener struct {
	net.Listener
	c *connLimiter
}

// Accept is called by one goroutine (the server's), so that the check and
// the count cannot race with another Accept; closes only lower the count.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.c.open.Load() >= l.c.max {
			l.c.onRefused()
			_ = conn.Close()
			continue
		}
		l.c.open.Add(1)
		l.c.changed()
		return &limitedConn{Conn: conn, c: l.c}, nil
	}
}

type limitedConn struct {
	net.Conn
	c      *connLimiter
	closed atomic.Bool
}

func (lc *limitedConn) Close() error {
	err := lc.Conn.Close()
	if lc.closed.CompareAndSwap(false, true) {
		lc.c.open.Add(-1)
		lc.c.changed()
	}
	return err
}

// CloseWrite half-closes the connection when the wrapped one can (TCP):
// net/http does so before closing a connection whose request body it has
// not read, so that the client reads the answer instead of a reset.
func (lc *limitedConn) CloseWrite() error {
	if cw, ok := lc.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
