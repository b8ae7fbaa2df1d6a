package otlp

import (
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kube-sentinel/sentinel/engine"
)

// ObserveTraces turns every span of td into an observation for o; it is the receivers' own conversion, exported for the rule-test runner.
func ObserveTraces(td ptrace.Traces, o engine.Observer) (accepted, rejected int) {
	c := newConverter(DefaultLimits().MaxAttributeValueBytes, nil)
	defer c.release()
	return c.convert(td, o)
}
