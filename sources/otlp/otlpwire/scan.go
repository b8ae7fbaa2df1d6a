package otlpwire

import (
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// Limits bound what one request may hold. A zero field means no limit,
// except MaxDepth, where zero means DefaultMaxDepth.
type Limits struct {
	// MaxSpans bounds the spans of a request.
	MaxSpans int
	// MaxAttributes bounds every list of attributes: a resource's, a
	// scope's, a span's, an event's, a link's, and the entries of a kvlist
	// or array value.
	MaxAttributes int
	// MaxKeyBytes bounds an attribute key, nested ones included.
	MaxKeyBytes int
	// MaxDepth bounds the nesting of kvlist and array values: 1 allows an
	// array of scalars but no array inside it.
	MaxDepth int
	// MaxDecodedBytes bounds Stats.DecodedBytes: the scan stops as soon as
	// the estimate is over it.
	MaxDecodedBytes int64
}

// DefaultMaxDepth is what a zero Limits.MaxDepth means. It also keeps the
// scan's recursion shallow whatever the input.
const DefaultMaxDepth = 8

// Stats is what Scan counted.
type Stats struct {
	ResourceSpans, ScopeSpans, Spans int
	// Attributes counts key-value pairs at every level: resource, scope,
	// span, event, link and kvlist entries.
	Attributes int
	// Values counts the elements of array values.
	Values        int
	Events, Links int
	// DecodedBytes estimates, from above, what decoding the request with
	// pdata allocates, the request's bytes included.
	DecodedBytes int64
}

// What pdata (v1.7x) allocates per decoded message, measured with
// runtime.MemStats.TotalAlloc over 200,000 empty ones, slice growth
// included; strings and bytes add their length on top, which the
// request's own length bounds.
const (
	costResourceSpans = 176
	costScopeSpans    = 160
	costSpan          = 256
	costKeyValue      = 224
	costArrayValue    = 96
	costEvent         = 112
	costLink          = 128
)

// ErrMalformed is wrapped by the error Scan returns for bytes that are not
// a protobuf ExportTraceServiceRequest (pdata refuses them too).
var ErrMalformed = errors.New("malformed ExportTraceServiceRequest")

// LimitError says which limit a request is over.
type LimitError struct {
	// Reason is machine-readable: TOO_MANY_SPANS, TOO_MANY_ATTRIBUTES,
	// ATTRIBUTE_KEY_TOO_LONG, ATTRIBUTE_TOO_DEEP or REQUEST_TOO_COSTLY.
	Reason string
	Msg    string
}

func (e *LimitError) Error() string { return e.Msg }

// Reasons of LimitError.
const (
	ReasonTooManySpans      = "TOO_MANY_SPANS"
	ReasonTooManyAttributes = "TOO_MANY_ATTRIBUTES"
	ReasonKeyTooLong        = "ATTRIBUTE_KEY_TOO_LONG"
	ReasonTooDeep           = "ATTRIBUTE_TOO_DEEP"
	ReasonTooCostly         = "REQUEST_TOO_COSTLY"
)

// Scan walks an ExportTraceServiceRequest's wire bytes once, without
// allocating, and returns what it counted; the error is a *LimitError when
// the request is over lim, or wraps ErrMalformed. On an error the Stats
// are those counted so far.
func Scan(b []byte, lim Limits) (Stats, error) {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultMaxDepth
	}
	s := scanner{lim: lim}
	s.st.DecodedBytes = int64(len(b))
	err := s.request(b)
	return s.st, err
}

type scanner struct {
	lim Limits
	st  Stats
}

// cost adds n to the decoded estimate and checks it.
func (s *scanner) cost(n int64) error {
	s.st.DecodedBytes += n
	if s.lim.MaxDecodedBytes > 0 && s.st.DecodedBytes > s.lim.MaxDecodedBytes {
		return &LimitError{Reason: ReasonTooCostly,
			Msg: fmt.Sprintf("decoding the request would take more than %d bytes", s.lim.MaxDecodedBytes)}
	}
	return nil
}

// Field numbers, from opentelemetry/proto/trace/v1/trace.proto,
// common/v1/common.proto and resource/v1/resource.proto.
const (
	fieldRequestResourceSpans = 1

	fieldResourceSpansResource   = 1
	fieldResourceSpansScopeSpans = 2
	// instrumentation_library_spans, which pdata reads as scope_spans.
	fieldResourceSpansDeprecatedScopeSpans = 1000

	fieldResourceAttributes = 1

	fieldScopeSpansScope = 1
	fieldScopeSpansSpans = 2

	fieldScopeAttributes = 3

	fieldSpanAttributes = 9
	fieldSpanEvents     = 11
	fieldSpanLinks      = 13

	fieldEventAttributes = 3
	fieldLinkAttributes  = 4

	fieldKeyValueKey   = 1
	fieldKeyValueValue = 2

	fieldAnyValueArray  = 5
	fieldAnyValueKVList = 6

	fieldArrayValues  = 1
	fieldKVListValues = 1
)

// next reads one field of b. For a length-delimited field, payload is its
// content; n is the bytes the field took. It accepts what pdata's decoder
// accepts, down to its leniency with groups.
func next(b []byte) (num protowire.Number, typ protowire.Type, payload []byte, n int, err error) {
	// Fast path: a one-byte tag of a length-delimited field whose length
	// takes one byte, what most OTLP fields are.
	// The same for a one-byte tag of a fixed64 field (span start and end
	// times) and of a varint field whose value takes one byte (kinds,
	// status codes, small integers).
	if len(b) >= 2 && b[0] < 0x80 && b[0]>>3 != 0 {
		switch protowire.Type(b[0] & 7) {
		case protowire.BytesType:
			if end := 2 + int(b[1]); b[1] < 0x80 && end <= len(b) {
				return protowire.Number(b[0] >> 3), protowire.BytesType, b[2:end], end, nil
			}
		case protowire.Fixed64Type:
			if len(b) >= 9 {
				return protowire.Number(b[0] >> 3), protowire.Fixed64Type, nil, 9, nil
			}
		case protowire.VarintType:
			if b[1] < 0x80 {
				return protowire.Number(b[0] >> 3), protowire.VarintType, nil, 2, nil
			}
		}
	}
	tag, tn, err := varint(b)
	if err != nil {
		return 0, 0, nil, 0, fmt.Errorf("%w: tag: %v", ErrMalformed, err)
	}
	if int32(tag>>3) <= 0 {
		return 0, 0, nil, 0, fmt.Errorf("%w: illegal field number in tag %d", ErrMalformed, tag)
	}
	num, typ = protowire.Number(int32(tag>>3)), protowire.Type(tag&7)
	if typ == protowire.BytesType {
		v, vn, err := lengthPrefixed(b[tn:])
		if err != nil {
			return 0, 0, nil, 0, fmt.Errorf("%w: field %d: %v", ErrMalformed, num, err)
		}
		return num, typ, v, tn + vn, nil
	}
	vn, err := skip(b[tn:], typ)
	if err != nil {
		return 0, 0, nil, 0, fmt.Errorf("%w: field %d: %v", ErrMalformed, num, err)
	}
	return num, typ, nil, tn + vn, nil
}

var (
	errOverflow      = errors.New("variable length integer overflow")
	errInvalidLength = errors.New("negative length")
)

// varint reads a varint as pdata does: at most ten bytes, the bits past
// 64 ignored (protowire refuses those).
func varint(b []byte) (v uint64, n int, err error) {
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, 0, errOverflow
		}
		if n >= len(b) {
			return 0, 0, io.ErrUnexpectedEOF
		}
		c := b[n]
		n++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, n, nil
		}
	}
}

// lengthPrefixed reads a length-delimited value as pdata does.
func lengthPrefixed(b []byte) (v []byte, n int, err error) {
	length, n, err := varint(b)
	if err != nil {
		return nil, 0, err
	}
	if int(length) < 0 {
		return nil, 0, errInvalidLength
	}
	end := n + int(length)
	if end < n || end > len(b) {
		return nil, 0, io.ErrUnexpectedEOF
	}
	return b[n:end], end, nil
}

// skip passes over a value that is not length-delimited, as pdata's
// ConsumeUnknown does: a group ends at its end tag, or at the first
// scalar inside it.
func skip(b []byte, typ protowire.Type) (int, error) {
	pos, depth := 0, 0
	for pos < len(b) {
		switch typ {
		case protowire.VarintType:
			_, n, err := varint(b[pos:])
			if err != nil {
				return 0, err
			}
			return pos + n, nil
		case protowire.Fixed64Type:
			if len(b)-pos < 8 {
				return 0, io.ErrUnexpectedEOF
			}
			return pos + 8, nil
		case protowire.Fixed32Type:
			if len(b)-pos < 4 {
				return 0, io.ErrUnexpectedEOF
			}
			return pos + 4, nil
		case protowire.BytesType:
			_, n, err := lengthPrefixed(b[pos:])
			if err != nil {
				return 0, err
			}
			return pos + n, nil
		case protowire.StartGroupType:
			depth++
		case protowire.EndGroupType:
			if depth == 0 {
				return 0, errors.New("unexpected end of group")
			}
			depth--
		default:
			return 0, fmt.Errorf("illegal wire type %d", typ)
		}
		if depth == 0 {
			return pos, nil
		}
		tag, n, err := varint(b[pos:])
		if err != nil {
			return 0, err
		}
		if int32(tag>>3) <= 0 {
			return 0, fmt.Errorf("illegal field number in tag %d", tag)
		}
		typ = protowire.Type(tag & 7)
		pos += n
	}
	return 0, io.ErrUnexpectedEOF
}

// wrongType is the error for a known message field that is not
// length-delimited, which pdata refuses as well.
func wrongType(msg string, num protowire.Number, typ protowire.Type) error {
	return fmt.Errorf("%w: %s field %d has wire type %d, want %d", ErrMalformed, msg, num, typ, protowire.BytesType)
}

func (s *scanner) request(b []byte) error {
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
			if err := s.resourceSpans(v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *scanner) resourceSpans(b []byte) error {
	s.st.ResourceSpans++
	if err := s.cost(costResourceSpans); err != nil {
		return err
	}
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case fieldResourceSpansResource:
			if typ != protowire.BytesType {
				return wrongType("ResourceSpans", num, typ)
			}
			if err := s.attributeList(v, fieldResourceAttributes, "resource"); err != nil {
				return err
			}
		case fieldResourceSpansScopeSpans, fieldResourceSpansDeprecatedScopeSpans:
			if typ != protowire.BytesType {
				return wrongType("ResourceSpans", num, typ)
			}
			if err := s.scopeSpans(v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *scanner) scopeSpans(b []byte) error {
	s.st.ScopeSpans++
	if err := s.cost(costScopeSpans); err != nil {
		return err
	}
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case fieldScopeSpansScope:
			if typ != protowire.BytesType {
				return wrongType("ScopeSpans", num, typ)
			}
			if err := s.attributeList(v, fieldScopeAttributes, "scope"); err != nil {
				return err
			}
		case fieldScopeSpansSpans:
			if typ != protowire.BytesType {
				return wrongType("ScopeSpans", num, typ)
			}
			s.st.Spans++
			if s.lim.MaxSpans > 0 && s.st.Spans > s.lim.MaxSpans {
				return &LimitError{Reason: ReasonTooManySpans,
					Msg: fmt.Sprintf("more than %d spans in one request", s.lim.MaxSpans)}
			}
			if err := s.span(v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *scanner) span(b []byte) error {
	if err := s.cost(costSpan); err != nil {
		return err
	}
	attrs := 0
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case fieldSpanAttributes:
			if typ != protowire.BytesType {
				return wrongType("Span", num, typ)
			}
			attrs++
			if err := s.attribute(v, attrs, "span", 0); err != nil {
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
			if err := s.attributeList(v, fieldEventAttributes, "span event"); err != nil {
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
			if err := s.attributeList(v, fieldLinkAttributes, "span link"); err != nil {
				return err
			}
		}
	}
	return nil
}

// attributeList scans a message (resource, scope, event, link) whose
// field attrField is its attributes, and only that field.
func (s *scanner) attributeList(b []byte, attrField protowire.Number, owner string) error {
	attrs := 0
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num != attrField {
			continue
		}
		if typ != protowire.BytesType {
			return wrongType(owner, num, typ)
		}
		attrs++
		if err := s.attribute(v, attrs, owner, 0); err != nil {
			return err
		}
	}
	return nil
}

// attribute scans a KeyValue, the nth of its list, at a nesting depth.
func (s *scanner) attribute(b []byte, nth int, owner string, depth int) error {
	s.st.Attributes++
	if err := s.cost(costKeyValue); err != nil {
		return err
	}
	if s.lim.MaxAttributes > 0 && nth > s.lim.MaxAttributes {
		return &LimitError{Reason: ReasonTooManyAttributes,
			Msg: fmt.Sprintf("more than %d attributes in a %s's list", s.lim.MaxAttributes, owner)}
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
		case fieldKeyValueValue:
			if typ != protowire.BytesType {
				return wrongType("KeyValue", num, typ)
			}
			if err := s.anyValue(v, owner, depth); err != nil {
				return err
			}
		}
	}
	return nil
}

// anyValue scans an AnyValue; only arrays and kvlists hold anything to count.
func (s *scanner) anyValue(b []byte, owner string, depth int) error {
	for len(b) > 0 {
		num, typ, v, n, err := next(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num != fieldAnyValueArray && num != fieldAnyValueKVList {
			continue
		}
		if typ != protowire.BytesType {
			return wrongType("AnyValue", num, typ)
		}
		if depth+1 > s.lim.MaxDepth {
			return &LimitError{Reason: ReasonTooDeep,
				Msg: fmt.Sprintf("a %s attribute nests arrays or kvlists more than %d deep", owner, s.lim.MaxDepth)}
		}
		if num == fieldAnyValueArray {
			err = s.array(v, owner, depth+1)
		} else {
			err = s.kvlist(v, owner, depth+1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *scanner) array(b []byte, owner string, depth int) error {
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
		if err := s.anyValue(v, owner, depth); err != nil {
			return err
		}
	}
	return nil
}

func (s *scanner) kvlist(b []byte, owner string, depth int) error {
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
		if err := s.attribute(v, entries, owner, depth); err != nil {
			return err
		}
	}
	return nil
}
