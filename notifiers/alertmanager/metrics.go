package alertmanager

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const alertmanagerLabel = "alertmanager"

// metrics mirrors prometheus_notifications_*, under sentinel's prefix.
type metrics struct {
	sent      *prometheus.CounterVec
	errors    *prometheus.CounterVec
	dropped   prometheus.Counter
	truncated prometheus.Counter
	latency   *prometheus.HistogramVec
	length    prometheus.GaugeFunc
	capacity  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, capacity int, queueLength func() int) (*metrics, error) {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_notifications_sent_total",
			Help: "Total number of alerts delivered to an Alertmanager.",
		}, []string{alertmanagerLabel}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_notifications_errors_total",
			Help: "Total number of alerts in requests to an Alertmanager that failed (a failed batch is retried and counted again).",
		}, []string{alertmanagerLabel}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sentinel_notifications_dropped_total",
			Help: "Total number of alerts dropped undelivered: the oldest of a full queue, or still queued at shutdown.",
		}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sentinel_notifications_alerts_truncated_total",
			Help: "Alerts over the size limit whose annotations were truncated before sending.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sentinel_notifications_latency_seconds",
			Help:    "Latency of requests sending alerts to an Alertmanager, failed ones included.",
			Buckets: prometheus.DefBuckets,
		}, []string{alertmanagerLabel}),
		length: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sentinel_notifications_queue_length",
			Help: "Number of alerts not yet delivered to the most backlogged Alertmanager.",
		}, func() float64 { return float64(queueLength()) }),
		capacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sentinel_notifications_queue_capacity",
			Help: "Capacity of the alert queue of each Alertmanager.",
		}),
	}
	m.capacity.Set(float64(capacity))
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.sent, m.errors, m.dropped, m.truncated, m.latency, m.length, m.capacity} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("alertmanager notifier: register metrics: %w", err)
		}
	}
	return m, nil
}
