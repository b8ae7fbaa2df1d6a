//go:build !race

package testkit

// RaceEnabled says whether the tests run with the race detector, which
// slows everything several times over.
const RaceEnabled = false
