package traces

import "testing"

// BenchmarkKept is the allowlist lookup a receiver makes for every
// attribute of every span, over the keys of the benchmark's request (some
// kept, some not). One op is one lookup.
func BenchmarkKept(b *testing.B) {
	var keys []string
	spans, res := request()
	for _, r := range res[2:] {
		for _, a := range r.attrs {
			keys = append(keys, a.Key)
		}
	}
	for _, sp := range spans {
		for _, a := range sp.Attributes {
			keys = append(keys, string([]byte(a.Key))) // not the constant's memory
		}
	}
	kept := 0
	b.ResetTimer()
	for i := range b.N {
		if Kept(keys[i%len(keys)]) != 0 {
			kept++
		}
	}
	if kept == 0 && b.N >= len(keys) {
		b.Fatal("no key kept")
	}
}
