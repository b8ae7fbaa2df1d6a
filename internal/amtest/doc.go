// Package amtest runs a real Alertmanager process for tests: the one on PATH
// (Debian's prometheus-alertmanager, or alertmanager), on a loopback port,
// with gossip disabled, a throwaway storage directory and a route to a null
// receiver. Tests read back what it received through the v2 API.
//
// Without an Alertmanager binary the test is skipped, unless CI=true, where
// a missing binary fails it.
package amtest
