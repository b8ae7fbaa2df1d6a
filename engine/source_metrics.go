package engine

import "github.com/prometheus/client_golang/prometheus"

// sourceCollector exports each tracked span source's last-seen time, so
// that Prometheus can alert on a silent service.name as SentinelNoData
// does. Its series are bounded by the tracker's cap on sources.
type sourceCollector struct {
	t    *sourceTracker
	desc *prometheus.Desc
}

func registerSourceCollector(reg prometheus.Registerer, e *Engine) {
	if reg == nil {
		return
	}
	reg.MustRegister(sourceCollector{t: e.sources, desc: prometheus.NewDesc(
		"sentinel_source_last_seen_timestamp_seconds",
		"When spans of this service.name were last received (to the evaluation interval), for the sources SentinelNoData tracks.",
		[]string{"service_name"}, nil)})
}

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	for name, s := range c.t.sources {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.lastSeen.Load())/1e9, name)
	}
}
