// Package golden compares test output with golden files under testdata/;
// `go test -update` rewrites them. It is for tests only.
package golden
