// Package tracebytes finds the trace IDs in the bytes of an OTLP trace
// export and rewrites them in place, for the load tool and the benchmarks
// that replay a few pre-built requests as a stream of traces never seen
// before (a receiver that buffers traces must not see the same ones come
// back, or it measures its spans-per-trace cap instead of its buffer).
package tracebytes

import (
	"bytes"
	"encoding/binary"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Offsets returns the position in body, the protobuf encoding of td, of
// every copy of every trace ID of td: one per span (and per link to it).
func Offsets(td ptrace.Traces, body []byte) []int {
	seen := map[pcommon.TraceID]bool{}
	var at []int
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				id := spans.At(k).TraceID()
				if seen[id] {
					continue
				}
				seen[id] = true
				for off := 0; ; {
					x := bytes.Index(body[off:], id[:])
					if x < 0 {
						break
					}
					at = append(at, off+x)
					off += x + len(id)
				}
			}
		}
	}
	return at
}

// Renumber writes n into the first 8 bytes of the trace ID at each offset
// of body: with a new n each time, the request carries traces not sent
// before, each still distinct by its last 8 bytes.
func Renumber(body []byte, offsets []int, n uint64) {
	for _, off := range offsets {
		binary.BigEndian.PutUint64(body[off:], n)
	}
}
