package traces

import (
	"cmp"
	"slices"
)

// Trace is an assembled trace.
type Trace struct {
	ID TraceID
	// Spans are ordered by start time (then end time, latest first, then
	// span ID); a span ID appears once.
	Spans []Span
	// Root is the index in Spans of the root span (the one without a
	// parent; of several, the earliest and longest), -1 when it has not
	// arrived.
	Root int
	// Complete: the root is there, every other span's parent is there, the
	// parents form no loop and no span was refused over the per-trace cap.
	// A trace that is not complete is shown as incomplete.
	Complete bool
	// Roots counts the spans without a parent (more than one is malformed).
	Roots int
	// Orphans counts the spans whose parent is not in the trace (yet).
	Orphans int
	// Cycles counts the spans whose parents loop (a span its own ancestor):
	// they hang under no root or orphan, and are left out of the path.
	Cycles int
	// Duplicates counts spans dropped for repeating a span ID (exporter
	// retries): the first one to arrive is kept.
	Duplicates int
	// Dropped counts spans the buffer refused over its caps (spans per
	// trace, pinned bytes; at least, as the buffer's count saturates at
	// 65535), and spans of another trace given to Assemble.
	Dropped int

	// parent is each span's parent index in Spans, -1 for a root or an
	// orphan; kids and kidOff list each span's children (kids[kidOff[i]:
	// kidOff[i+1]]), orphans under the root.
	parent []int32
	kids   []int32
	kidOff []int32
}

// Assemble builds a trace from its spans in the order they arrived. It
// takes any input: spans of another trace ID than the first span's are
// dropped, repeated span IDs keep the first, missing parents and parent
// loops are counted, and nothing recurses, so no input makes it loop or
// panic. Its cost is O(n log n).
func Assemble(spans []Span) Trace {
	t := Trace{Root: -1}
	if len(spans) == 0 {
		return t
	}
	t.ID = spans[0].TraceID
	seen := make(map[SpanID]struct{}, len(spans))
	t.Spans = make([]Span, 0, len(spans))
	for i := range spans {
		sp := &spans[i]
		if sp.TraceID != t.ID {
			t.Dropped++
			continue
		}
		if _, dup := seen[sp.SpanID]; dup {
			t.Duplicates++
			continue
		}
		seen[sp.SpanID] = struct{}{}
		t.Spans = append(t.Spans, *sp)
	}
	slices.SortFunc(t.Spans, func(a, b Span) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(b.End, a.End),
			slices.Compare(a.SpanID[:], b.SpanID[:]))
	})
	n := len(t.Spans)
	byID := make(map[SpanID]int32, n)
	for i := range t.Spans {
		byID[t.Spans[i].SpanID] = int32(i)
	}
	t.parent = make([]int32, n)
	for i := range t.Spans {
		sp := &t.Spans[i]
		t.parent[i] = -1
		if sp.ParentSpanID.IsZero() {
			t.Roots++
			if t.Root < 0 { // sorted: the first is the earliest, then the longest
				t.Root = i
			}
			continue
		}
		p, ok := byID[sp.ParentSpanID]
		if !ok {
			t.Orphans++
			continue
		}
		t.parent[i] = p
	}

	// Children, counting sort by parent; orphans go under the root.
	up := func(i int) int32 {
		if p := t.parent[i]; p >= 0 {
			return p
		}
		if i != t.Root && !t.Spans[i].ParentSpanID.IsZero() && t.Root >= 0 {
			return int32(t.Root)
		}
		return -1
	}
	t.kidOff = make([]int32, n+1)
	for i := range n {
		if p := up(i); p >= 0 {
			t.kidOff[p+1]++
		}
	}
	for i := range n {
		t.kidOff[i+1] += t.kidOff[i]
	}
	t.kids = make([]int32, t.kidOff[n])
	fill := slices.Clone(t.kidOff[:n])
	for i := range n {
		if p := up(i); p >= 0 {
			t.kids[fill[p]] = int32(i)
			fill[p]++
		}
	}

	// Spans under no root or orphan are in parent loops.
	reached := make([]bool, n)
	stack := make([]int32, 0, 16)
	for i := range n {
		if up(i) < 0 {
			reached[i] = true
			stack = append(stack, int32(i))
		}
	}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range t.children(int(s)) {
			if !reached[c] {
				reached[c] = true
				stack = append(stack, c)
			}
		}
	}
	for _, r := range reached {
		if !r {
			t.Cycles++
		}
	}
	t.Complete = t.Root >= 0 && t.Orphans == 0 && t.Cycles == 0 && t.Dropped == 0
	return t
}

// children are the spans whose parent (or, for orphans, adopted parent)
// is span i.
func (t *Trace) children(i int) []int32 {
	return t.kids[t.kidOff[i]:t.kidOff[i+1]]
}

// linked reports whether t came from Assemble (and was not altered since).
func (t *Trace) linked() bool {
	return len(t.parent) == len(t.Spans) && len(t.kidOff) == len(t.Spans)+1
}
