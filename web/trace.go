package web

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kube-sentinel/sentinel/rules"
	"github.com/kube-sentinel/sentinel/traces"
)

// TraceSource is what the web layer reads of the trace store: a trace
// assembled from the spans it holds, false when it holds none (unknown,
// expired or evicted). *traces.Buffer is one.
type TraceSource interface {
	Trace(id traces.TraceID) (traces.Trace, bool)
}

// maxRenderedSpans bounds the trace page's rows (a trace holds up to
// traces.Options.MaxSpansPerTrace spans); the JSON API returns them all.
const maxRenderedSpans = 2000

// TraceData is the data of GET /api/v1/traces/{traceID}.
type TraceData struct {
	TraceID string `json:"traceID"`
	// Complete is false while spans are missing: the root, a parent, or
	// spans refused over the buffer's caps.
	Complete bool        `json:"complete"`
	Spans    []TraceSpan `json:"spans"`
}

// TraceSpan is a span of an assembled trace.
type TraceSpan struct {
	SpanID       string            `json:"spanID"`
	ParentSpanID string            `json:"parentSpanID"` // "" for a root
	Service      string            `json:"service"`
	Name         string            `json:"name"`
	Kind         string            `json:"kind"`   // the OTLP name in lower case: server, client, internal, …
	Status       string            `json:"status"` // unset, ok, error
	Start        string            `json:"start"`  // RFC 3339, nanoseconds
	End          string            `json:"end"`
	Attributes   map[string]string `json:"attributes"`
	CriticalPath bool              `json:"criticalPath"`
}

// parseTraceID reads a path's trace ID: 32 hex digits, not all zero.
func parseTraceID(s string) (traces.TraceID, bool) {
	var id traces.TraceID
	if len(s) != 2*len(id) {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, false
	}
	return id, !id.IsZero()
}

// lookupTrace answers the trace of the request's {traceID}, or writes the
// error (400 for a malformed ID, 404 for one the store does not hold).
func (h *Handler) lookupTrace(w http.ResponseWriter, r *http.Request, asJSON bool) (traces.Trace, bool) {
	fail := func(code int, kind, msg string) {
		if asJSON {
			writeError(w, code, kind, msg)
			return
		}
		http.Error(w, msg, code)
	}
	raw := r.PathValue("traceID")
	id, ok := parseTraceID(raw)
	if !ok {
		if len(raw) > 64 {
			raw = raw[:64] + "…"
		}
		fail(http.StatusBadRequest, "bad_data", "invalid trace ID "+strconv.Quote(raw)+": want 32 hex digits, not all zero")
		return traces.Trace{}, false
	}
	if h.opts.Traces == nil {
		fail(http.StatusNotFound, "not_found", "trace "+id.String()+" not found: sentinel keeps no traces")
		return traces.Trace{}, false
	}
	t, ok := h.opts.Traces.Trace(id)
	if !ok {
		fail(http.StatusNotFound, "not_found", "trace "+id.String()+" not found: unknown, or expired from sentinel's buffer of recent spans")
		return traces.Trace{}, false
	}
	return t, true
}

func (h *Handler) apiTrace(w http.ResponseWriter, r *http.Request) {
	t, ok := h.lookupTrace(w, r, true)
	if !ok {
		return
	}
	writeJSON(w, traceData(t, traces.CriticalPath(t)))
}

func traceData(t traces.Trace, path traces.Path) TraceData {
	out := TraceData{TraceID: t.ID.String(), Complete: t.Complete, Spans: make([]TraceSpan, 0, len(t.Spans))}
	for i := range t.Spans {
		sp := &t.Spans[i]
		ts := TraceSpan{SpanID: sp.SpanID.String(), Service: sp.Service, Name: sp.Name,
			Kind: strings.ToLower(sp.Kind.String()), Status: strings.ToLower(sp.Status.String()),
			Start: nanos(sp.Start), End: nanos(sp.End), Attributes: make(map[string]string, len(sp.Attributes)),
			CriticalPath: path.OnPath(i)}
		if !sp.ParentSpanID.IsZero() {
			ts.ParentSpanID = sp.ParentSpanID.String()
		}
		for _, a := range sp.Attributes {
			ts.Attributes[a.Key] = a.Value
		}
		out.Spans = append(out.Spans, ts)
	}
	return out
}

func nanos(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// writeError answers an API error shaped like Prometheus's.
func writeError(w http.ResponseWriter, code int, kind, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(Response{Status: "error", ErrorType: kind, Error: msg})
}

// The trace page: a waterfall of the assembled trace.
type tracePage struct {
	TraceID     string
	Version     string
	Complete    bool
	Missing     []string // why it is incomplete
	Start       string   // RFC 3339
	Duration    string
	Services    string // the critical path by service, as the annotation says it
	Operations  string
	Ticks       []traceTick
	Rows        []traceRow
	NotRendered int // spans past maxRenderedSpans
}

type traceTick struct {
	Left  float64 // percent
	Label string
}

type traceRow struct {
	SpanID, ParentSpanID string
	Service, Name, Kind  string
	Status               string
	Node                 string
	Depth                int
	Left, Width          float64 // percent of the trace's duration
	Duration             string
	Offset               string // from the trace's start
	Critical             bool
	PathTime             string // its own time on the critical path
	Attributes           []traces.Attribute
}

func (h *Handler) tracePage(w http.ResponseWriter, r *http.Request) {
	t, ok := h.lookupTrace(w, r, false)
	if !ok {
		return
	}
	data := buildTracePage(t, traces.CriticalPath(t))
	data.Version = h.opts.Version
	var b bytes.Buffer
	if err := traceTemplate.Execute(&b, data); err != nil {
		h.statusPageErrors.Inc()
		h.logger.Error("trace page template failed", "trace_id", data.TraceID, "err", err)
		http.Error(w, "trace page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:")
	w.Write(b.Bytes())
}

func buildTracePage(t traces.Trace, path traces.Path) tracePage {
	data := tracePage{TraceID: t.ID.String(), Complete: t.Complete,
		Services: traces.FormatShares(path.Services), Operations: traces.FormatShares(path.Operations)}
	if t.Root < 0 {
		data.Missing = append(data.Missing, "the root span has not arrived")
	}
	for _, m := range []struct {
		n    int
		what string
	}{{t.Orphans, "whose parent has not arrived"}, {t.Cycles, "whose parents form a loop"},
		{t.Dropped, "refused over the buffer's caps"}, {t.Duplicates, "repeated (the first kept)"}} {
		if m.n > 0 {
			data.Missing = append(data.Missing, strconv.Itoa(m.n)+" span(s) "+m.what)
		}
	}
	if len(t.Spans) == 0 {
		return data
	}
	start, end := t.Spans[0].Start, t.Spans[0].End
	for i := range t.Spans {
		start, end = min(start, t.Spans[i].Start), max(end, t.Spans[i].End)
	}
	total := max(end-start, 1)
	data.Start, data.Duration = nanos(start), humanize(total)
	for i := 0; i <= 4; i++ {
		data.Ticks = append(data.Ticks, traceTick{Left: float64(i) * 25, Label: humanize(total * int64(i) / 4)})
	}
	pathTime := make(map[int]time.Duration, len(path.Spans))
	for _, st := range path.Spans {
		pathTime[st.Span] = st.Time
	}
	for _, e := range treeOrder(t) {
		if len(data.Rows) == maxRenderedSpans {
			data.NotRendered = len(t.Spans) - maxRenderedSpans
			break
		}
		sp := &t.Spans[e.span]
		row := traceRow{SpanID: sp.SpanID.String(), Service: sp.Service, Name: sp.Name, Kind: strings.ToLower(sp.Kind.String()),
			Status: strings.ToLower(sp.Status.String()), Depth: e.depth, Attributes: sp.Attributes,
			Left:     100 * float64(sp.Start-start) / float64(total),
			Width:    100 * float64(sp.Duration()) / float64(total),
			Duration: humanize(sp.Duration()), Offset: "+" + humanize(sp.Start-start), Critical: path.OnPath(e.span)}
		if !sp.ParentSpanID.IsZero() {
			row.ParentSpanID = sp.ParentSpanID.String()
		}
		if row.Critical {
			row.PathTime = humanize(int64(pathTime[e.span]))
		}
		for _, a := range sp.Attributes {
			if a.Key == "k8s.node.name" || (a.Key == "host.name" && row.Node == "") { // the node's name wins over the host's
				row.Node = a.Value
			}
		}
		data.Rows = append(data.Rows, row)
	}
	return data
}

func humanize(ns int64) string { return rules.HumanizeDuration(float64(ns) / 1e9) }

type treeEntry struct{ span, depth int }

// treeOrder lists t's spans depth first from each root, children in start
// order, as a waterfall shows them; spans no root reaches (orphans, loops)
// follow at depth 0 with their own subtrees. Iterative: a trace's shape
// cannot make it recurse deeply or loop.
func treeOrder(t traces.Trace) []treeEntry {
	n := len(t.Spans)
	index := make(map[traces.SpanID]int, n)
	for i := range t.Spans {
		index[t.Spans[i].SpanID] = i
	}
	kids := make([][]int, n)
	var tops []int
	for i := range t.Spans { // Spans are in start order, so kids are too
		p, ok := index[t.Spans[i].ParentSpanID]
		if t.Spans[i].ParentSpanID.IsZero() || !ok || p == i {
			tops = append(tops, i)
			continue
		}
		kids[p] = append(kids[p], i)
	}
	out := make([]treeEntry, 0, n)
	seen := make([]bool, n)
	walk := func(top int) {
		stack := []treeEntry{{top, 0}}
		for len(stack) > 0 {
			e := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[e.span] {
				continue
			}
			seen[e.span] = true
			out = append(out, e)
			for k := len(kids[e.span]) - 1; k >= 0; k-- {
				stack = append(stack, treeEntry{kids[e.span][k], e.depth + 1})
			}
		}
	}
	for _, top := range tops {
		walk(top)
	}
	for i := range n { // parent loops: reachable from no top
		if !seen[i] {
			walk(i)
		}
	}
	return out
}

//go:embed templates/trace.html
var traceHTML string

var traceTemplate = template.Must(template.New("trace").Funcs(template.FuncMap{
	"pct":    func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) },
	"indent": func(depth int) int { return 10 + min(depth, 40)*14 },
}).Parse(traceHTML))
