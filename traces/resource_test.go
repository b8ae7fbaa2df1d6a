package traces

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The spans of a resource that follow one another in a shard share one
// copy of its block in the arena. Random traffic from a few resources,
// Set anew now and then with other values, through a small buffer that
// wraps many times: every span Trace returns carries exactly the service
// and resource attributes of the resource it was added with, and the
// ring's invariants hold (the oldest span's block is the arena's tail).
func TestSharedResourceBlocks(t *testing.T) {
	b, _, c := newBuffer(t, Options{MaxBytes: MinMaxBytes})
	r := rand.New(rand.NewPCG(3, 4))
	res := make([]Resource, 3)
	want := map[SpanID]string{} // span → its resource, as Trace should show it
	desc := make([]string, len(res))
	set := func(k int) {
		node := fmt.Sprintf("cp-%d-%s", r.IntN(100), strings.Repeat("n", r.IntN(120)))
		svc := fmt.Sprintf("svc-%d", k)
		res[k].Set(svc, []Attribute{{Key: "k8s.node.name", Value: node}, {Key: "os.type", Value: "linux"}})
		desc[k] = fmt.Sprintf("%s %v", svc, []Attribute{{Key: "k8s.node.name", Value: node}})
	}
	for k := range res {
		set(k)
	}
	traces := map[TraceID][]SpanID{}
	for i := range 60_000 {
		k := r.IntN(len(res))
		if r.IntN(50) == 0 {
			set(k)
		}
		tid := uint64(r.IntN(2000) + 1)
		if r.IntN(4) == 0 { // runs of one resource in one trace, as exporters batch them
			tid = uint64(i/7 + 1)
		}
		sp := build(tid, s{uint64(i + 1), 0, "ignored", get, KindServer, 0, 1,
			[]Attribute{{Key: "verb", Value: strings.Repeat("g", r.IntN(60))}}})[0]
		b.Add(&res[k], &sp, c.Now())
		want[sp.SpanID] = desc[k]
		traces[sp.TraceID] = append(traces[sp.TraceID], sp.SpanID)
		if i%10_000 == 0 {
			checkInvariants(t, b)
		}
	}
	checkInvariants(t, b)
	if b.Stats().EvictedForSpace == 0 {
		t.Fatal("the buffer never wrapped")
	}
	found := 0
	for tid, ids := range traces {
		tr, ok := b.Trace(tid)
		if !ok {
			continue
		}
		for _, sp := range tr.Spans {
			found++
			if !slices.Contains(ids, sp.SpanID) {
				t.Fatalf("trace %v returns span %v it was not given", tid, sp.SpanID)
			}
			var attrs []Attribute
			for _, a := range sp.Attributes {
				if a.Key != "verb" {
					attrs = append(attrs, a)
				}
			}
			if got := fmt.Sprintf("%s %v", sp.Service, attrs); got != want[sp.SpanID] {
				t.Fatalf("span %v: resource %q, added with %q", sp.SpanID, got, want[sp.SpanID])
			}
		}
	}
	if found < 1000 {
		t.Fatalf("only %d spans found", found)
	}
}
