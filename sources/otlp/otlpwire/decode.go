package otlpwire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// Decoder decodes ExportTraceServiceRequests in one pass over their wire
// bytes, into views: every string a Span, Scope, Resource or Value gives is
// a view into the request's bytes, valid while they are (the caller must
// neither change nor reuse them before it is done with the views, and must
// copy what it keeps). It accepts exactly what pdata's
// ptraceotlp.ExportRequest.UnmarshalProto accepts, checks the same Limits
// as Scan, and counts the same Stats. A Decoder reuses its memory from one
// request to the next, so that steady-state decoding allocates nothing; it
// is not for concurrent use.
type Decoder struct {
	spans     []Span
	resources [][]byte // ResourceSpans payloads that hold spans
	scopes    [][]byte // ScopeSpans payloads that hold spans
	// scopeMsgs is, for each of scopes, its InstrumentationScope when it
	// has exactly one scope field (nil otherwise: the ScopeSpans is read
	// again for them), so that a scope's view does not walk its spans.
	scopeMsgs [][]byte

	// stored are the span attributes' views that Decode kept as it checked
	// them, at most maxStored, so that Span need not read them again; the
	// spans past that bound are read again by Span.
	stored []KeyValue

	// The views Span fills, reused from one span to the next.
	curRes, curScope int32 // which resource and scope resView and scopeView describe; -1: none
	resView          Resource
	scopeView        Scope
	kvs              []KeyValue
	resKVs, scKVs    []KeyValue
}

// Resource is a ResourceSpans' resource: its attributes, in wire order
// (repeated resource fields merged, as pdata merges them).
type Resource struct {
	Attributes []KeyValue
}

// Scope is a ScopeSpans' instrumentation scope.
type Scope struct {
	Name, Version string
	Attributes    []KeyValue
}

// Span is the view of one span. Kind and StatusCode are the protobuf enum
// values (pdata's ptrace.SpanKind and ptrace.StatusCode). Attributes,
// Resource and Scope are set by Decoder.Span.
type Span struct {
	TraceID      [16]byte
	SpanID       [8]byte
	ParentSpanID [8]byte
	Name         string
	Kind         int32
	StatusCode   int32
	Start, End   uint64
	Attributes   []KeyValue
	Resource     *Resource
	Scope        *Scope

	raw        []byte // the span's payload
	res, scope int32
	lo, hi     int32 // its attributes in Decoder.stored; lo < 0: not stored
}

// maxStored bounds Decoder.stored: 32 Ki views (1.5 MiB), the attributes of
// a few thousand spans, whatever the request holds.
const maxStored = 1 << 15

// Get returns the value of the span attribute key: the first one, as
// pcommon.Map.Get does with repeated keys.
func (s *Span) Get(key string) (Value, bool) { return lookup(s.Attributes, key) }

// Get returns the value of the resource attribute key (the first one).
func (r *Resource) Get(key string) (Value, bool) { return lookup(r.Attributes, key) }

// Get returns the value of the scope attribute key (the first one).
func (s *Scope) Get(key string) (Value, bool) { return lookup(s.Attributes, key) }

func lookup(kvs []KeyValue, key string) (Value, bool) {
	for i := range kvs {
		if kvs[i].Key == key {
			return kvs[i].Value, true
		}
	}
	return Value{}, false
}

// KeyValue is one attribute.
type KeyValue struct {
	Key   string
	Value Value
}

// ValueType is an attribute value's type; the values are pcommon.ValueType's.
type ValueType uint8

// The value types, numbered as pcommon.ValueType.
const (
	ValueTypeEmpty ValueType = iota
	ValueTypeStr
	ValueTypeInt
	ValueTypeDouble
	ValueTypeBool
	ValueTypeMap
	ValueTypeSlice
	ValueTypeBytes
)

// Value is an AnyValue's view. Arrays and kvlists stay in wire form until
// AsString renders them.
type Value struct {
	typ   ValueType
	depth int32  // pdata's recursion depth of an array's or kvlist's message
	num   uint64 // bool, int and double values
	str   string // string and bytes values; arrays and kvlists in wire form
}

// Type is the value's type.
func (v Value) Type() ValueType { return v.typ }

// Str is a string value ("" for other types).
func (v Value) Str() string {
	if v.typ == ValueTypeStr {
		return v.str
	}
	return ""
}

// Int is an integer value (0 for other types).
func (v Value) Int() int64 {
	if v.typ == ValueTypeInt {
		return int64(v.num)
	}
	return 0
}

// Double is a double value (0 for other types).
func (v Value) Double() float64 {
	if v.typ == ValueTypeDouble {
		return math.Float64frombits(v.num)
	}
	return 0
}

// Bool is a boolean value (false for other types).
func (v Value) Bool() bool { return v.typ == ValueTypeBool && v.num != 0 }

// FirstStr is the first element of an array value when it is a string:
// how header attributes come in the current semantic conventions.
func (v Value) FirstStr() (string, bool) {
	if v.typ != ValueTypeSlice {
		return "", false
	}
	b := unsafe.Slice(unsafe.StringData(v.str), len(v.str))
	for len(b) > 0 {
		num, _, p, n, err := next(b)
		if err != nil {
			return "", false
		}
		b = b[n:]
		if num == fieldArrayValues {
			var e Value
			// Validated by Decode: no error here.
			_ = decodeAnyValue(p, &e, int(v.depth)+1)
			return e.Str(), e.typ == ValueTypeStr
		}
	}
	return "", false
}

// AsString renders the value as pcommon.Value.AsString does. Strings and
// booleans do not allocate; the other types do.
func (v Value) AsString() string {
	switch v.typ {
	case ValueTypeStr:
		return v.str
	case ValueTypeBool:
		return strconv.FormatBool(v.num != 0)
	case ValueTypeInt:
		return strconv.FormatInt(int64(v.num), 10)
	case ValueTypeDouble:
		return float64AsString(math.Float64frombits(v.num))
	case ValueTypeBytes:
		return base64.StdEncoding.EncodeToString(unsafe.Slice(unsafe.StringData(v.str), len(v.str)))
	case ValueTypeMap, ValueTypeSlice:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v.asRaw()) // pdata ignores the error (NaN) too
		return strings.TrimRight(buf.String(), "\n")
	}
	return ""
}

// asRaw is pcommon.Value.AsRaw's result for the value.
func (v Value) asRaw() any {
	switch v.typ {
	case ValueTypeStr:
		return strings.Clone(v.str)
	case ValueTypeBool:
		return v.num != 0
	case ValueTypeInt:
		return int64(v.num)
	case ValueTypeDouble:
		return math.Float64frombits(v.num)
	case ValueTypeBytes:
		return []byte(v.str)
	case ValueTypeSlice:
		out := []any{}
		walkRaw(v.wire(), fieldArrayValues, func(p []byte) {
			var e Value
			_ = decodeAnyValue(p, &e, int(v.depth)+1)
			out = append(out, e.asRaw())
		})
		return out
	case ValueTypeMap:
		out := map[string]any{}
		walkRaw(v.wire(), fieldKVListValues, func(p []byte) {
			var kv KeyValue
			_ = decodeKeyValue(p, &kv, int(v.depth)+1)
			out[kv.Key] = kv.Value.asRaw()
		})
		return out
	}
	return nil
}

// wire is an array's or kvlist's message.
func (v Value) wire() []byte { return unsafe.Slice(unsafe.StringData(v.str), len(v.str)) }

// walkRaw calls f with every field want of an array or kvlist that
// Decode validated.
func walkRaw(b []byte, want protowire.Number, f func([]byte)) {
	for len(b) > 0 {
		num, _, p, n, err := next(b)
		if err != nil {
			return
		}
		b = b[n:]
		if num == want {
			f(p)
		}
	}
}

// float64AsString is pcommon's rendering of a double.
func float64AsString(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	var scratch [64]byte
	b := scratch[:0]
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return string(b)
}

// recursionLimit is pdata's (internal/proto.RecursionLimit): a KeyValue,
// AnyValue, ArrayValue or KeyValueList entered at this depth is refused.
const recursionLimit = 100

// Len is the number of spans of the last request decoded.
func (d *Decoder) Len() int { return len(d.spans) }

// Span returns the view of the ith span of the last request decoded, in
// wire order, with its attributes, resource and scope; newResource tells
// whether its resource differs from that of the span Span returned last.
// The view and its attribute slices are the Decoder's, reused by the next
// call: they are valid until then.
func (d *Decoder) Span(i int) (sp *Span, newResource bool) {
	sp = &d.spans[i]
	if sp.res != d.curRes {
		d.curRes, newResource = sp.res, true
		d.resKVs = resourceAttributes(d.resKVs[:0], d.resources[sp.res])
		d.resView.Attributes = d.resKVs
	}
	if sp.scope != d.curScope {
		d.curScope = sp.scope
		d.scKVs = scopeView(&d.scopeView, d.scKVs[:0], d.scopes[sp.scope], d.scopeMsgs[sp.scope])
		d.scopeView.Attributes = d.scKVs
	}
	if sp.lo >= 0 {
		sp.Attributes = d.stored[sp.lo:sp.hi:sp.hi]
	} else {
		d.kvs = appendAttributes(d.kvs[:0], sp.raw, fieldSpanAttributes)
		sp.Attributes = d.kvs
	}
	sp.Resource, sp.Scope = &d.resView, &d.scopeView
	return sp, newResource
}

// Rewind makes the next Span call report its resource as new, as the
// first call after Decode does: for a second pass over the spans.
func (d *Decoder) Rewind() { d.curRes, d.curScope = -1, -1 }

// appendAttributes appends the KeyValues of field attrs of a message that
// Decode checked.
func appendAttributes(dst []KeyValue, b []byte, attrs protowire.Number) []KeyValue {
	for len(b) > 0 {
		num, _, v, n, err := next(b)
		if err != nil {
			return dst
		}
		b = b[n:]
		if num == attrs {
			dst = append(dst, KeyValue{})
			viewKeyValue(v, &dst[len(dst)-1], 0)
		}
	}
	return dst
}

func resourceAttributes(dst []KeyValue, rs []byte) []KeyValue {
	for len(rs) > 0 {
		num, _, v, n, err := next(rs)
		if err != nil {
			return dst
		}
		rs = rs[n:]
		if num == fieldResourceSpansResource {
			dst = appendAttributes(dst, v, fieldResourceAttributes)
		}
	}
	return dst
}

// scopeView fills sc from the ScopeSpans ss, whose only scope field is
// msg if msg is not nil: then ss, which holds the spans, is not walked.
func scopeView(sc *Scope, dst []KeyValue, ss, msg []byte) []KeyValue {
	sc.Name, sc.Version = "", ""
	if msg != nil {
		return scopeFields(sc, dst, msg)
	}
	for len(ss) > 0 {
		num, _, v, n, err := next(ss)
		if err != nil {
			return dst
		}
		ss = ss[n:]
		if num == fieldScopeSpansScope {
			dst = scopeFields(sc, dst, v)
		}
	}
	return dst
}

// scopeFields reads one InstrumentationScope message into sc and dst
// (a later one read into the same overrides and appends, as pdata merges
// repeated messages).
func scopeFields(sc *Scope, dst []KeyValue, v []byte) []KeyValue {
	dst = appendAttributes(dst, v, fieldScopeAttributes)
	for p := v; len(p) > 0; {
		num, _, f, n, err := next(p)
		if err != nil {
			break
		}
		p = p[n:]
		switch num {
		case fieldScopeName:
			sc.Name = view(f)
		case fieldScopeVersion:
			sc.Version = view(f)
		}
	}
	return dst
}

// Reset drops the references to the last request's bytes, so that a
// pooled Decoder does not keep a request alive.
func (d *Decoder) Reset() {
	clear(d.spans)
	clear(d.resources)
	clear(d.scopes)
	clear(d.scopeMsgs)
	clear(d.kvs)
	clear(d.stored)
	d.stored = d.stored[:0]
	clear(d.resKVs)
	clear(d.scKVs)
	d.spans, d.resources, d.scopes, d.scopeMsgs = d.spans[:0], d.resources[:0], d.scopes[:0], d.scopeMsgs[:0]
	d.kvs, d.resKVs, d.scKVs = d.kvs[:0], d.resKVs[:0], d.scKVs[:0]
	d.resView, d.scopeView = Resource{}, Scope{}
	d.curRes, d.curScope = -1, -1
}

// Decode checks b, an ExportTraceServiceRequest, against lim as Scan does
// (its errors are Scan's: a *LimitError, or one wrapping ErrMalformed) and
// against everything pdata checks, and records where its spans are; on
// success, Span returns them. It allocates nothing once the Decoder's
// memory has grown to the largest request's span count: attributes are
// only read by Span.
func (d *Decoder) Decode(b []byte, lim Limits) (Stats, error) {
	d.Reset()
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultMaxDepth
	}
	s := scanner{lim: lim}
	s.st.DecodedBytes = int64(len(b))
	if err := d.request(&s, b); err != nil {
		d.Reset()
		return s.st, err
	}
	return s.st, nil
}

// view is a string that shares b's memory.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func wrongWire(msg string, num protowire.Number, typ, want protowire.Type) error {
	return fmt.Errorf("%w: %s field %d has wire type %d, want %d", ErrMalformed, msg, num, typ, want)
}

func (d *Decoder) request(s *scanner, b []byte) error {
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num == fieldRequestResourceSpans {
			if typ != protowire.BytesType {
				return wrongType("ExportTraceServiceRequest", num, typ)
			}
			if err := d.resourceSpans(s, v); err != nil {
				return err
			}
		}
	}
	return nil
}

const fieldResourceSpansSchemaURL = 3

// resourceSpans checks a ResourceSpans; it is recorded as a resource when
// it holds a span.
func (d *Decoder) resourceSpans(s *scanner, b []byte) error {
	s.st.ResourceSpans++
	if err := s.cost(costResourceSpans); err != nil {
		return err
	}
	// pdata reads instrumentation_library_spans as scope_spans only when
	// there are no scope_spans (internal/otlp.MigrateTraces).
	deprecated := true
	for p := b; len(p) > 0; {
		num, _, _, n, err := next(p)
		if err != nil {
			return err
		}
		p = p[n:]
		if num == fieldResourceSpansScopeSpans {
			deprecated = false
			break
		}
	}
	res := int32(-1)
	for p := b; len(p) > 0; {
		num, typ, v, n, err := next(p)
		if err != nil {
			return err
		}
		p = p[n:]
		switch num {
		case fieldResourceSpansResource:
			if typ != protowire.BytesType {
				return wrongType("ResourceSpans", num, typ)
			}
			if err := d.resource(s, v); err != nil {
				return err
			}
		case fieldResourceSpansScopeSpans, fieldResourceSpansDeprecatedScopeSpans:
			if typ != protowire.BytesType {
				return wrongType("ResourceSpans", num, typ)
			}
			keep := (num == fieldResourceSpansScopeSpans) != deprecated
			if err := d.scopeSpans(s, v, b, &res, keep); err != nil {
				return err
			}
		case fieldResourceSpansSchemaURL:
			if typ != protowire.BytesType {
				return wrongType("ResourceSpans", num, typ)
			}
		}
	}
	return nil
}

// Resource fields.
const (
	fieldResourceDroppedAttributes = 2
	fieldResourceEntityRefs        = 3
)

func (d *Decoder) resource(s *scanner, b []byte) error {
	attrs := 0
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case fieldResourceAttributes:
			if typ != protowire.BytesType {
				return wrongType("resource", num, typ)
			}
			attrs++
			if err := d.attribute(s, v, attrs, "resource"); err != nil {
				return err
			}
		case fieldResourceDroppedAttributes:
			if typ != protowire.VarintType {
				return wrongWire("Resource", num, typ, protowire.VarintType)
			}
		case fieldResourceEntityRefs:
			if typ != protowire.BytesType {
				return wrongType("Resource", num, typ)
			}
			if err := entityRef(v); err != nil {
				return err
			}
		}
	}
	return nil
}

// entityRef checks an EntityRef: four string fields.
func entityRef(b []byte) error {
	for len(b) > 0 {
		num, typ, _, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num >= 1 && num <= 4 && typ != protowire.BytesType {
			return wrongType("EntityRef", num, typ)
		}
	}
	return nil
}

const fieldScopeSpansSchemaURL = 3

// scopeSpans checks a ScopeSpans of the ResourceSpans rs, and, if keep,
// records its spans, and the resource and scope they belong to.
func (d *Decoder) scopeSpans(s *scanner, b, rs []byte, res *int32, keep bool) error {
	s.st.ScopeSpans++
	if err := s.cost(costScopeSpans); err != nil {
		return err
	}
	scope := int32(-1)
	var msg []byte // the scope field, if there is exactly one
	msgs := 0
	for p := b; len(p) > 0; {
		num, typ, v, n, err := next(p)
		if err != nil {
			return err
		}
		p = p[n:]
		switch num {
		case fieldScopeSpansScope:
			if typ != protowire.BytesType {
				return wrongType("ScopeSpans", num, typ)
			}
			if err := d.scope(s, v); err != nil {
				return err
			}
			msg = v
			msgs++
		case fieldScopeSpansSpans:
			if typ != protowire.BytesType {
				return wrongType("ScopeSpans", num, typ)
			}
			s.st.Spans++
			if s.lim.MaxSpans > 0 && s.st.Spans > s.lim.MaxSpans {
				return &LimitError{Reason: ReasonTooManySpans,
					Msg: fmt.Sprintf("more than %d spans in one request", s.lim.MaxSpans)}
			}
			if !keep {
				if err := d.span(s, v, -1, -1); err != nil {
					return err
				}
				d.spans = d.spans[:len(d.spans)-1]
				continue
			}
			if *res < 0 {
				*res = int32(len(d.resources))
				d.resources = append(d.resources, rs)
			}
			if scope < 0 {
				scope = int32(len(d.scopes))
				d.scopes = append(d.scopes, b)
				d.scopeMsgs = append(d.scopeMsgs, nil)
			}
			if err := d.span(s, v, *res, scope); err != nil {
				return err
			}
		case fieldScopeSpansSchemaURL:
			if typ != protowire.BytesType {
				return wrongType("ScopeSpans", num, typ)
			}
		}
	}
	if scope >= 0 && msgs == 1 {
		d.scopeMsgs[scope] = msg
	}
	return nil
}

// InstrumentationScope fields.
const (
	fieldScopeName              = 1
	fieldScopeVersion           = 2
	fieldScopeDroppedAttributes = 4
)

func (d *Decoder) scope(s *scanner, b []byte) error {
	attrs := 0
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case fieldScopeName, fieldScopeVersion:
			if typ != protowire.BytesType {
				return wrongType("InstrumentationScope", num, typ)
			}
		case fieldScopeAttributes:
			if typ != protowire.BytesType {
				return wrongType("scope", num, typ)
			}
			attrs++
			if err := d.attribute(s, v, attrs, "scope"); err != nil {
				return err
			}
		case fieldScopeDroppedAttributes:
			if typ != protowire.VarintType {
				return wrongWire("InstrumentationScope", num, typ, protowire.VarintType)
			}
		}
	}
	return nil
}

// Span fields.
const (
	fieldSpanTraceID       = 1
	fieldSpanSpanID        = 2
	fieldSpanTraceState    = 3
	fieldSpanParentSpanID  = 4
	fieldSpanName          = 5
	fieldSpanKind          = 6
	fieldSpanStart         = 7
	fieldSpanEnd           = 8
	fieldSpanDroppedAttrs  = 10
	fieldSpanDroppedEvents = 12
	fieldSpanDroppedLinks  = 14
	fieldSpanStatus        = 15
	fieldSpanFlags         = 16

	fieldStatusMessage = 2
	fieldStatusCode    = 3
)

// id copies a trace or span ID as pdata does: empty is all zeros, any
// other length than the ID's is refused.
func id(dst []byte, v []byte, what string) error {
	switch len(v) {
	case 0:
		clear(dst)
	case len(dst):
		copy(dst, v)
	default:
		return fmt.Errorf("%w: %s of %d bytes", ErrMalformed, what, len(v))
	}
	return nil
}

func (d *Decoder) span(s *scanner, b []byte, res, scope int32) error {
	if err := s.cost(costSpan); err != nil {
		return err
	}
	d.spans = append(d.spans, Span{})
	sp := &d.spans[len(d.spans)-1]
	sp.res, sp.scope, sp.raw, sp.lo = res, scope, b, int32(len(d.stored))
	attrs := 0
	store := true
	var scratch KeyValue // an attribute that is not stored
	var err error
	for len(b) > 0 {
		// The fields that nearly every span has, in their usual
		// encoding (one-byte tags and lengths), are read here without
		// next's general decoding; anything else, and these fields in
		// any other encoding, take the general path below, which reads
		// them to the same effect.
		if len(b) >= 2 {
			switch b[0] {
			case fieldSpanTraceID<<3 | byte(protowire.BytesType):
				if b[1] == 16 && len(b) >= 18 {
					copy(sp.TraceID[:], b[2:18])
					b = b[18:]
					continue
				}
			case fieldSpanSpanID<<3 | byte(protowire.BytesType):
				if b[1] == 8 && len(b) >= 10 {
					copy(sp.SpanID[:], b[2:10])
					b = b[10:]
					continue
				}
			case fieldSpanParentSpanID<<3 | byte(protowire.BytesType):
				if b[1] == 8 && len(b) >= 10 {
					copy(sp.ParentSpanID[:], b[2:10])
					b = b[10:]
					continue
				}
			case fieldSpanName<<3 | byte(protowire.BytesType):
				if end := 2 + int(b[1]); b[1] < 0x80 && end <= len(b) {
					sp.Name = view(b[2:end])
					b = b[end:]
					continue
				}
			case fieldSpanKind<<3 | byte(protowire.VarintType):
				if b[1] < 0x80 {
					sp.Kind = int32(b[1])
					b = b[2:]
					continue
				}
			case fieldSpanStart<<3 | byte(protowire.Fixed64Type):
				if len(b) >= 9 {
					sp.Start = fixed64(b[:9])
					b = b[9:]
					continue
				}
			case fieldSpanEnd<<3 | byte(protowire.Fixed64Type):
				if len(b) >= 9 {
					sp.End = fixed64(b[:9])
					b = b[9:]
					continue
				}
			case fieldSpanAttributes<<3 | byte(protowire.BytesType):
				if end := 2 + int(b[1]); b[1] < 0x80 && end <= len(b) {
					attrs++
					if store, err = d.spanAttribute(s, b[2:end], attrs, store, &scratch); err != nil {
						return err
					}
					b = b[end:]
					continue
				}
			}
		}
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		field := b[:n]
		b = b[n:]
		switch num {
		case fieldSpanTraceID, fieldSpanSpanID, fieldSpanParentSpanID, fieldSpanTraceState, fieldSpanName:
			if typ != protowire.BytesType {
				return wrongType("Span", num, typ)
			}
			switch num {
			case fieldSpanTraceID:
				err = id(sp.TraceID[:], v, "trace ID")
			case fieldSpanSpanID:
				err = id(sp.SpanID[:], v, "span ID")
			case fieldSpanParentSpanID:
				err = id(sp.ParentSpanID[:], v, "parent span ID")
			case fieldSpanName:
				sp.Name = view(v)
			}
			if err != nil {
				return err
			}
		case fieldSpanKind, fieldSpanDroppedAttrs, fieldSpanDroppedEvents, fieldSpanDroppedLinks:
			if typ != protowire.VarintType {
				return wrongWire("Span", num, typ, protowire.VarintType)
			}
			if num == fieldSpanKind {
				x, _ := tagged(field)
				sp.Kind = int32(x)
			}
		case fieldSpanStart, fieldSpanEnd:
			if typ != protowire.Fixed64Type {
				return wrongWire("Span", num, typ, protowire.Fixed64Type)
			}
			x := fixed64(field)
			if num == fieldSpanStart {
				sp.Start = x
			} else {
				sp.End = x
			}
		case fieldSpanFlags:
			if typ != protowire.Fixed32Type {
				return wrongWire("Span", num, typ, protowire.Fixed32Type)
			}
		case fieldSpanAttributes:
			if typ != protowire.BytesType {
				return wrongType("Span", num, typ)
			}
			attrs++
			if store, err = d.spanAttribute(s, v, attrs, store, &scratch); err != nil {
				return err
			}
		case fieldSpanEvents:
			if typ != protowire.BytesType {
				return wrongType("Span", num, typ)
			}
			s.st.Events++
			if err := s.cost(costEvent); err != nil {
				return err
			}
			if err := d.event(s, v); err != nil {
				return err
			}
		case fieldSpanLinks:
			if typ != protowire.BytesType {
				return wrongType("Span", num, typ)
			}
			s.st.Links++
			if err := s.cost(costLink); err != nil {
				return err
			}
			if err := d.link(s, v); err != nil {
				return err
			}
		case fieldSpanStatus:
			if typ != protowire.BytesType {
				return wrongType("Span", num, typ)
			}
			if err := status(v, &sp.StatusCode); err != nil {
				return err
			}
		}
	}
	if store {
		sp.hi = int32(len(d.stored))
	} else {
		d.stored = d.stored[:sp.lo]
		sp.lo = -1
	}
	return nil
}

// spanAttribute checks and decodes the nth attribute of a span: where it
// is stored if store (and there is room left: false is returned once
// there is not), into scratch if not.
func (d *Decoder) spanAttribute(s *scanner, b []byte, nth int, store bool, scratch *KeyValue) (bool, error) {
	// Decoded where it is stored: a copy of the view just written would
	// read it back.
	kv := scratch
	*kv = KeyValue{}
	if store = store && len(d.stored) < maxStored; store {
		d.stored = append(d.stored, KeyValue{})
		kv = &d.stored[len(d.stored)-1]
	}
	// keyValue's work for the encoding nearly every attribute has, when
	// no limit is reached: counted, then decoded by scalarKeyValue. For
	// anything else keyValue does it all, errors included.
	lim := &s.lim
	if (lim.MaxDecodedBytes <= 0 || s.st.DecodedBytes+costKeyValue <= lim.MaxDecodedBytes) &&
		(lim.MaxAttributes <= 0 || nth <= lim.MaxAttributes) && scalarKeyValue(b, kv) &&
		(lim.MaxKeyBytes <= 0 || len(kv.Key) <= lim.MaxKeyBytes) {
		s.st.Attributes++
		s.st.DecodedBytes += costKeyValue
		return store, nil
	}
	*kv = KeyValue{}
	return store, d.keyValue(s, b, nth, "span", 0, 0, kv)
}

// tagged reads the varint after a field's tag.
func tagged(field []byte) (uint64, error) {
	_, tn, _ := varint(field)
	v, _, err := varint(field[tn:])
	return v, err
}

// fixed64 reads the little-endian value at the end of a fixed64 field.
func fixed64(field []byte) uint64 {
	p := field[len(field)-8:]
	return uint64(p[0]) | uint64(p[1])<<8 | uint64(p[2])<<16 | uint64(p[3])<<24 |
		uint64(p[4])<<32 | uint64(p[5])<<40 | uint64(p[6])<<48 | uint64(p[7])<<56
}

func status(b []byte, code *int32) error {
	for len(b) > 0 {
		num, typ, _, n, err := next(b)
		if err != nil {
			return err
		}
		field := b[:n]
		b = b[n:]
		switch num {
		case fieldStatusMessage:
			if typ != protowire.BytesType {
				return wrongType("Status", num, typ)
			}
		case fieldStatusCode:
			if typ != protowire.VarintType {
				return wrongWire("Status", num, typ, protowire.VarintType)
			}
			x, _ := tagged(field)
			*code = int32(x)
		}
	}
	return nil
}

// Event and link fields.
const (
	fieldEventTime              = 1
	fieldEventName              = 2
	fieldEventDroppedAttributes = 4

	fieldLinkTraceID           = 1
	fieldLinkSpanID            = 2
	fieldLinkTraceState        = 3
	fieldLinkDroppedAttributes = 5
	fieldLinkFlags             = 6
)

// event checks a span event; its attributes are counted, not kept.
func (d *Decoder) event(s *scanner, b []byte) error {
	attrs := 0
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case fieldEventTime:
			if typ != protowire.Fixed64Type {
				return wrongWire("Event", num, typ, protowire.Fixed64Type)
			}
		case fieldEventName:
			if typ != protowire.BytesType {
				return wrongType("Event", num, typ)
			}
		case fieldEventAttributes:
			if typ != protowire.BytesType {
				return wrongType("span event", num, typ)
			}
			attrs++
			if err := d.attribute(s, v, attrs, "span event"); err != nil {
				return err
			}
		case fieldEventDroppedAttributes:
			if typ != protowire.VarintType {
				return wrongWire("Event", num, typ, protowire.VarintType)
			}
		}
	}
	return nil
}

// link checks a span link; its attributes are counted, not kept.
func (d *Decoder) link(s *scanner, b []byte) error {
	attrs := 0
	var tid [16]byte
	var sid [8]byte
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case fieldLinkTraceID, fieldLinkSpanID, fieldLinkTraceState:
			if typ != protowire.BytesType {
				return wrongType("Link", num, typ)
			}
			if num == fieldLinkTraceID {
				err = id(tid[:], v, "link trace ID")
			} else if num == fieldLinkSpanID {
				err = id(sid[:], v, "link span ID")
			}
			if err != nil {
				return err
			}
		case fieldLinkAttributes:
			if typ != protowire.BytesType {
				return wrongType("span link", num, typ)
			}
			attrs++
			if err := d.attribute(s, v, attrs, "span link"); err != nil {
				return err
			}
		case fieldLinkDroppedAttributes:
			if typ != protowire.VarintType {
				return wrongWire("Link", num, typ, protowire.VarintType)
			}
		case fieldLinkFlags:
			if typ != protowire.Fixed32Type {
				return wrongWire("Link", num, typ, protowire.Fixed32Type)
			}
		}
	}
	return nil
}

// attribute checks a KeyValue, the nth of its list.
func (d *Decoder) attribute(s *scanner, b []byte, nth int, owner string) error {
	var kv KeyValue
	return d.keyValue(s, b, nth, owner, 0, 0, &kv)
}

// KeyValue and AnyValue fields.
const (
	fieldKeyValueKeyStrindex = 3

	fieldAnyValueString         = 1
	fieldAnyValueBool           = 2
	fieldAnyValueInt            = 3
	fieldAnyValueDouble         = 4
	fieldAnyValueBytes          = 7
	fieldAnyValueStringStrindex = 8
)

// keyValue checks a KeyValue at a nesting depth (of arrays and kvlists,
// for Limits.MaxDepth) and pdata's recursion depth pd, counting it as Scan
// does, and decodes it into kv.
func (d *Decoder) keyValue(s *scanner, b []byte, nth int, owner string, depth, pd int, kv *KeyValue) error {
	s.st.Attributes++
	if err := s.cost(costKeyValue); err != nil {
		return err
	}
	if s.lim.MaxAttributes > 0 && nth > s.lim.MaxAttributes {
		return &LimitError{Reason: ReasonTooManyAttributes,
			Msg: fmt.Sprintf("more than %d attributes in a %s's list", s.lim.MaxAttributes, owner)}
	}
	if pd >= recursionLimit {
		return fmt.Errorf("%w: attributes nested past pdata's recursion limit", ErrMalformed)
	}
	if scalarKeyValue(b, kv) {
		if s.lim.MaxKeyBytes > 0 && len(kv.Key) > s.lim.MaxKeyBytes {
			return &LimitError{Reason: ReasonKeyTooLong,
				Msg: fmt.Sprintf("a %s attribute key of %d bytes is over the limit of %d bytes", owner, len(kv.Key), s.lim.MaxKeyBytes)}
		}
		return nil
	}
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case fieldKeyValueKey:
			if typ != protowire.BytesType {
				return wrongType("KeyValue", num, typ)
			}
			if s.lim.MaxKeyBytes > 0 && len(v) > s.lim.MaxKeyBytes {
				return &LimitError{Reason: ReasonKeyTooLong,
					Msg: fmt.Sprintf("a %s attribute key of %d bytes is over the limit of %d bytes", owner, len(v), s.lim.MaxKeyBytes)}
			}
			kv.Key = view(v)
		case fieldKeyValueValue:
			if typ != protowire.BytesType {
				return wrongType("KeyValue", num, typ)
			}
			if err := d.anyValue(s, v, owner, depth, pd+1, &kv.Value); err != nil {
				return err
			}
		case fieldKeyValueKeyStrindex:
			if typ != protowire.VarintType {
				return wrongWire("KeyValue", num, typ, protowire.VarintType)
			}
		}
	}
	return nil
}

// scalarKeyValue decodes, into kv (zero on entry), the encoding that
// almost every attribute has: its key and its value holding one string,
// integer or boolean, in either order (the Go SDK writes the key first,
// pdata the value), each length in one byte. It reports
// false, leaving kv alone, for anything else, which keyValue's general
// loop reads; for what it takes, the result is the loop's.
func scalarKeyValue(b []byte, kv *KeyValue) bool {
	// Two fields: 0x0a is field 1 (key), 0x12 field 2 (value), both
	// length-delimited, lengths in one byte.
	if len(b) < 4 || b[1] >= 0x80 {
		return false
	}
	p := 2 + int(b[1])
	if p+2 > len(b) || b[p+1] >= 0x80 || p+2+int(b[p+1]) != len(b) {
		return false
	}
	var key, v []byte
	switch {
	case b[0] == 0x0a && b[p] == 0x12:
		key, v = b[2:p], b[p+2:]
	case b[0] == 0x12 && b[p] == 0x0a:
		v, key = b[2:p], b[p+2:]
	default:
		return false
	}
	if len(v) < 2 || v[1] >= 0x80 {
		return false
	}
	switch v[0] {
	case fieldAnyValueString<<3 | byte(protowire.BytesType):
		if 2+int(v[1]) != len(v) {
			return false
		}
		kv.Value.typ, kv.Value.str = ValueTypeStr, view(v[2:])
	case fieldAnyValueInt<<3 | byte(protowire.VarintType):
		// Any length: status codes (200–599) take two bytes.
		x, n, err := varint(v[1:])
		if err != nil || 1+n != len(v) {
			return false
		}
		kv.Value.typ, kv.Value.num = ValueTypeInt, x
	case fieldAnyValueBool<<3 | byte(protowire.VarintType):
		if len(v) != 2 {
			return false
		}
		kv.Value.typ, kv.Value.num = ValueTypeBool, uint64(v[1])
	default:
		return false
	}
	kv.Key = view(key)
	return true
}

// anyValue checks an AnyValue and decodes it into val; a repeated AnyValue
// field merges into the same val, as pdata's does (the last value set wins).
func (d *Decoder) anyValue(s *scanner, b []byte, owner string, depth, pd int, val *Value) error {
	if pd >= recursionLimit {
		return fmt.Errorf("%w: attributes nested past pdata's recursion limit", ErrMalformed)
	}
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		field := b[:n]
		b = b[n:]
		switch num {
		case fieldAnyValueString, fieldAnyValueBytes:
			if typ != protowire.BytesType {
				return wrongType("AnyValue", num, typ)
			}
			val.typ, val.str = ValueTypeStr, view(v)
			if num == fieldAnyValueBytes {
				val.typ = ValueTypeBytes
			}
		case fieldAnyValueBool, fieldAnyValueInt, fieldAnyValueStringStrindex:
			if typ != protowire.VarintType {
				return wrongWire("AnyValue", num, typ, protowire.VarintType)
			}
			x, _ := tagged(field)
			val.num, val.str = x, ""
			switch num {
			case fieldAnyValueBool:
				val.typ = ValueTypeBool
			case fieldAnyValueInt:
				val.typ = ValueTypeInt
			default:
				val.typ = ValueTypeEmpty
			}
		case fieldAnyValueDouble:
			if typ != protowire.Fixed64Type {
				return wrongWire("AnyValue", num, typ, protowire.Fixed64Type)
			}
			val.typ, val.num, val.str = ValueTypeDouble, fixed64(field), ""
		case fieldAnyValueArray, fieldAnyValueKVList:
			if typ != protowire.BytesType {
				return wrongType("AnyValue", num, typ)
			}
			if depth+1 > s.lim.MaxDepth {
				return &LimitError{Reason: ReasonTooDeep,
					Msg: fmt.Sprintf("a %s attribute nests arrays or kvlists more than %d deep", owner, s.lim.MaxDepth)}
			}
			if num == fieldAnyValueArray {
				err = d.array(s, v, owner, depth+1, pd+1)
				val.typ = ValueTypeSlice
			} else {
				err = d.kvlist(s, v, owner, depth+1, pd+1)
				val.typ = ValueTypeMap
			}
			if err != nil {
				return err
			}
			val.num, val.str, val.depth = 0, view(v), int32(pd+1)
		}
	}
	return nil
}

func (d *Decoder) array(s *scanner, b []byte, owner string, depth, pd int) error {
	if pd >= recursionLimit {
		return fmt.Errorf("%w: attributes nested past pdata's recursion limit", ErrMalformed)
	}
	values := 0
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num != fieldArrayValues {
			continue
		}
		if typ != protowire.BytesType {
			return wrongType("ArrayValue", num, typ)
		}
		values++
		s.st.Values++
		if err := s.cost(costArrayValue); err != nil {
			return err
		}
		if s.lim.MaxAttributes > 0 && values > s.lim.MaxAttributes {
			return &LimitError{Reason: ReasonTooManyAttributes,
				Msg: fmt.Sprintf("more than %d values in an array of a %s attribute", s.lim.MaxAttributes, owner)}
		}
		var e Value
		if err := d.anyValue(s, v, owner, depth, pd+1, &e); err != nil {
			return err
		}
	}
	return nil
}

func (d *Decoder) kvlist(s *scanner, b []byte, owner string, depth, pd int) error {
	if pd >= recursionLimit {
		return fmt.Errorf("%w: attributes nested past pdata's recursion limit", ErrMalformed)
	}
	entries := 0
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num != fieldKVListValues {
			continue
		}
		if typ != protowire.BytesType {
			return wrongType("KeyValueList", num, typ)
		}
		entries++
		var kv KeyValue
		if err := d.keyValue(s, v, entries, owner, depth, pd+1, &kv); err != nil {
			return err
		}
	}
	return nil
}

// viewKeyValue reads a KeyValue that Decode checked, without limits or
// counting: the key and the value's view.
func viewKeyValue(b []byte, kv *KeyValue, pd int) {
	for len(b) > 0 {
		num, _, v, n, err := next(b)
		if err != nil {
			return
		}
		b = b[n:]
		switch num {
		case fieldKeyValueKey:
			kv.Key = view(v)
		case fieldKeyValueValue:
			viewAnyValue(v, &kv.Value, pd+1)
		}
	}
}

// viewAnyValue reads an AnyValue that Decode checked; arrays and kvlists
// stay in wire form.
func viewAnyValue(b []byte, val *Value, pd int) {
	for len(b) > 0 {
		num, _, v, n, err := next(b)
		if err != nil {
			return
		}
		field := b[:n]
		b = b[n:]
		switch num {
		case fieldAnyValueString:
			val.typ, val.str = ValueTypeStr, view(v)
		case fieldAnyValueBytes:
			val.typ, val.str = ValueTypeBytes, view(v)
		case fieldAnyValueBool, fieldAnyValueInt, fieldAnyValueStringStrindex:
			x, _ := tagged(field)
			val.num, val.str = x, ""
			switch num {
			case fieldAnyValueBool:
				val.typ = ValueTypeBool
			case fieldAnyValueInt:
				val.typ = ValueTypeInt
			default:
				val.typ = ValueTypeEmpty
			}
		case fieldAnyValueDouble:
			val.typ, val.num, val.str = ValueTypeDouble, fixed64(field), ""
		case fieldAnyValueArray:
			val.typ, val.num, val.str, val.depth = ValueTypeSlice, 0, view(v), int32(pd+1)
		case fieldAnyValueKVList:
			val.typ, val.num, val.str, val.depth = ValueTypeMap, 0, view(v), int32(pd+1)
		}
	}
}

// decodeAnyValue and decodeKeyValue re-read, without limits, a value that
// Decode already checked (for AsString of arrays and kvlists).
func decodeAnyValue(b []byte, v *Value, pd int) error {
	var d Decoder
	s := scanner{lim: Limits{MaxDepth: math.MaxInt32}}
	return d.anyValue(&s, b, "", 0, pd, v)
}

func decodeKeyValue(b []byte, kv *KeyValue, pd int) error {
	var d Decoder
	s := scanner{lim: Limits{MaxDepth: math.MaxInt32}}
	return d.keyValue(&s, b, 0, "", 0, pd, kv)
}
