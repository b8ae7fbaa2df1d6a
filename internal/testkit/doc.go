// Package testkit holds the small helpers that tests across packages and
// modules share: a goroutine-safe buffer for a child process's output and
// a free loopback address. For tests only.
package testkit
