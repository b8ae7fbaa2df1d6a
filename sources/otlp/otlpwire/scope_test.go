package otlpwire

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

// TestScopeViewAgreesWithPdata decodes requests whose spans belong to
// several scopes — named, versioned, with attributes, empty, and one
// ScopeSpans whose scope field is repeated (pdata merges the two
// messages) — and checks every span's Scope view against pdata's.
func TestScopeViewAgreesWithPdata(t *testing.T) {
	td := ptrace.NewTraces()
	for r := range 2 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutInt("r", int64(r))
		for sc := range 3 {
			ss := rs.ScopeSpans().AppendEmpty()
			if sc > 0 {
				ss.Scope().SetName("scope-" + string(rune('a'+r*3+sc)))
				ss.Scope().SetVersion("v1")
				ss.Scope().Attributes().PutStr("k", "v")
			}
			for i := range 2 {
				s := ss.Spans().AppendEmpty()
				s.SetTraceID(pcommon.TraceID{byte(r), byte(sc), byte(i)})
			}
		}
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	// One more resource whose ScopeSpans has two scope fields, one
	// before and one after its span.
	scope1 := protowire.AppendTag(nil, fieldScopeName, protowire.BytesType)
	scope1 = protowire.AppendString(scope1, "first")
	scope1 = protowire.AppendTag(scope1, fieldScopeAttributes, protowire.BytesType)
	scope1 = protowire.AppendBytes(scope1, keyValue("a", "1"))
	scope2 := protowire.AppendTag(nil, fieldScopeVersion, protowire.BytesType)
	scope2 = protowire.AppendString(scope2, "v2")
	scope2 = protowire.AppendTag(scope2, fieldScopeAttributes, protowire.BytesType)
	scope2 = protowire.AppendBytes(scope2, keyValue("b", "2"))
	span := protowire.AppendTag(nil, fieldSpanTraceID, protowire.BytesType)
	span = protowire.AppendBytes(span, make([]byte, 16))
	ss := protowire.AppendTag(nil, fieldScopeSpansScope, protowire.BytesType)
	ss = protowire.AppendBytes(ss, scope1)
	ss = protowire.AppendTag(ss, fieldScopeSpansSpans, protowire.BytesType)
	ss = protowire.AppendBytes(ss, span)
	ss = protowire.AppendTag(ss, fieldScopeSpansScope, protowire.BytesType)
	ss = protowire.AppendBytes(ss, scope2)
	rs := protowire.AppendTag(nil, fieldResourceSpansScopeSpans, protowire.BytesType)
	rs = protowire.AppendBytes(rs, ss)
	b = protowire.AppendTag(b, fieldRequestResourceSpans, protowire.BytesType)
	b = protowire.AppendBytes(b, rs)

	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(b); err != nil {
		t.Fatal(err)
	}
	var want []ptrace.ScopeSpans
	for _, rs := range req.Traces().ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for range ss.Spans().Len() {
				want = append(want, ss)
			}
		}
	}
	var d Decoder
	if _, err := d.Decode(b, Limits{}); err != nil {
		t.Fatal(err)
	}
	if d.Len() != len(want) {
		t.Fatalf("%d spans, pdata %d", d.Len(), len(want))
	}
	for i := range d.Len() {
		sp, _ := d.Span(i)
		w := want[i].Scope()
		if sp.Scope.Name != w.Name() || sp.Scope.Version != w.Version() {
			t.Errorf("span %d: scope %q %q, pdata %q %q", i, sp.Scope.Name, sp.Scope.Version, w.Name(), w.Version())
		}
		var got []string
		for _, kv := range sp.Scope.Attributes {
			got = append(got, kv.Key+"="+kv.Value.AsString())
		}
		var wantAttrs []string
		for k, v := range w.Attributes().All() {
			wantAttrs = append(wantAttrs, k+"="+v.AsString())
		}
		if len(got) != len(wantAttrs) {
			t.Errorf("span %d: scope attributes %q, pdata %q", i, got, wantAttrs)
			continue
		}
		for j := range got {
			if got[j] != wantAttrs[j] {
				t.Errorf("span %d: scope attributes %q, pdata %q", i, got, wantAttrs)
			}
		}
	}
	if last := want[len(want)-1].Scope(); last.Name() != "first" || last.Version() != "v2" || last.Attributes().Len() != 2 {
		t.Fatalf("the repeated scope fields did not merge in pdata as this test expects: %q %q %d", last.Name(), last.Version(), last.Attributes().Len())
	}
}

// keyValue is a KeyValue message of a string value.
func keyValue(k, v string) []byte {
	b := protowire.AppendTag(nil, fieldKeyValueKey, protowire.BytesType)
	b = protowire.AppendString(b, k)
	val := protowire.AppendTag(nil, fieldAnyValueString, protowire.BytesType)
	val = protowire.AppendString(val, v)
	b = protowire.AppendTag(b, fieldKeyValueValue, protowire.BytesType)
	return protowire.AppendBytes(b, val)
}
