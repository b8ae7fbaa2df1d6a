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

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	for name, s := range c.t.sources {
		if !utf8.ValidString(name) {
			continue // not a label value (it would fail the scrape); its SentinelNoData still works
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.lastSeen.Load())/1e9, name)
		ch <- prometheus.MustNewConstMetric(c.spans, prometheus.CounterValue, float64(s.spans.Load()), name)
	}
}
