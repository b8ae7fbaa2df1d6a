package traces

import (
	"fmt"
	"reflect"
	"testing"
)

// Prefetch only reads: before and after it, on an empty buffer, a
// partly filled one and one that has wrapped (evicting), every trace and
// every count are the same, and adding after it keeps what adding without
// it keeps.
func TestPrefetchChangesNothing(t *testing.T) {
	for _, filled := range []int{0, 50, 40_000} {
		t.Run(fmt.Sprintf("%d traces", filled), func(t *testing.T) {
			with, _, c := newBuffer(t, Options{MaxBytes: 1 << 20})
			without, _, _ := newBuffer(t, Options{MaxBytes: 1 << 20})
			without.seed = with.seed // the same shards, so the same evictions
			add := func(b *Buffer, from, to int) {
				for n := from; n < to; n++ {
					spans := build(uint64(n+1),
						s{1, 0, apis, get, KindServer, 0, 10, []Attribute{{Key: "verb", Value: "get"}}},
						s{2, 1, etcd, rng, KindServer, 1, 9, nil})
					for i := range spans {
						b.Add(nil, &spans[i], c.Now())
					}
				}
			}
			add(with, 0, filled)
			add(without, 0, filled)
			var ids []TraceID
			for n := range filled + 300 { // known and unknown traces
				ids = append(ids, traceID(uint64(n+1)))
			}
			ids = append(ids, TraceID{})
			before := snapshot(t, with, ids)
			with.Prefetch(ids)
			with.Prefetch(nil)
			if after := snapshot(t, with, ids); !reflect.DeepEqual(before, after) {
				t.Fatalf("Prefetch changed the buffer: %s", firstDiff(before, after))
			}
			with.Prefetch(ids[filled:])
			add(with, filled, filled+300)
			add(without, filled, filled+300)
			if w, wo := snapshot(t, with, ids), snapshot(t, without, ids); !reflect.DeepEqual(w, wo) {
				t.Fatalf("adding after Prefetch kept other spans than without it: %s", firstDiff(w, wo))
			}
		})
	}
}

func snapshot(t *testing.T, b *Buffer, ids []TraceID) []string {
	t.Helper()
	out := []string{fmt.Sprintf("%+v", b.Stats())}
	for _, id := range ids {
		if tr, ok := b.Trace(id); ok {
			out = append(out, fmt.Sprintf("%v %d %v", id, len(tr.Spans), tr.Spans))
		}
	}
	return out
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("entry %d: %q vs %q", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("%d entries vs %d", len(a), len(b))
}
