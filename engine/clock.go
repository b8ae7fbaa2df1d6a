package engine

import "time"

// Clock tells the engine the time. The daemon uses the wall clock; tests and
// `sentinel test rules` use a simulated one, so they never sleep.
type Clock interface {
	Now() time.Time
}

// WallClock is the real time.
type WallClock struct{}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }
