// Package testkit holds the small helpers that tests across packages and
// modules share: a goroutine-safe buffer for a child process's output, free
// loopback addresses, polling until a condition holds, finding a real binary
// (skipped locally, failed in CI when it is missing) and whether the race
// detector is on. For tests only; it installs nothing.
package testkit
