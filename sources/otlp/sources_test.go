package otlp

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kube-sentinel/sentinel/engine"
)

// TestSpansCountedPerSource: the receiver tells the engine how many spans
// each resource's service.name sent, once per resource, and only the spans
// it observed: a span with no end time is not news from its source, and a
// span attribute named service.name does not make its span another source.
func TestSpansCountedPerSource(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := engine.New(engine.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newTestReceiver(t, Options{Observer: e})

	td := ptrace.NewTraces()
	add := func(service string, spans int, bad bool) {
		rs := td.ResourceSpans().AppendEmpty()
		if service != "" {
			rs.Resource().Attributes().PutStr("service.name", service)
		}
		ss := rs.ScopeSpans().AppendEmpty()
		for i := range spans {
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID(pcommon.TraceID{1, byte(i + 1)})
			sp.SetSpanID(pcommon.SpanID{byte(i + 1)})
			sp.SetName("GET")
			sp.SetStartTimestamp(1_700_000_000_000_000_000)
			sp.SetEndTimestamp(1_700_000_000_100_000_000)
			sp.Attributes().PutStr("service.name", "not-a-source")
			if bad && i == 0 {
				sp.SetEndTimestamp(0)
			}
		}
	}
	add("apiserver", 3, false)
	add("etcd", 2, true) // one span without an end: rejected, not counted
	add("", 4, false)    // no service.name: not a source
	add("apiserver", 1, false)

	if w := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", marshalTraces(t, td, false)); w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	want := `# HELP sentinel_source_spans_total Spans received per span source (service.name), of the sources SentinelNoData tracks (see sentinel_nodata_sources_overflow_total for the rest).
# TYPE sentinel_source_spans_total counter
sentinel_source_spans_total{service_name="apiserver"} 4
sentinel_source_spans_total{service_name="etcd"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sentinel_source_spans_total"); err != nil {
		t.Error(err)
	}
}
