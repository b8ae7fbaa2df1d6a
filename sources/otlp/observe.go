package otlp

import (
	"math"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/sources/otlp/otlpwire"
)

// ObserveTraces turns every span of td into an observation for o; it is the
// receivers' own conversion (td goes through the wire decoder in protobuf
// form, without limits), exported for the rule-test runner.
func ObserveTraces(td ptrace.Traces, o engine.Observer) (accepted, rejected int) {
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return 0, td.SpanCount()
	}
	c := newConverter(DefaultLimits().MaxAttributeValueBytes, nil, nil)
	if _, err := c.dec.Decode(b, otlpwire.Limits{MaxDepth: math.MaxInt32}); err != nil {
		return 0, td.SpanCount()
	}
	return c.convert(o, time.Now())
}
