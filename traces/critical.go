package traces

import (
	"cmp"
	"slices"
	"time"
)

// Path is a trace's critical path: the chain of spans that determined when
// its root ended.
//
// It is found walking back from the root's end. Within a span, the child
// that finished last before the current point is on the path, and the walk
// goes into it from its end; back in the parent, the walk goes on from that
// child's start. Time in a span that no child on the path covers is the
// span's own. So a child that overlaps a later sibling on the path counts
// only before the sibling started, if it finished by then, and not at all
// otherwise: the parent could not go on before the later sibling ended.
// A CLIENT span whose SERVER child (another service) covers part of it is
// credited the rest only: the server gets the overlap, the client keeps
// network and queueing time.
//
// Clock skew: each child is clamped to its parent's (clamped) interval;
// a child wholly outside it is left out. Orphans (spans whose parent has
// not arrived) are walked as children of the root, their missing
// ancestors' own time being the root's; spans in parent loops and extra
// roots are left out. The sections add up to the root's duration.
type Path struct {
	// Total is the root's duration.
	Total time.Duration
	// Sections are the path's pieces in time order: a span's own time,
	// Start to End (unix nanoseconds).
	Sections []Section
	// Spans are the spans on the path (index into Trace.Spans) with their
	// path time, in trace order. A span the path goes through whose time
	// its children cover wholly is there with no time of its own.
	Spans []SpanTime
	// Services and Operations sum path time by service.name and by
	// "service/span name", largest first.
	Services   []Share
	Operations []Share
}

// Section is part of the critical path spent in one span.
type Section struct {
	Span       int
	Start, End int64
}

// SpanTime is a span's time on the critical path.
type SpanTime struct {
	Span int
	Time time.Duration
}

// Share is the path time of a service or operation; Fraction is Time over
// the total of the path (or of the paths aggregated).
type Share struct {
	Name     string
	Time     time.Duration
	Fraction float64
}

// UnknownService names spans without a service.name, as OpenTelemetry does.
const UnknownService = "unknown_service"

// frame is a span being walked: its clamped interval, the point the walk
// has come back to, and its children by clamped end, latest first
// (kids[lo:hi] of the walk's shared stack, next at k).
type frame struct {
	span       int32
	start, end int64
	cur        int64
	lo, k, hi  int
}

// CriticalPath computes t's critical path (see [Path]); a trace without a
// root has an empty one. It is iterative and visits a span at most once,
// whatever t holds.
func CriticalPath(t Trace) Path {
	if !t.linked() {
		t = Assemble(t.Spans)
	}
	if t.Root < 0 || t.Root >= len(t.Spans) {
		return Path{}
	}
	root := &t.Spans[t.Root]
	p := Path{Total: time.Duration(root.Duration())}
	if p.Total == 0 {
		return p
	}
	n := len(t.Spans)
	visited := make([]bool, n)
	// clamped start and end of each child being considered, by span index
	cs := make([]int64, n)
	ce := make([]int64, n)
	kids := make([]int32, 0, n)
	stack := make([]frame, 0, 16)
	sections := make([]Section, 0, 2*n+1) // latest first; a span's own time comes in at most 1 + its children's pieces
	own := func(span int32, start, end int64) {
		if end <= start {
			return
		}
		if l := len(sections) - 1; l >= 0 && sections[l].Span == int(span) && sections[l].Start == end {
			sections[l].Start = start
			return
		}
		sections = append(sections, Section{Span: int(span), Start: start, End: end})
	}
	entered := make([]int32, 0, n)
	push := func(span int32, start, end int64) {
		visited[span] = true
		entered = append(entered, span)
		lo := len(kids)
		for _, c := range t.children(int(span)) {
			if visited[c] {
				continue // cannot happen in an assembled trace; never loop
			}
			s, e := max(t.Spans[c].Start, start), min(t.Spans[c].End, end)
			if e <= s {
				continue
			}
			cs[c], ce[c] = s, e
			kids = append(kids, c)
		}
		seg := kids[lo:]
		slices.SortFunc(seg, func(a, b int32) int {
			return cmp.Or(cmp.Compare(ce[b], ce[a]), cmp.Compare(cs[a], cs[b]), cmp.Compare(a, b))
		})
		stack = append(stack, frame{span: span, start: start, end: end, cur: end, lo: lo, k: lo, hi: len(kids)})
	}
	push(int32(t.Root), root.Start, root.End)
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		for f.k < f.hi && ce[kids[f.k]] > f.cur {
			f.k++
		}
		if f.k == f.hi {
			own(f.span, f.start, f.cur)
			kids = kids[:f.lo]
			stack = stack[:len(stack)-1]
			continue
		}
		c := kids[f.k]
		f.k++
		if visited[c] {
			continue
		}
		own(f.span, ce[c], f.cur)
		f.cur = cs[c]
		push(c, cs[c], ce[c])
	}
	slices.Reverse(sections)
	p.Sections = sections

	// Per span, then per service and operation: spans of one service
	// and name add up under one key, built once.
	onPath := make([]bool, n)
	perSpan := make([]time.Duration, n)
	for _, i := range entered {
		onPath[i] = true
	}
	for _, s := range sections {
		perSpan[s.Span] += time.Duration(s.End - s.Start)
	}
	p.Spans = make([]SpanTime, 0, len(entered))
	type op struct{ service, name string }
	services := make(map[string]time.Duration)
	ops := make(map[op]time.Duration)
	for i, on := range onPath {
		if !on {
			continue
		}
		d := perSpan[i]
		p.Spans = append(p.Spans, SpanTime{Span: i, Time: d})
		if d == 0 {
			continue
		}
		svc := serviceName(&t.Spans[i])
		services[svc] += d
		ops[op{svc, t.Spans[i].Name}] += d
	}
	opNames := make(map[string]time.Duration, len(ops))
	for o, d := range ops {
		opNames[o.service+"/"+o.name] += d
	}
	p.Services = shares(services, p.Total)
	p.Operations = shares(opNames, p.Total)
	return p
}

// OnPath reports whether span i of the trace is on the path.
func (p *Path) OnPath(i int) bool {
	_, ok := slices.BinarySearchFunc(p.Spans, i, func(s SpanTime, i int) int { return cmp.Compare(s.Span, i) })
	return ok
}

func serviceName(sp *Span) string {
	if sp.Service == "" {
		return UnknownService
	}
	return sp.Service
}

// shares lists m by time, largest first (then by name), as fractions of total.
func shares(m map[string]time.Duration, total time.Duration) []Share {
	out := make([]Share, 0, len(m))
	for name, d := range m {
		s := Share{Name: name, Time: d}
		if total > 0 {
			s.Fraction = float64(d) / float64(total)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Share) int {
		return cmp.Or(cmp.Compare(b.Time, a.Time), cmp.Compare(a.Name, b.Name))
	})
	return out
}
