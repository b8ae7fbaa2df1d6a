package otlp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/sources/otlp/otlpwire"
	"github.com/kube-sentinel/sentinel/traces"
)

// pdata is the oracle: for any bytes, the wire decoder must accept what
// ptraceotlp.ExportRequest.UnmarshalProto accepts, and turn what it
// accepts into the observations and buffered spans that the pdata path
// (pdata_oracle_test.go, the receivers' conversion before the wire
// decoder) produces.
//
// Deliberate differences, where only the decoder refuses:
//   - a request over a limit (Limits: spans, attributes per list, key
//     length, nesting depth, the decoded-size estimate) is refused with a
//     *otlpwire.LimitError that pdata, which has no such limits, does not
//     raise. The differential check then compares nothing else.
//
// There is no case where the decoder accepts what pdata refuses.

// diffLimits are the limits of the differential runs: the defaults, so
// that what a real receiver accepts is what is compared.
func diffLimits() otlpwire.Limits { return DefaultLimits().wire() }

// fullObserver records everything an observation carries: its fields and
// the labels that names, plus every attribute key of the request, answer.
type fullObserver struct {
	names []string
	got   []string
}

func (o *fullObserver) Observe(obs *engine.Observation) {
	var b strings.Builder
	fmt.Fprintf(&b, "end=%d dur=%d trace=%x span=%x failed=%v src=%d count=%d", obs.End.UnixNano(), obs.Duration,
		obs.TraceID, obs.SpanID, obs.Failed, obs.Source, obs.Count)
	for _, n := range o.names {
		v, ok := obs.Labels.Get(n)
		fmt.Fprintf(&b, " %q=%q/%v", n, v, ok)
	}
	o.got = append(o.got, b.String())
}

// labelNames are the label names every differential run reads: the span
// view's own, the request info's, and some attributes.
var labelNames = []string{
	labelSpanName, labelSpanKind, labelStatusCode,
	"verb", "group", "version", "resource", "subresource", "scope", "namespace",
	"service.name", "k8s.node.name", "http.method", "http.target", "http.status_code",
	"http.response.status_code", "rpc.grpc.status_code", "url.path", "missing.key", "",
}

// keysOf adds every attribute key of td (resource, scope, span) to names.
func keysOf(td ptrace.Traces, names []string) []string {
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	add := func(m pcommon.Map) {
		for k := range m.All() {
			if !seen[k] && len(seen) < 64 {
				seen[k] = true
				names = append(names, k)
			}
		}
	}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		add(rss.At(i).Resource().Attributes())
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			add(sss.At(j).Scope().Attributes())
			for k := 0; k < sss.At(j).Spans().Len(); k++ {
				add(sss.At(j).Spans().At(k).Attributes())
			}
		}
	}
	return names
}

// oracleBuffer feeds a trace buffer from pdata as the converter feeds it
// from the wire views: service.name and the kept resource attributes, the
// span's fields and its kept attributes (integers as such).
func oracleBuffer(b *traces.Buffer, td ptrace.Traces, received time.Time) {
	attrs := func(m pcommon.Map) []traces.Attribute {
		var out []traces.Attribute
		for k, v := range m.All() {
			if traces.Kept(k) == 0 {
				continue
			}
			a := traces.Attribute{Key: k}
			if v.Type() == pcommon.ValueTypeInt {
				a.Int, a.IsInt = v.Int(), true
			} else {
				a.Value = pdataValueString(v)
			}
			out = append(out, a)
		}
		return out
	}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		var res traces.Resource
		service := ""
		if v, ok := rss.At(i).Resource().Attributes().Get("service.name"); ok {
			service = pdataValueString(v)
		}
		res.Set(service, attrs(rss.At(i).Resource().Attributes()))
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				s := spans.At(k)
				sp := traces.Span{
					TraceID: traces.TraceID(s.TraceID()), SpanID: traces.SpanID(s.SpanID()),
					ParentSpanID: traces.SpanID(s.ParentSpanID()), Name: s.Name(),
					Kind: traces.Kind(s.Kind()), Status: traces.Status(s.Status().Code()),
					Start: int64(s.StartTimestamp()), End: int64(s.EndTimestamp()),
					Attributes: attrs(s.Attributes()),
				}
				if s.Kind() < 0 || s.Kind() > ptrace.SpanKind(traces.KindConsumer) {
					sp.Kind = traces.KindUnspecified
				}
				if s.Status().Code() < 0 || s.Status().Code() > ptrace.StatusCode(traces.StatusError) {
					sp.Status = traces.StatusUnset
				}
				if uint64(s.StartTimestamp()) > math.MaxInt64 || uint64(s.EndTimestamp()) > math.MaxInt64 {
					sp.Start, sp.End = 0, 0
				}
				b.Add(&res, &sp, received)
			}
		}
	}
}

// newDiffBuffer is a trace buffer large enough for spans spans never to
// be evicted: eviction depends on the buffer's random shard seed, so two
// buffers would evict different spans.
func newDiffBuffer(t testing.TB, now time.Time, spans int) *traces.Buffer {
	size := int64(traces.MinMaxBytes)
	// A span takes at most about 1 KiB, and a request's spans all go
	// to one of the buffer's eight shards.
	for size/1024 < 8*int64(spans) {
		size *= 2
	}
	b, err := traces.New(traces.Options{MaxBytes: size, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Outcomes of differential.
const (
	outcomeAccepted = "accepted" // by both, and compared
	outcomeRefused  = "refused"  // by both
	outcomeLimit    = "limit"    // by the decoder, over a limit
)

// differential runs body through both paths and fails t where they differ.
func differential(t testing.TB, body []byte) (outcome string) {
	t.Helper()
	req := ptraceotlp.NewExportRequest()
	perr := req.UnmarshalProto(body)

	received := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	spans := 0
	if perr == nil {
		spans = req.Traces().SpanCount()
	}
	wireBuf := newDiffBuffer(t, received, spans)
	c := newConverter(DefaultLimits().MaxAttributeValueBytes, nil, wireBuf)
	_, derr := c.dec.Decode(body, diffLimits())
	if _, ok := errors.AsType[*otlpwire.LimitError](derr); ok {
		c.release()
		return outcomeLimit // deliberate: over a limit
	}
	if (perr == nil) != (derr == nil) {
		t.Fatalf("pdata: %v; wire decoder: %v (for %x)", perr, derr, body)
	}
	if derr != nil {
		if !errors.Is(derr, otlpwire.ErrMalformed) {
			t.Fatalf("wire decoder error %v does not wrap ErrMalformed", derr)
		}
		if c.dec.Len() != 0 {
			t.Fatalf("a refused request left %d spans", c.dec.Len())
		}
		return outcomeRefused
	}
	td := req.Traces()
	names := keysOf(td, labelNames)
	wantObs, gotObs := &fullObserver{names: names}, &fullObserver{names: names}
	wa, wr := newPDataConverter(DefaultLimits().MaxAttributeValueBytes, nil).convert(td, wantObs)
	ga, gr := c.convert(gotObs, received)
	if wa != ga || wr != gr {
		t.Fatalf("accepted/rejected: pdata %d/%d, wire %d/%d", wa, wr, ga, gr)
	}
	if !reflect.DeepEqual(wantObs.got, gotObs.got) {
		for i := range min(len(wantObs.got), len(gotObs.got)) {
			if wantObs.got[i] != gotObs.got[i] {
				t.Fatalf("observation %d:\npdata %s\nwire  %s", i, wantObs.got[i], gotObs.got[i])
			}
		}
		t.Fatalf("pdata observed %d spans, wire %d", len(wantObs.got), len(gotObs.got))
	}

	pdataBuf := newDiffBuffer(t, received, spans)
	oracleBuffer(pdataBuf, td, received)
	rss := td.ResourceSpans()
	checked := map[traces.TraceID]bool{}
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				id := traces.TraceID(spans.At(k).TraceID())
				if checked[id] {
					continue
				}
				checked[id] = true
				want, wok := pdataBuf.Trace(id)
				got, gok := wireBuf.Trace(id)
				if wok != gok || !reflect.DeepEqual(want, got) {
					t.Fatalf("buffered trace %s:\npdata %+v (%v)\nwire  %+v (%v)", id, want, wok, got, gok)
				}
			}
		}
	}
	return outcomeAccepted
}

// Protobuf by hand, for the field orders and encodings other exporters
// use and for malformed input.
func tag(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
func msg(num protowire.Number, parts ...[]byte) []byte {
	return protowire.AppendBytes(tag(num, protowire.BytesType), bytes.Join(parts, nil))
}
func str(num protowire.Number, s string) []byte { return msg(num, []byte(s)) }
func vint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(tag(num, protowire.VarintType), v)
}
func fx64(num protowire.Number, v uint64) []byte {
	return protowire.AppendFixed64(tag(num, protowire.Fixed64Type), v)
}
func fx32(num protowire.Number, v uint32) []byte {
	return protowire.AppendFixed32(tag(num, protowire.Fixed32Type), v)
}
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// kv is a KeyValue field numbered num (9 on a span, 1 on a resource).
func kv(num protowire.Number, key string, value ...[]byte) []byte {
	return msg(num, str(1, key), msg(2, value...))
}

var (
	tid1 = bytes.Repeat([]byte{0xab}, 16)
	sid1 = bytes.Repeat([]byte{0x01}, 8)
	sid2 = bytes.Repeat([]byte{0x02}, 8)
)

// handWritten are requests written field by field: the field orders of
// the Java exporter (its own marshaler, ascending field numbers, every
// field), of Python's protobuf runtime (ascending, defaults omitted), and
// orders no exporter uses but the wire format allows; every attribute
// type; repeated and unknown fields; zero-length messages; and the
// malformed cases.
func handWritten() map[string][]byte {
	start, end := uint64(1748779200000000000), uint64(1748779200250000000)
	allTypes := cat(
		kv(9, "s", str(1, "v")),
		kv(9, "b", vint(2, 1)),
		kv(9, "i", vint(3, uint64(math.MaxUint64))), // -1
		kv(9, "big", vint(3, 1<<40)),
		kv(9, "d", fx64(4, math.Float64bits(2.5))),
		kv(9, "tiny", fx64(4, math.Float64bits(1e-9))),
		kv(9, "nan", fx64(4, math.Float64bits(math.NaN()))),
		kv(9, "arr", msg(5, msg(1, str(1, "a")), msg(1, vint(3, 7)), msg(1))),
		kv(9, "kvl", msg(6, kv(1, "x", str(1, "<&>")), kv(1, "x", vint(2, 0)), kv(1, "n", msg(5)))),
		kv(9, "bytes", msg(7, []byte{0, 1, 2, 0xff})),
		kv(9, "emptybytes", msg(7)),
		kv(9, "empty"),
		msg(9, str(1, "novalue")),
		msg(9),
		kv(9, "strindex", vint(8, 3)),
		kv(9, "two", str(1, "first"), vint(3, 2)), // a oneof set twice: the last wins
		msg(9, str(1, "twovalues"), msg(2, str(1, "a")), msg(2)),
		kv(9, "http.method", str(1, "GET")),
		kv(9, "http.method", str(1, "PUT")), // repeated key: Get sees the first
		kv(9, "http.target", str(1, "/api/v1/namespaces/default/pods/p")),
		kv(9, "http.status_code", str(1, "503")),
		kv(9, "rpc.grpc.status_code", fx64(4, math.Float64bits(2))),
		kv(9, "http.request.header.content-type", msg(5, msg(1, str(1, "application/vnd.kubernetes.protobuf")))),
		kv(9, "\xff\xfe", str(1, "\xc3\x28")),
	)
	javaSpan := cat(msg(1, tid1), msg(2, sid1), str(3, "k=v"), msg(4, sid2), str(5, "GET /api/v1/namespaces/{:namespace}/pods/{:name}"),
		vint(6, 2), fx64(7, start), fx64(8, end), allTypes, vint(10, 0),
		msg(11, fx64(1, start), str(2, "event"), kv(3, "e", str(1, "v")), vint(4, 0)), vint(12, 0),
		msg(13, msg(1, tid1), msg(2, sid2), str(3, ""), kv(4, "l", vint(3, 1)), vint(5, 0), fx32(6, 1)), vint(14, 0),
		msg(15, str(2, "boom"), vint(3, 2)), fx32(16, 0x101))
	resource := msg(1, kv(1, "service.name", str(1, "apiserver")), kv(1, "k8s.node.name", str(1, "cp-1")), vint(2, 0))
	scope := msg(1, str(1, "k8s.io/apiserver"), str(2, "1.30"), kv(3, "scope.attr", vint(2, 1)), vint(4, 0))
	java := msg(1, resource, msg(2, scope, msg(2, javaSpan), str(3, "https://opentelemetry.io/schemas/1.21.0")), str(3, "schema"))

	pythonSpan := cat(msg(1, tid1), msg(2, sid2), msg(4, sid1), str(5, "etcdserverpb.KV/Range"), vint(6, 1),
		fx64(7, start+1000), fx64(8, end-1000), kv(9, "rpc.system", str(1, "grpc")), msg(15))
	python := msg(1, msg(1, kv(1, "service.name", str(1, "etcd"))), msg(2, msg(1, str(1, "etcd")), msg(2, pythonSpan)))

	// ResourceSpans with its resource after its spans and in two parts;
	// a scope after its spans; span fields in reverse; status twice.
	reversedSpan := cat(msg(15, vint(3, 2)), fx32(16, 1), fx64(8, end), fx64(7, start), vint(6, 3),
		kv(9, "http.method", str(1, "POST")), str(5, "reversed"), msg(4), msg(2, sid1), msg(1, tid1),
		msg(15, str(2, "merged, code kept")), vint(6, 99), kv(9, "http.target", str(1, "/api/v1/namespaces/ns/events")))
	reordered := msg(1,
		msg(2, msg(2, reversedSpan), msg(1, str(1, "late scope"), kv(3, "a", str(1, "b")))),
		msg(1, kv(1, "service.name", str(1, "first"))),
		msg(1000, msg(2, msg(1, tid1), msg(2, sid2), fx64(7, start), fx64(8, end))), // instrumentation_library_spans
		msg(1, kv(1, "service.name", str(1, "second")), kv(1, "k8s.node.name", vint(3, 12))))

	unknown := msg(1,
		vint(99, 1), fx32(98, 2), fx64(97, 3), msg(96, []byte("??")),
		cat(tag(95, protowire.StartGroupType), tag(94, protowire.StartGroupType), tag(94, protowire.EndGroupType), tag(95, protowire.EndGroupType)),
		msg(2, vint(50, 1), msg(2, cat(msg(1, tid1), msg(2, sid1), fx64(7, start), fx64(8, end), vint(77, 5), msg(17, []byte{1, 2, 3})))))
	// Packed encodings of the repeated scalars that OTLP has none of:
	// a packed varint list under an unknown number is skipped.
	packed := msg(1, msg(2, msg(2, cat(msg(1, tid1), msg(2, sid1), fx64(7, start), fx64(8, end), msg(40, protowire.AppendVarint(protowire.AppendVarint(nil, 1), 300))))))

	// The decoder's fast path for one-scalar attributes (otlpwire's
	// scalarKeyValue): key first (the Go SDK) and value first (pdata),
	// and the near misses that must take the general loop instead.
	valueFirst := func(key string, value ...[]byte) []byte { return msg(9, msg(2, value...), str(1, key)) }
	scalars := msg(1, msg(2, msg(2, cat(msg(1, tid1), msg(2, sid1), fx64(7, start), fx64(8, end),
		valueFirst("http.method", str(1, "GET")), valueFirst("i", vint(3, 127)), valueFirst("b", vint(2, 1)),
		valueFirst("b0", vint(2, 0)), valueFirst("i2", vint(3, 128)), valueFirst("", str(1, "")),
		kv(9, "k", vint(2, 5)), kv(9, "i0", vint(3, 0)), kv(9, "long", str(1, strings.Repeat("v", 127))),
		kv(9, "longer", str(1, strings.Repeat("v", 128))), kv(9, strings.Repeat("k", 126), str(1, "x")),
		msg(9, str(1, "k1"), str(1, "k2")), msg(9, msg(2, str(1, "a")), msg(2, str(1, "b"))),
		msg(9, str(1, "extra"), msg(2, str(1, "v"), vint(3, 1))), msg(9, str(1, "d"), msg(2, fx64(4, 1))),
		msg(9, str(1, "trailing"), msg(2, str(1, "v")), vint(3, 1)), msg(9, msg(2, str(7, "bytes")), str(1, "by")),
		// Integers of any varint length, non-minimal and overlong ones.
		kv(9, "status", vint(3, 503)), kv(9, "neg", vint(3, math.MaxUint64)), valueFirst("big", vint(3, 1<<62)),
		msg(9, str(1, "nonminimal"), msg(2, cat(tag(3, protowire.VarintType), []byte{0x80, 0x80, 0x00}))),
		msg(9, str(1, "tenbytes"), msg(2, cat(tag(3, protowire.VarintType), bytes.Repeat([]byte{0xff}, 9), []byte{0x7f}))),
	))))
	overlongInt := msg(1, msg(2, msg(2, cat(msg(1, tid1), msg(2, sid1), fx64(7, start), fx64(8, end),
		msg(9, str(1, "overlong"), msg(2, cat(tag(3, protowire.VarintType), bytes.Repeat([]byte{0xff}, 10), []byte{0x01})))))))
	truncatedInt := msg(1, msg(2, msg(2, cat(msg(1, tid1), msg(2, sid1), fx64(7, start), fx64(8, end),
		msg(9, str(1, "cut"), msg(2, cat(tag(3, protowire.VarintType), []byte{0xc8})))))))

	zero := cat(msg(1), msg(1, msg(1), msg(2)), msg(1, msg(2, msg(1), msg(2))), msg(1, msg(1000)))
	noTimes := msg(1, msg(2, msg(2, cat(msg(1, tid1), msg(2, sid1), str(5, "no times")))))
	farFuture := msg(1, msg(2, msg(2, cat(msg(1, tid1), msg(2, sid1), fx64(7, start), fx64(8, math.MaxUint64)))))
	zeroIDs := msg(1, msg(2, msg(2, cat(fx64(7, start), fx64(8, end), str(5, "no ids")))))

	deepReq := msg(1, msg(1, msg(1, str(1, "deep"), msg(2, nestedArrays(100000)))))
	bigValue := msg(1, msg(2, msg(2, cat(msg(1, tid1), msg(2, sid1), fx64(7, start), fx64(8, end),
		kv(9, "http.target", str(1, strings.Repeat("a", 1<<20)))))))

	return map[string][]byte{
		"java field order":     java,
		"python field order":   python,
		"java and python":      cat(java, python),
		"reordered and merged": reordered,
		"unknown fields":       unknown,
		"deprecated scope spans only": msg(1, msg(1, kv(1, "service.name", str(1, "old"))),
			msg(1000, msg(2, msg(1, tid1), msg(2, sid1), fx64(7, start), fx64(8, end), str(5, "old sdk")))),
		"packed unknown":          packed,
		"one-scalar attributes":   scalars,
		"overlong int attribute":  overlongInt,
		"truncated int attribute": truncatedInt,
		"zero-length messages":    zero,
		"empty request":           {},
		"no times":                noTimes,
		"far future":              farFuture,
		"zero ids":                zeroIDs,
		"1 MB attribute value":    bigValue,
		"truncated":               java[:len(java)-3],
		"length past the end":     append(tag(1, protowire.BytesType), 0xff, 0x01, 0x0a),
		"wrong wire type, span":   msg(1, msg(2, vint(2, 1))),
		"wrong wire type, start":  msg(1, msg(2, msg(2, vint(7, 1)))),
		"wrong wire type, value":  msg(1, msg(2, msg(2, msg(9, msg(2, fx32(3, 1)))))),
		"wrong wire type, kind":   msg(1, msg(2, msg(2, fx64(6, 1)))),
		"short trace id":          msg(1, msg(2, msg(2, msg(1, []byte{1, 2, 3})))),
		"long span id in a link":  msg(1, msg(2, msg(2, msg(13, msg(2, bytes.Repeat([]byte{1}, 9)))))),
		"field number zero":       {0x02, 0x00},
		"end group without start": tag(5, protowire.EndGroupType),
		"nested 10⁵ deep":         deepReq,
		"overlong varint":         {0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		// pdata's skipping of an unknown group stops at its first scalar,
		// so the group's end tag comes unexpected.
		"group with a scalar": msg(1, cat(tag(95, protowire.StartGroupType), vint(1, 1), tag(95, protowire.EndGroupType))),
	}
}

// nestedArrays is an AnyValue that is an array whose one value is an
// array, depth times, built in linear time: headers from the inside out.
func nestedArrays(depth int) []byte {
	headers := make([][]byte, 0, 2*depth)
	n := 0
	for range depth {
		h := protowire.AppendVarint(tag(1, protowire.BytesType), uint64(n)) // ArrayValue.values
		n += len(h)
		headers = append(headers, h)
		h = protowire.AppendVarint(tag(5, protowire.BytesType), uint64(n)) // AnyValue.array_value
		n += len(h)
		headers = append(headers, h)
	}
	out := make([]byte, 0, n)
	for i := len(headers) - 1; i >= 0; i-- {
		out = append(out, headers[i]...)
	}
	return out
}

// sdkRequests are the OTLP/HTTP protobuf bodies the OpenTelemetry Go SDK's
// own exporter sends, captured from a loopback server.
func sdkRequests(t testing.TB) [][]byte {
	t.Helper()
	bodies := make(chan []byte, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		bodies <- b
		w.Header().Set("Content-Type", protobufContentType)
		body, _ := ptraceotlp.NewExportResponse().MarshalProto()
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(srv.URL+TracesPath))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "apiserver"), attribute.String("k8s.node.name", "cp-1"),
		attribute.StringSlice("process.command_args", []string{"kube-apiserver", "--v=2"}), attribute.Int64("process.pid", 1),
		attribute.Float64("ratio", 0.5), attribute.Bool("b", true))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(res))
	tr := tp.Tracer("k8s.io/apiserver")
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	_, server := tr.Start(ctx, "GET /api/v1/namespaces/{:name}", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("url.path", "/api/v1/namespaces/default"),
			attribute.Int("http.response.status_code", 200), attribute.StringSlice("http.request.header.content-type", []string{"application/json"}),
			attribute.BoolSlice("bs", []bool{true}), attribute.Int64Slice("is", []int64{1, 2}), attribute.Float64Slice("fs", []float64{1.5})))
	server.AddEvent("event", trace.WithAttributes(attribute.String("e", "v")))
	server.AddLink(trace.Link{SpanContext: server.SpanContext(), Attributes: []attribute.KeyValue{attribute.String("l", "v")}})
	server.SetStatus(codes.Error, "boom")
	server.End(trace.WithTimestamp(start.Add(time.Second)))
	_, internal := tr.Start(trace.ContextWithSpan(ctx, server), "Get", trace.WithTimestamp(start))
	internal.End(trace.WithTimestamp(start.Add(500 * time.Millisecond)))
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	close(bodies)
	var out [][]byte
	for b := range bodies {
		out = append(out, b)
	}
	if len(out) == 0 {
		t.Fatal("the SDK sent nothing")
	}
	return out
}

func TestDecodeDifferential(t *testing.T) {
	refused := map[string]bool{
		"truncated": true, "length past the end": true, "wrong wire type, span": true, "wrong wire type, start": true,
		"wrong wire type, value": true, "wrong wire type, kind": true, "short trace id": true,
		"long span id in a link": true, "field number zero": true, "end group without start": true, "group with a scalar": true,
		"overlong int attribute": true, "truncated int attribute": true,
	}
	for name, body := range handWritten() {
		t.Run(name, func(t *testing.T) {
			want := outcomeAccepted
			switch {
			case refused[name]:
				want = outcomeRefused
			case name == "nested 10⁵ deep":
				want = outcomeLimit // pdata refuses it too, past its recursion limit
			}
			if got := differential(t, body); got != want {
				t.Errorf("outcome %s, want %s", got, want)
			}
		})
	}
	for i, body := range sdkRequests(t) {
		t.Run(fmt.Sprintf("Go SDK request %d", i), func(t *testing.T) {
			if got := differential(t, body); got != outcomeAccepted {
				t.Errorf("outcome %s", got)
			}
		})
	}
	t.Run("apiserver payload", func(t *testing.T) {
		if got := differential(t, marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(3, 4)), 200), false)); got != outcomeAccepted {
			t.Errorf("outcome %s", got)
		}
	})
	t.Run("past the views the decoder stores", func(t *testing.T) {
		// 20,000 spans hold more attributes than the decoder keeps views
		// of as it checks them: the rest are read again by Span.
		if got := differential(t, marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(9, 10)), 20000), false)); got != outcomeAccepted {
			t.Errorf("outcome %s", got)
		}
	})
	t.Run("every value type from pdata", func(t *testing.T) {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		_ = rs.Resource().Attributes().FromRaw(map[string]any{"service.name": "svc", "host.name": int64(7), "cloud.region": 1.5})
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID(tid1))
		sp.SetSpanID(pcommon.SpanID(sid1))
		sp.SetStartTimestamp(1)
		sp.SetEndTimestamp(2)
		_ = sp.Attributes().FromRaw(map[string]any{
			"s": "x", "i": int64(-5), "d": math.Copysign(0, -1), "b": false, "m": map[string]any{"k": []any{1.5, "y", nil, true}},
			"a": []any{}, "e": nil, "bytes": []byte("\x00"), "http.route": 3.25e30,
		})
		sp.Attributes().PutEmptyBytes("emptybytes")
		if got := differential(t, marshalTraces(t, td, false)); got != outcomeAccepted {
			t.Errorf("outcome %s", got)
		}
	})
}

// The bad inputs of the issue are refused by both transports with 400 /
// InvalidArgument, and nothing of them is observed or buffered.
func TestBadInputRefusedNothingKept(t *testing.T) {
	buf := newDiffBuffer(t, time.Now(), 0)
	o := &countingObserver{}
	r, _ := newTestReceiver(t, Options{Observer: o, Traces: buf})
	cases := handWritten()
	for _, name := range []string{"truncated", "length past the end", "wrong wire type, span", "wrong wire type, start",
		"wrong wire type, value", "short trace id", "nested 10⁵ deep", "field number zero"} {
		rec := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", cases[name])
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, rec.Code)
		}
	}
	if n := o.n.Load(); n != 0 {
		t.Errorf("observed %d spans of refused requests", n)
	}
	if st := buf.Stats(); st.Spans != 0 {
		t.Errorf("buffered %d spans of refused requests", st.Spans)
	}
	// A 1 MB attribute value is within the default limits: accepted, and
	// what is kept of it is bounded (label values and buffered values are
	// truncated).
	rec := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", cases["1 MB attribute value"])
	if rec.Code != http.StatusOK {
		t.Errorf("1 MB attribute value: status %d, want 200", rec.Code)
	}
}

// FuzzDecodeDifferential: for any bytes, the wire decoder and pdata agree
// (see differential).
func FuzzDecodeDifferential(f *testing.F) {
	for _, body := range handWritten() {
		if len(body) < 64<<10 {
			f.Add(body)
		}
	}
	for _, body := range sdkRequests(f) {
		f.Add(body)
	}
	f.Add(marshalTraces(f, apiserverTraces(rand.New(rand.NewPCG(5, 6)), 8), false))
	f.Fuzz(func(t *testing.T, body []byte) { _ = differential(t, body) })
}
