package otlp

import (
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/sources/k8s"
	"github.com/kube-sentinel/sentinel/sources/otlp/otlpwire"
	"github.com/kube-sentinel/sentinel/traces"
)

// Names that the span view answers before looking at attributes.
const (
	labelSpanName   = "span.name"
	labelSpanKind   = "span.kind"
	labelStatusCode = "status.code"
)

// Reasons for rejecting a decoded span (label of sentinel_spans_rejected_total).
const (
	reasonInvalidTime = "invalid_time" // end before start, or no end time
)

// converter decodes export requests with the wire decoder and turns their
// spans into observations, and into the trace buffer's spans. It holds the
// decoder, the one Observation and label view that every span of the
// request reuses, and the trace buffer's resource and attribute slices, so
// that conversion allocates nothing per span once their memory has grown;
// converters are pooled across requests.
type converter struct {
	dec  otlpwire.Decoder
	obs  engine.Observation
	view spanLabels

	buffer   *traces.Buffer // nil: no trace buffer
	res      traces.Resource
	resAttrs []traces.Attribute
	span     traces.Span
	kept     []traces.KeptKey // the span's attribute keys in the allowlist
	keptAll  []traces.KeptKey // the request's, span after span
	services []string         // the request's resources' service names
}

// newConverter builds a converter whose label values are at most
// maxValue bytes long (see truncateValue), counting the cut ones in
// truncated (which may be nil), and which hands every span to buffer
// (which may be nil).
func newConverter(maxValue int, truncated prometheus.Counter, buffer *traces.Buffer) *converter {
	c := &converter{view: spanLabels{maxValue: maxValue, truncated: truncated, infos: newRequestInfoCache()}, buffer: buffer}
	c.obs.Source = engine.SourceSpans
	c.obs.Labels = &c.view
	return c
}

// convert hands every valid span that the decoder decoded to o, and every
// span to the trace buffer, and counts what it did. received is when the
// request arrived.
//
// The spans go to o first, all of them, then to the buffer under one of
// its shards' locks: never to o while a shard is locked, for the engine
// pins exemplar traces (which locks every shard) while it holds a rule's
// lock, which Observe takes.
func (c *converter) convert(o engine.Observer, received time.Time) (accepted, rejected int) {
	c.keptAll, c.services = c.keptAll[:0], c.services[:0]
	sources, _ := o.(spanSources)
	c.obs.SourceCounted = sources != nil
	service, fromService := "", 0 // the current resource's service.name and its spans observed
	for i := range c.dec.Len() {
		sp, newResource := c.dec.Span(i)
		if newResource {
			if sources != nil {
				sources.SpansFrom(service, fromService)
			}
			c.view.resource = sp.Resource
			service, fromService = c.resourceService(sp.Resource), 0
			c.services = append(c.services, service)
		}
		lo := len(c.keptAll)
		c.keptAll = keptKeys(c.keptAll, sp.Attributes)
		c.kept = c.keptAll[lo:]
		if c.observe(sp, o) {
			accepted++
			fromService++
		} else {
			rejected++
		}
	}
	if sources != nil {
		sources.SpansFrom(service, fromService)
	}
	if c.buffer != nil {
		c.bufferAll(received)
	}
	c.release()
	return accepted, rejected
}

// bufferAll hands every span of the request to the trace buffer, through
// one writer (one shard, one lock), with the allowlist places and the
// services convert found.
func (c *converter) bufferAll(received time.Time) {
	w := c.buffer.Writer()
	defer w.Close()
	c.dec.Rewind()
	lo, res := 0, -1
	for i := range c.dec.Len() {
		sp, newResource := c.dec.Span(i)
		if newResource {
			res++
			c.setResource(c.services[res], sp.Resource)
		}
		c.kept = c.keptAll[lo : lo+len(sp.Attributes)]
		lo += len(sp.Attributes)
		c.buffered(&w, sp, received)
	}
}

// spanSources is what an observer that tracks span sources (the engine,
// for SentinelNoData per service.name) takes: how many spans a source
// sent, once per resource instead of a lookup per span.
type spanSources interface {
	SpansFrom(name string, n int)
}

// resourceService is the resource's service.name as a label value (cut
// to the attribute value limit, as every label value is).
func (c *converter) resourceService(r *otlpwire.Resource) string {
	v, ok := r.Get("service.name")
	if !ok {
		return ""
	}
	s := valueString(v)
	if len(s) > c.view.maxValue && c.view.maxValue > 0 {
		s, _ = truncateValue(s, c.view.maxValue)
		if c.view.truncated != nil {
			c.view.truncated.Inc()
		}
	}
	return s
}

// observe converts one span; false means the span was rejected.
func (c *converter) observe(span *otlpwire.Span, o engine.Observer) bool {
	start, end := span.Start, span.End
	// A timestamp past MaxInt64 ns (year 2262) or a negative duration is
	// not a measurement; a zero start or end means the exporter never set
	// it (a missing start would make a span 55 years long, the slowest
	// exemplar of every window and a budget-burning outlier).
	if start == 0 || end == 0 || end < start || end > math.MaxInt64 {
		return false
	}
	c.obs.End = time.Unix(0, int64(end)).UTC()
	c.obs.Duration = time.Duration(end - start)
	c.obs.TraceID = span.TraceID
	c.obs.SpanID = span.SpanID
	c.obs.Failed = c.view.reset(span, c.kept)
	o.Observe(&c.obs)
	return true
}

// setResource points the trace buffer's resource at r: its service and
// the attributes the buffer keeps.
func (c *converter) setResource(service string, r *otlpwire.Resource) {
	c.resAttrs = c.resAttrs[:0]
	for i := range r.Attributes {
		kv := &r.Attributes[i]
		if k := traces.Kept(kv.Key); k != 0 {
			c.resAttrs = append(c.resAttrs, traces.Attribute{Key: kv.Key, Value: valueString(kv.Value), Kept: k})
		}
	}
	c.res.Set(service, c.resAttrs)
}

// bufferAttrs encodes the attributes of kvs that the buffer keeps (kept
// are their keys' places in its allowlist), integers as such (the buffer
// formats them), other values as strings.
func bufferAttrs(a *traces.Attributes, kvs []otlpwire.KeyValue, kept []traces.KeptKey) {
	for i := range kvs {
		kv := &kvs[i]
		k := kept[i]
		if k == 0 {
			continue
		}
		if kv.Value.Type() == otlpwire.ValueTypeInt {
			a.Int(k, kv.Value.Int())
		} else {
			a.String(k, valueString(kv.Value))
		}
	}
}

// buffered hands one span to the trace buffer through w, which copies
// what it keeps.
func (c *converter) buffered(w *traces.Writer, sp *otlpwire.Span, received time.Time) {
	// Field by field: Service and Attributes stay empty (the buffer
	// takes them from the Resource and the encoded attributes).
	c.span.TraceID, c.span.SpanID, c.span.ParentSpanID = sp.TraceID, sp.SpanID, sp.ParentSpanID
	c.span.Name, c.span.Kind, c.span.Status = sp.Name, traces.Kind(sp.Kind), traces.Status(sp.StatusCode)
	c.span.Start, c.span.End = int64(sp.Start), int64(sp.End)
	if sp.Kind < 0 || sp.Kind > int32(traces.KindConsumer) {
		c.span.Kind = traces.KindUnspecified
	}
	if sp.StatusCode < 0 || sp.StatusCode > int32(traces.StatusError) {
		c.span.Status = traces.StatusUnset
	}
	if sp.Start > math.MaxInt64 || sp.End > math.MaxInt64 {
		c.span.Start, c.span.End = 0, 0 // refused and counted by the buffer
	}
	bufferAttrs(w.Begin(&c.res, &c.span, received), sp.Attributes, c.kept)
	w.Commit()
}

// release drops the references to the request's data, so that a pooled
// converter does not keep a request's bytes alive.
func (c *converter) release() {
	c.dec.Reset()
	c.view = spanLabels{maxValue: c.view.maxValue, truncated: c.view.truncated, infos: c.view.infos}
	c.obs.End = time.Time{}
	clear(c.resAttrs)
	c.res.Set("", nil)
	c.span = traces.Span{}
}

type infoState uint8

const (
	infoUnknown infoState = iota // not computed yet for this span
	infoAbsent                   // not a SERVER span with an HTTP method and path
	infoPresent
)

// spanLabels is the engine.Labels view of one span: its name, kind and
// status, the Kubernetes request info derived from an HTTP SERVER span,
// then span attributes, then resource attributes, in that order of
// precedence.
//
// The strings it returns are views into the request's bytes (or constant
// tables, or fresh allocations for converted numbers and truncated
// values): they are valid until Observe returns, and the engine copies
// what it keeps (see engine.Observation).
type spanLabels struct {
	span     *otlpwire.Span
	resource *otlpwire.Resource

	// HTTP attributes picked out of the span attributes in one pass by
	// reset, in both the old and the new semantic conventions.
	method, methodOld string // http.request.method, http.method
	urlPath, urlQuery string // url.path, url.query
	target            string // http.target (path and query)
	contentType       string // http.request.header.content-type
	kind              ptrace.SpanKind
	info              k8s.RequestInfo
	infoState         infoState

	maxValue  int                // label values longer than this are truncated
	truncated prometheus.Counter // may be nil
	infos     *requestInfoCache  // nil: every span's path is parsed
}

// keptKeys appends the allowlist place of each key of kvs (zero when the
// trace buffer does not keep it): one lookup per attribute that both the
// span view (whose keys are all allowlisted) and the buffer use.
func keptKeys(dst []traces.KeptKey, kvs []otlpwire.KeyValue) []traces.KeptKey {
	for i := range kvs {
		dst = append(dst, traces.Kept(kvs[i].Key))
	}
	return dst
}

// httpAttr is what an attribute is to the span view.
type httpAttr uint8

const (
	attrOther httpAttr = iota // most attributes
	attrRequestMethod
	attrMethod
	attrURLPath
	attrURLQuery
	attrTarget
	attrContentType
	attrStatus
	attrGRPCStatus
)

// httpAttrs maps an allowlist place (as keptKeys returns it) to what the
// span view reads from it: an array indexed by the place, so that
// reset's switch is a jump, not a row of comparisons.
var httpAttrs = func() (t [256]httpAttr) {
	for key, a := range map[string]httpAttr{
		"http.request.method": attrRequestMethod, "http.method": attrMethod,
		"url.path": attrURLPath, "url.query": attrURLQuery, "http.target": attrTarget,
		"http.request.header.content-type": attrContentType, "http.request.header.content_type": attrContentType,
		"http.response.status_code": attrStatus, "http.status_code": attrStatus,
		"rpc.grpc.status_code": attrGRPCStatus,
	} {
		k := traces.Kept(key)
		if k == 0 {
			panic("the span view reads an attribute the trace buffer does not keep: " + key)
		}
		t[k] = a
	}
	return t
}()

// reset points the view at span, scans its attributes once for what
// conversion needs (kept are their keys' places in the allowlist, as
// keptKeys returns them), and reports whether the span stands for a
// failed request.
func (v *spanLabels) reset(span *otlpwire.Span, kept []traces.KeptKey) (failed bool) {
	v.span = span
	v.kind = ptrace.SpanKind(span.Kind)
	v.method, v.methodOld, v.urlPath, v.urlQuery, v.target, v.contentType = "", "", "", "", "", ""
	v.infoState = infoUnknown

	httpStatus, grpcStatus := int64(0), int64(0)
	for i, k := range kept[:len(span.Attributes)] {
		if k == 0 {
			continue // most attributes
		}
		val := span.Attributes[i].Value
		switch httpAttrs[k] {
		case attrRequestMethod:
			v.method = val.Str()
		case attrMethod:
			v.methodOld = val.Str()
		case attrURLPath:
			v.urlPath = val.Str()
		case attrURLQuery:
			v.urlQuery = val.Str()
		case attrTarget:
			v.target = val.Str()
		case attrContentType:
			v.contentType = firstStr(val)
		case attrStatus:
			if n, ok := intValue(val); ok {
				httpStatus = n
			}
		case attrGRPCStatus:
			if n, ok := intValue(val); ok {
				grpcStatus = n
			}
		}
	}
	if ptrace.StatusCode(span.StatusCode) == ptrace.StatusCodeError || httpStatus >= 500 {
		return true
	}
	return grpcStatus != 0 && (v.kind == ptrace.SpanKindServer || v.kind == ptrace.SpanKindClient)
}

// Get implements engine.Labels. A value longer than the attribute value
// limit comes truncated, with TruncationMarker at its end: label values
// become group keys and alert labels, which must stay small.
func (v *spanLabels) Get(name string) (string, bool) {
	s, ok := v.get(name)
	if len(s) > v.maxValue && v.maxValue > 0 {
		s, _ = truncateValue(s, v.maxValue)
		if v.truncated != nil {
			v.truncated.Inc()
		}
	}
	return s, ok
}

func (v *spanLabels) get(name string) (string, bool) {
	switch name {
	case labelSpanName:
		return v.span.Name, true
	case labelSpanKind:
		return kindName(v.kind), true
	case labelStatusCode:
		return statusName(ptrace.StatusCode(v.span.StatusCode)), true
	case "verb", "group", "version", "resource", "subresource", "scope", "namespace":
		if v.requestInfo() {
			return v.infoField(name), true
		}
	}
	if val, ok := v.span.Get(name); ok {
		return valueString(val), true
	}
	if val, ok := v.resource.Get(name); ok {
		return valueString(val), true
	}
	return "", false
}

// requestInfo derives the Kubernetes request info on first use, so spans
// whose rules never ask for it do not pay for it.
func (v *spanLabels) requestInfo() bool {
	if v.infoState == infoUnknown {
		v.infoState = infoAbsent
		method := v.method
		if method == "" {
			method = v.methodOld
		}
		path, query := v.urlPath, v.urlQuery
		if path == "" {
			path, query = v.target, "" // k8s.Parse splits an http.target's query off itself
		}
		if v.kind == ptrace.SpanKindServer && method != "" && path != "" {
			v.info = v.infos.parse(method, path, query, v.contentType)
			v.infoState = infoPresent
		}
	}
	return v.infoState == infoPresent
}

func (v *spanLabels) infoField(name string) string {
	switch name {
	case "verb":
		return v.info.Verb
	case "group":
		return v.info.Group
	case "version":
		return v.info.Version
	case "resource":
		return v.info.Resource
	case "subresource":
		return v.info.Subresource
	case "scope":
		return v.info.Scope
	case "namespace":
		return v.info.Namespace
	}
	return ""
}

func kindName(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindInternal:
		return "internal"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	}
	return "unspecified"
}

func statusName(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return "ok"
	case ptrace.StatusCodeError:
		return "error"
	}
	return "unset"
}

// smallInts holds the decimal form of the integers that attributes carry
// most (HTTP and gRPC status codes, small counts), so converting them does
// not allocate.
var smallInts = func() (t [1024]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

// valueString gives an attribute value in string form. Strings, booleans
// and integers in [0, 1024) do not allocate; other numbers, bytes, arrays
// and maps do (they are rare in what rules select on).
func valueString(v otlpwire.Value) string {
	switch v.Type() {
	case otlpwire.ValueTypeStr:
		return v.Str()
	case otlpwire.ValueTypeInt:
		if n := v.Int(); n >= 0 && n < int64(len(smallInts)) {
			return smallInts[n]
		}
		return strconv.FormatInt(v.Int(), 10)
	case otlpwire.ValueTypeBool:
		if v.Bool() {
			return "true"
		}
		return "false"
	case otlpwire.ValueTypeEmpty:
		return ""
	}
	return v.AsString()
}

// intValue reads an integer attribute that some exporters send as a string
// or a double.
func intValue(v otlpwire.Value) (int64, bool) {
	switch v.Type() {
	case otlpwire.ValueTypeInt:
		return v.Int(), true
	case otlpwire.ValueTypeDouble:
		return int64(v.Double()), true
	case otlpwire.ValueTypeStr:
		s := v.Str()
		if s == "" || len(s) > 18 {
			return 0, false
		}
		var n int64
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int64(c-'0')
		}
		return n, true
	}
	return 0, false
}

// firstStr reads a header attribute: a string array in the current
// semantic conventions, a plain string in older exporters.
func firstStr(v otlpwire.Value) string {
	switch v.Type() {
	case otlpwire.ValueTypeStr:
		return v.Str()
	case otlpwire.ValueTypeSlice:
		s, _ := v.FirstStr()
		return s
	}
	return ""
}
