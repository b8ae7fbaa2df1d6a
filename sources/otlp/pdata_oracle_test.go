package otlp

// The conversion that the receivers ran on pdata before the wire decoder:
// kept as the oracle of the differential tests (differential_test.go),
// unchanged but for its names.

import (
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/sources/k8s"
)

// converter turns the spans of one request into observations. It holds the
// one Observation and the one label view that every span of the request
// reuses, so that conversion allocates nothing per span; converters are
// pooled across requests.
type pdataConverter struct {
	obs  engine.Observation
	view pdataSpanLabels
}

// newPDataConverter builds a converter whose label values are at most
// maxValue bytes long (see truncateValue), counting the cut ones in
// truncated (which may be nil).
func newPDataConverter(maxValue int, truncated prometheus.Counter) *pdataConverter {
	c := &pdataConverter{view: pdataSpanLabels{maxValue: maxValue, truncated: truncated}}
	c.obs.Source = engine.SourceSpans
	c.obs.Labels = &c.view
	return c
}

// convert hands every valid span of td to o and counts what it did.
func (c *pdataConverter) convert(td ptrace.Traces, o engine.Observer) (accepted, rejected int) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		c.view.resource = rs.Resource().Attributes()
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				if c.observe(spans.At(k), o) {
					accepted++
				} else {
					rejected++
				}
			}
		}
	}
	c.release()
	return accepted, rejected
}

// observe converts one span; false means the span was rejected.
func (c *pdataConverter) observe(span ptrace.Span, o engine.Observer) bool {
	start, end := span.StartTimestamp(), span.EndTimestamp()
	// A timestamp past MaxInt64 ns (year 2262) or a negative duration is
	// not a measurement; a zero start or end means the exporter never set
	// it (a missing start would make a span 55 years long, the slowest
	// exemplar of every window and a budget-burning outlier).
	if start == 0 || end == 0 || end < start || uint64(end) > math.MaxInt64 {
		return false
	}
	c.obs.End = end.AsTime()
	c.obs.Duration = time.Duration(end - start)
	c.obs.TraceID = [16]byte(span.TraceID())
	c.obs.SpanID = [8]byte(span.SpanID())
	c.obs.Failed = c.view.reset(span)
	o.Observe(&c.obs)
	return true
}

// release drops the references to the request's data, so that a pooled
// converter does not keep a decoded request alive.
func (c *pdataConverter) release() {
	c.view = pdataSpanLabels{maxValue: c.view.maxValue, truncated: c.view.truncated}
	c.obs.End = time.Time{}
}

// pdataSpanLabels is the engine.Labels view of one span: its name, kind and
// status, the Kubernetes request info derived from an HTTP SERVER span,
// then span attributes, then resource attributes, in that order of
// precedence.
//
// Every string it returns is immutable and stays valid after Observe
// returns (attribute strings belong to the decoded request, which is not
// reused, and converted numbers come from constant tables or fresh
// allocations), so the engine may keep them, e.g. as group keys.
type pdataSpanLabels struct {
	span     ptrace.Span
	attrs    pcommon.Map
	resource pcommon.Map

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
}

// reset points the view at span, scans its attributes once for what
// conversion needs, and reports whether the span stands for a failed
// request.
func (v *pdataSpanLabels) reset(span ptrace.Span) (failed bool) {
	v.span = span
	v.attrs = span.Attributes()
	v.kind = span.Kind()
	v.method, v.methodOld, v.urlPath, v.urlQuery, v.target, v.contentType = "", "", "", "", "", ""
	v.infoState = infoUnknown

	httpStatus, grpcStatus := int64(0), int64(0)
	for k, val := range v.attrs.All() {
		switch k {
		case "http.request.method":
			v.method = val.Str()
		case "http.method":
			v.methodOld = val.Str()
		case "url.path":
			v.urlPath = val.Str()
		case "url.query":
			v.urlQuery = val.Str()
		case "http.target":
			v.target = val.Str()
		case "http.request.header.content-type", "http.request.header.content_type":
			v.contentType = pdataFirstStr(val)
		case "http.response.status_code", "http.status_code":
			if n, ok := pdataIntValue(val); ok {
				httpStatus = n
			}
		case "rpc.grpc.status_code":
			if n, ok := pdataIntValue(val); ok {
				grpcStatus = n
			}
		}
	}
	if span.Status().Code() == ptrace.StatusCodeError || httpStatus >= 500 {
		return true
	}
	return grpcStatus != 0 && (v.kind == ptrace.SpanKindServer || v.kind == ptrace.SpanKindClient)
}

// Get implements engine.Labels. A value longer than the attribute value
// limit comes truncated, with TruncationMarker at its end: label values
// become group keys and alert labels, which must stay small.
func (v *pdataSpanLabels) Get(name string) (string, bool) {
	s, ok := v.get(name)
	if len(s) > v.maxValue && v.maxValue > 0 {
		s, _ = truncateValue(s, v.maxValue)
		if v.truncated != nil {
			v.truncated.Inc()
		}
	}
	return s, ok
}

func (v *pdataSpanLabels) get(name string) (string, bool) {
	switch name {
	case labelSpanName:
		return v.span.Name(), true
	case labelSpanKind:
		return kindName(v.kind), true
	case labelStatusCode:
		return statusName(v.span.Status().Code()), true
	case "verb", "group", "version", "resource", "subresource", "scope", "namespace":
		if v.requestInfo() {
			return v.infoField(name), true
		}
	}
	if val, ok := v.attrs.Get(name); ok {
		return pdataValueString(val), true
	}
	if val, ok := v.resource.Get(name); ok {
		return pdataValueString(val), true
	}
	return "", false
}

// requestInfo derives the Kubernetes request info on first use, so spans
// whose rules never ask for it do not pay for it.
func (v *pdataSpanLabels) requestInfo() bool {
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
			v.info = k8s.Parse(method, path, query, v.contentType)
			v.infoState = infoPresent
		}
	}
	return v.infoState == infoPresent
}

func (v *pdataSpanLabels) infoField(name string) string {
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

// intValue reads an integer attribute that some exporters send as a string
// or a double.
func pdataIntValue(v pcommon.Value) (int64, bool) {
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return v.Int(), true
	case pcommon.ValueTypeDouble:
		return int64(v.Double()), true
	case pcommon.ValueTypeStr:
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
func pdataFirstStr(v pcommon.Value) string {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return v.Str()
	case pcommon.ValueTypeSlice:
		if s := v.Slice(); s.Len() > 0 && s.At(0).Type() == pcommon.ValueTypeStr {
			return s.At(0).Str()
		}
	}
	return ""
}

func pdataValueString(v pcommon.Value) string {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return v.Str()
	case pcommon.ValueTypeInt:
		if n := v.Int(); n >= 0 && n < int64(len(smallInts)) {
			return smallInts[n]
		}
		return strconv.FormatInt(v.Int(), 10)
	case pcommon.ValueTypeBool:
		if v.Bool() {
			return "true"
		}
		return "false"
	case pcommon.ValueTypeEmpty:
		return ""
	}
	return v.AsString()
}
