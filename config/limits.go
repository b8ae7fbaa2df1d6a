package config

import (
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kube-sentinel/sentinel/internal/yamlpos"
)

// OTLPLimits bound what an OTLP export request may cost: otlp.limits, and
// the connection bounds of otlp.http and otlp.grpc. A zero field means the
// receiver's default (docs/limits.md lists them).
type OTLPLimits struct {
	MaxSpansPerRequest     int
	MaxAttributesPerSpan   int
	MaxAttributeKeyBytes   int
	MaxAttributeValueBytes int
	MaxAttributeDepth      int
	MemoryBudgetBytes      int64
	RefusingAfter          time.Duration
	MaxQueueWait           time.Duration
	MaxQueuedRequests      int

	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration // otlp.http
	MaxHeaderBytes                              int           // otlp.http
	MaxConcurrentStreams                        int           // otlp.grpc
	MaxHTTPConnections, MaxGRPCConnections      int           // otlp.http, otlp.grpc max_connections
}

func parseOTLPLimits(d *yamlpos.Decoder, n *yaml.Node, grpc, http map[string]yamlpos.Field) OTLPLimits {
	var l OTLPLimits
	m := d.Mapping(n, "otlp.limits", "max_spans_per_request", "max_attributes_per_span", "max_attribute_key_bytes",
		"max_attribute_value_bytes", "max_attribute_depth", "memory_budget_bytes", "refusing_after", "max_queue_wait", "max_queued_requests")
	positive := func(f map[string]yamlpos.Field, name string) int64 {
		n := f[name].Value
		if n == nil {
			return 0
		}
		before := len(d.Errs)
		v := d.Int(n, name)
		if v <= 0 && len(d.Errs) == before {
			d.Errorf(n, "%s must be positive", name)
		}
		return v
	}
	duration := func(f map[string]yamlpos.Field, name string) time.Duration {
		n := f[name].Value
		if n == nil {
			return 0
		}
		before := len(d.Errs)
		v := d.Duration(n, name)
		if v <= 0 && len(d.Errs) == before {
			d.Errorf(n, "%s must be positive", name)
		}
		return v
	}
	l.MaxSpansPerRequest = int(positive(m, "max_spans_per_request"))
	l.MaxAttributesPerSpan = int(positive(m, "max_attributes_per_span"))
	l.MaxAttributeKeyBytes = int(positive(m, "max_attribute_key_bytes"))
	if v := m["max_attribute_value_bytes"].Value; v != nil {
		l.MaxAttributeValueBytes = int(positive(m, "max_attribute_value_bytes"))
		if l.MaxAttributeValueBytes > 0 && l.MaxAttributeValueBytes < MinAttributeValueBytes {
			d.Errorf(v, "max_attribute_value_bytes must be at least %d (room for the truncation marker)", MinAttributeValueBytes)
		}
	}
	l.MaxAttributeDepth = int(positive(m, "max_attribute_depth"))
	l.MemoryBudgetBytes = positive(m, "memory_budget_bytes")
	l.RefusingAfter = duration(m, "refusing_after")
	l.MaxQueueWait = duration(m, "max_queue_wait")
	l.MaxQueuedRequests = int(positive(m, "max_queued_requests"))
	l.ReadHeaderTimeout = duration(http, "read_header_timeout")
	l.ReadTimeout = duration(http, "read_timeout")
	l.IdleTimeout = duration(http, "idle_timeout")
	l.MaxHeaderBytes = int(positive(http, "max_header_bytes"))
	l.MaxConcurrentStreams = int(positive(grpc, "max_concurrent_streams"))
	l.MaxHTTPConnections = int(positive(http, "max_connections"))
	l.MaxGRPCConnections = int(positive(grpc, "max_connections"))
	return l
}

// MinAttributeValueBytes leaves room for some of a value besides the
// truncation marker.
const MinAttributeValueBytes = 32
