package ruletest

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// spanIdentity derives a generated span's IDs. The digest is
// sha256(testName + "/" + entry + "/" + index), with entry the span's
// position in input_spans (from 0) and index its slot in that entry's
// expanded durations (from 0, skipped slots counted, so the span ending at
// k × interval has index k), both in decimal. The trace ID is the
// digest's first 16 bytes, the span ID the next 8.
func spanIdentity(testName string, entry int, index int64) (traceID [16]byte, spanID [8]byte) {
	sum := sha256.Sum256([]byte(testName + "/" + strconv.Itoa(entry) + "/" + strconv.FormatInt(index, 10)))
	copy(traceID[:], sum[:16])
	copy(spanID[:], sum[16:24])
	return traceID, spanID
}

// TraceID returns, in lowercase hex as exemplar_trace_ids shows it, the
// trace ID of the span that test testName generates for input_spans entry
// entry (from 0) at slot index (from 0, skipped slots counted: the span
// ending at index × interval): the first 16 bytes of
// sha256(testName + "/" + entry + "/" + index), numbers in decimal.
//
// For example, the first span of the first entry of the test "spike" has
// the trace ID hex(sha256("spike/0/0")[:16]).
func TraceID(testName string, entry, index int) string {
	id, _ := spanIdentity(testName, entry, int64(index))
	return hex.EncodeToString(id[:])
}

// SpanID returns the span ID of the same span: bytes 16 to 23 of the
// digest TraceID describes, in lowercase hex.
func SpanID(testName string, entry, index int) string {
	_, id := spanIdentity(testName, entry, int64(index))
	return hex.EncodeToString(id[:])
}
