package engine

import (
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// sourceCollector exports each tracked span source's last-seen time, so
// that Prometheus can alert on a silent service.name as SentinelNoData
// does, and its spans (a dashboard's spans by service, at the cost of one
// atomic add per span). Its series are bounded by the tracker's cap on
// sources.
type sourceCollector struct {
	t     *sourceTracker
	desc  *prometheus.Desc
	spans *prometheus.Desc
}

func registerSourceCollector(reg prometheus.Registerer, e *Engine) {
	if reg == nil {
		return
	}
	reg.MustRegister(sourceCollector{t: e.sources, desc: prometheus.NewDesc(
		"sentinel_source_last_seen_timestamp_seconds",
		"When spans of this service.name were last received (to the evaluation interval), for the sources SentinelNoData tracks.",
		[]string{"service_name"}, nil),
		spans: prometheus.NewDesc("sentinel_source_spans_total",
			"Spans received per span source (service.name), of the sources SentinelNoData tracks (see sentinel_nodata_sources_overflow_total for the rest).",
			[]string{"service_name"}, nil)})
}

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.spans }

// Collect makes the metrics under the tracker's lock and sends them after
// releasing it: Gather drains ch in a goroutine that also reads gauge
// functions, which must not wait behind a writer queued on that lock.
func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	c.t.mu.RLock()
	out := make([]prometheus.Metric, 0, 2*len(c.t.sources))
	for name, s := range c.t.sources {
		if !utf8.ValidString(name) {
			continue // not a label value (it would fail the scrape); its SentinelNoData still works
		}
		out = append(out,
			prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.lastSeen.Load())/1e9, name),
			prometheus.MustNewConstMetric(c.spans, prometheus.CounterValue, float64(s.spans.Load()), name))
	}
	c.t.mu.RUnlock()
	for _, m := range out {
		ch <- m
	}
}
