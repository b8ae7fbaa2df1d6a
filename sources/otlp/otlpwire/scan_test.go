package otlpwire

import (
	"errors"
	"runtime"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

// sample builds a request shaped like the apiserver's exports, with an
// event, a link and nested values, so that every counted kind appears.
func sample(t testing.TB, spans int) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "apiserver")
	rs.Resource().Attributes().PutStr("k8s.node.name", "cp-1")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("k8s.io/apiserver")
	ss.Scope().Attributes().PutStr("scope.attr", "x")
	for i := 0; i < spans; i++ {
		s := ss.Spans().AppendEmpty()
		s.SetName("GET /api/v1/namespaces/{:name}")
		s.SetTraceID(pcommon.TraceID{1, byte(i)})
		s.SetSpanID(pcommon.SpanID{2, byte(i)})
		s.SetStartTimestamp(1)
		s.SetEndTimestamp(2)
		a := s.Attributes()
		a.PutStr("http.method", "GET")
		a.PutStr("http.target", "/api/v1/namespaces/default")
		a.PutInt("http.status_code", 200)
		arr := a.PutEmptySlice("http.request.header.accept")
		arr.AppendEmpty().SetStr("application/json")
		m := a.PutEmptyMap("nested")
		m.PutStr("k", "v")
		m.PutEmptySlice("inner").AppendEmpty().SetInt(1)
		ev := s.Events().AppendEmpty()
		ev.SetName("retry")
		ev.Attributes().PutInt("attempt", 1)
		l := s.Links().AppendEmpty()
		l.Attributes().PutStr("link.kind", "follows")
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestScanCounts(t *testing.T) {
	b := sample(t, 3)
	st, err := Scan(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	// Per span: 5 span attributes + 2 kvlist entries (k, inner) + event's 1
	// + link's 1 = 9; plus 2 resource and 1 scope attributes.
	want := Stats{ResourceSpans: 1, ScopeSpans: 1, Spans: 3, Attributes: 3*9 + 3, Values: 3 * 2, Events: 3, Links: 3}
	got := st
	got.DecodedBytes = 0
	if got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	if st.DecodedBytes <= int64(len(b)) {
		t.Errorf("decoded estimate %d is not above the request's %d bytes", st.DecodedBytes, len(b))
	}
}

// emptyAttributes is the attribute bomb: one span with n KeyValues of two
// bytes each.
func emptyAttributes(n int) []byte {
	span := make([]byte, 0, 2*n)
	for range n {
		span = append(span, 0x4a, 0x00) // field 9 (attributes), length 0
	}
	wrap := func(num protowire.Number, b []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), b)
	}
	return wrap(fieldRequestResourceSpans, wrap(fieldResourceSpansScopeSpans, wrap(fieldScopeSpansSpans, span)))
}

// scalarAttributes is a request of one span with n attributes of key key
// and a one-byte string value: the encoding the decoder's fast path reads.
func scalarAttributes(n int, key string) []byte {
	var span []byte
	for range n {
		span = protowire.AppendTag(span, fieldSpanAttributes, protowire.BytesType)
		span = protowire.AppendBytes(span, keyValue(key, "v"))
	}
	wrap := func(num protowire.Number, b []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), b)
	}
	return wrap(fieldRequestResourceSpans, wrap(fieldResourceSpansScopeSpans, wrap(fieldScopeSpansSpans, span)))
}

func nestedArrays(depth int) []byte {
	wrap := func(num protowire.Number, b []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), b)
	}
	v := []byte{}
	for range depth {
		v = wrap(fieldAnyValueArray, wrap(fieldArrayValues, v)) // AnyValue{array{values: [v]}}
	}
	kv := append(wrap(fieldKeyValueKey, []byte("k")), wrap(fieldKeyValueValue, v)...)
	return wrap(fieldRequestResourceSpans, wrap(fieldResourceSpansScopeSpans, wrap(fieldScopeSpansSpans, wrap(fieldSpanAttributes, kv))))
}

func TestScanLimits(t *testing.T) {
	longKey := ptrace.NewTraces()
	longKey.ResourceSpans().AppendEmpty().Resource().Attributes().PutStr(string(make([]byte, 300)), "v")
	longKeyBytes, _ := ptraceotlp.NewExportRequestFromTraces(longKey).MarshalProto()
	// What decoding ten scalar attributes costs: the last one reaches it.
	ten := scalarAttributes(10, "k")
	tenCost := int64(len(ten)) + costResourceSpans + costScopeSpans + costSpan + 10*costKeyValue

	tests := []struct {
		name   string
		body   []byte
		lim    Limits
		reason string
	}{
		{"spans at the limit", sample(t, 4), Limits{MaxSpans: 4}, ""},
		{"spans over the limit", sample(t, 5), Limits{MaxSpans: 4}, ReasonTooManySpans},
		{"attributes at the limit", emptyAttributes(128), Limits{MaxAttributes: 128}, ""},
		{"attribute bomb", emptyAttributes(1 << 20), Limits{MaxAttributes: 128}, ReasonTooManyAttributes},
		{"attribute bomb without a limit", emptyAttributes(1 << 10), Limits{}, ""},
		{"key at the limit", longKeyBytes, Limits{MaxKeyBytes: 300}, ""},
		{"key over the limit", longKeyBytes, Limits{MaxKeyBytes: 299}, ReasonKeyTooLong},
		{"nesting at the limit", nestedArrays(8), Limits{}, ""},
		{"nesting over the limit", nestedArrays(9), Limits{}, ReasonTooDeep},
		{"nesting over a set limit", nestedArrays(3), Limits{MaxDepth: 2}, ReasonTooDeep},
		{"deep nesting, not recursed", nestedArrays(2000), Limits{}, ReasonTooDeep},
		{"array values over the limit", sample(t, 1), Limits{MaxAttributes: 5}, ""},
		{"decoded bytes over the limit", emptyAttributes(1 << 20), Limits{MaxDecodedBytes: 1 << 20}, ReasonTooCostly},
		{"decoded bytes within the limit", emptyAttributes(100), Limits{MaxDecodedBytes: 1 << 20}, ""},
		{"scalar attributes at the limit", scalarAttributes(128, "k"), Limits{MaxAttributes: 128}, ""},
		{"scalar attributes over the limit", scalarAttributes(129, "k"), Limits{MaxAttributes: 128}, ReasonTooManyAttributes},
		{"scalar key at the limit", scalarAttributes(1, "kk"), Limits{MaxKeyBytes: 2}, ""},
		{"scalar key over the limit", scalarAttributes(1, "kkk"), Limits{MaxKeyBytes: 2}, ReasonKeyTooLong},
		{"scalar attributes over the decoded bytes", ten, Limits{MaxDecodedBytes: tenCost - 1}, ReasonTooCostly},
		{"scalar attributes at the decoded bytes", ten, Limits{MaxDecodedBytes: tenCost}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Scan and the Decoder check the same limits, to the same
			// effect, and count the same.
			var d Decoder
			scanned, err := Scan(tc.body, tc.lim)
			decoded, derr := d.Decode(tc.body, tc.lim)
			for what, err := range map[string]error{"Scan": err, "Decode": derr} {
				var le *LimitError
				switch {
				case tc.reason == "" && err != nil:
					t.Fatalf("%s refused: %v", what, err)
				case tc.reason != "" && !errors.As(err, &le):
					t.Fatalf("%s: error %v, want a LimitError %s", what, err, tc.reason)
				case tc.reason != "" && le.Reason != tc.reason:
					t.Fatalf("%s: reason %s (%v), want %s", what, le.Reason, err, tc.reason)
				}
			}
			if tc.reason == "" && scanned != decoded {
				t.Fatalf("Scan counted %+v, Decode %+v", scanned, decoded)
			}
		})
	}
}

func TestScanMalformed(t *testing.T) {
	good := sample(t, 2)
	tests := []struct {
		name string
		body []byte
	}{
		{"truncated", good[:len(good)-3]},
		{"length past the end", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"resource_spans as a varint", []byte{0x08, 0x01}},
		{"field number zero", []byte{0x02, 0x00}},
		{"bad varint", []byte{0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Scan(tc.body, Limits{}); !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want ErrMalformed", err)
			}
			if err := ptraceotlp.NewExportRequest().UnmarshalProto(tc.body); err == nil {
				t.Fatalf("pdata accepts what Scan calls malformed")
			}
		})
	}
	if _, err := Scan(nil, Limits{}); err != nil {
		t.Errorf("an empty request: %v", err)
	}
}

// The decoded estimate bounds what pdata really allocates.
func TestDecodedBytesBoundsPdata(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"apiserver spans", sample(t, 2000)},
		{"empty attributes", emptyAttributes(100000)},
		{"nested arrays", nestedArrays(8)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Scan(tc.body, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			req := ptraceotlp.NewExportRequest()
			if err := req.UnmarshalProto(tc.body); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(req)
			allocated := int64(after.TotalAlloc - before.TotalAlloc)
			if allocated > st.DecodedBytes {
				t.Errorf("pdata allocated %d bytes, more than the estimate %d", allocated, st.DecodedBytes)
			}
			if st.DecodedBytes > 4*allocated+int64(len(tc.body)) {
				t.Errorf("estimate %d is more than 4× what pdata allocated (%d)", st.DecodedBytes, allocated)
			}
		})
	}
}

func TestScanDoesNotAllocate(t *testing.T) {
	b := sample(t, 100)
	if n := testing.AllocsPerRun(100, func() { _, _ = Scan(b, Limits{MaxSpans: 1000, MaxAttributes: 128, MaxKeyBytes: 256}) }); n != 0 {
		t.Errorf("Scan allocated %v times", n)
	}
}

// FuzzScan: Scan never panics, and where pdata accepts a request Scan
// does not call it malformed and counts the spans pdata decodes.
func FuzzScan(f *testing.F) {
	f.Add(sample(f, 2))
	f.Add(emptyAttributes(10))
	f.Add(nestedArrays(3))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := Scan(b, Limits{MaxDepth: 1 << 20})
		req := ptraceotlp.NewExportRequest()
		if req.UnmarshalProto(b) != nil {
			return
		}
		if err != nil {
			t.Fatalf("pdata accepts what Scan refuses: %v", err)
		}
		if got := req.Traces().SpanCount(); got != st.Spans {
			t.Fatalf("Scan counted %d spans, pdata decoded %d", st.Spans, got)
		}
	})
}

func BenchmarkScan(b *testing.B) {
	body := sample(b, 512)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Scan(body, Limits{MaxSpans: 1 << 15, MaxAttributes: 128, MaxKeyBytes: 256}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/512, "ns/span")
}

// BenchmarkPdataDecode is what the scan saves a refused request: pdata's
// decode of the same bytes as BenchmarkScan.
func BenchmarkPdataDecode(b *testing.B) {
	body := sample(b, 512)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ptraceotlp.NewExportRequest().UnmarshalProto(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/512, "ns/span")
}
