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
// keeping connections alive, which closes the idle ones, so that clients
// holding connections without using them cannot keep others out); well
// under it again, and a second later at the soonest, onPressure(false).
type connLimiter struct {
	max        int64
	open       atomic.Int64
	onRefused  func()
	onPressure func(bool) // may be nil; called by run only

	pressure atomic.Bool   // wanted: open reached 90% of max and has not fallen to 75%
	applied  atomic.Bool   // what run last passed to onPressure
	kick     chan struct{} // pressure changed
}

func newConnLimiter(max int64, onRefused func()) *connLimiter {
	return &connLimiter{max: max, onRefused: onRefused, kick: make(chan struct{}, 1)}
}

// limit wraps ln.
func (c *connLimiter) limit(ln net.Listener) net.Listener {
	return &limitedListener{Listener: ln, c: c}
}

// changed notes the count of open connections: at 90% of max pressure is
// wanted, at 75% no more. Only atomics: it is called from Close, which
// the server may call while it holds its own locks.
func (c *connLimiter) changed(open int64) {
	var want bool
	switch {
	case open >= max(c.max*9/10, 1):
		want = true
	case open <= c.max*3/4:
	default:
		return
	}
	if c.pressure.Swap(want) != want {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// minPressure is how long pressure, once applied, stays at least: a
// connection that finishes its request while keep-alives are off closes
// itself, and one that was between its answer and that check when the
// idle ones were closed must still find them off.
const minPressure = time.Second

// run calls onPressure when the pressure wanted changes, in order, until
// done is closed; pressure applied stays for minPressure at least.
func (c *connLimiter) run(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-c.kick:
		}
		want := c.pressure.Load()
		if want == c.applied.Load() || c.onPressure == nil {
			continue
		}
		c.onPressure(want)
		c.applied.Store(want)
		if want {
			select {
			case <-done:
				return
			case <-time.After(minPressure):
			}
			// What changed meanwhile is looked at now.
			select {
			case c.kick <- struct{}{}:
			default:
			}
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
			_ = conn.Close()
			l.c.onRefused()
			continue
		}
		l.c.changed(l.c.open.Add(1))
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
		lc.c.changed(lc.c.open.Add(-1))
	}
	return err
}
