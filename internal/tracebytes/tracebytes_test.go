package tracebytes

import (
	"encoding/binary"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// Every span's trace ID is found and renumbered, and spans of one trace
// stay one trace: the first 8 bytes become n, the last 8 stay.
func TestOffsetsAndRenumber(t *testing.T) {
	td := ptrace.NewTraces()
	ids := []pcommon.TraceID{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {0xff, 1: 0xee, 15: 0x01}}
	for r := range 2 {
		spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
		for i := range 3 {
			sp := spans.AppendEmpty()
			sp.SetTraceID(ids[(r+i)%2])
			sp.SetSpanID(pcommon.SpanID{byte(r), byte(i), 1})
			sp.SetName("span")
		}
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	at := Offsets(td, body)
	if len(at) != td.SpanCount() {
		t.Fatalf("%d trace IDs found, want %d (one per span)", len(at), td.SpanCount())
	}
	Renumber(body, at, 42)
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		t.Fatal(err)
	}
	got := req.Traces()
	rss := got.ResourceSpans()
	for r := range rss.Len() {
		spans := rss.At(r).ScopeSpans().At(0).Spans()
		for i := range spans.Len() {
			id, was := spans.At(i).TraceID(), ids[(r+i)%2]
			if binary.BigEndian.Uint64(id[:8]) != 42 || [8]byte(id[8:]) != [8]byte(was[8:]) {
				t.Errorf("span %d/%d: trace ID %v, want 42 then the last 8 bytes of %v", r, i, id, was)
			}
		}
	}
}
