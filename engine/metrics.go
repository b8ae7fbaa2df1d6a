package engine

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the engine's own. Hot-path counters are plain atomics read
// by CounterFuncs, so that Observe pays one atomic add, not a label lookup.
type metrics struct {
	observations [2]atomic.Uint64 // by Source
	matched      atomic.Uint64
	late         atomic.Uint64
	truncated    atomic.Uint64
	// explanations (explain.go, critical.go)
	explainTruncated atomic.Uint64
	explainEvicted   atomic.Uint64
	pinRefused       atomic.Uint64

	overflow    *prometheus.CounterVec
	templateErr *prometheus.CounterVec
	muted       prometheus.Counter
	evaluations *prometheus.CounterVec
	evalSeconds *prometheus.HistogramVec
	lastEval    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, e *Engine) *metrics {
	m := &metrics{}
	f := promauto.With(reg)
	for s, name := range []string{"spans", "metrics"} {
		counter := &m.observations[s]
		f.NewCounterFunc(prometheus.CounterOpts{
			Name:        "sentinel_observations_total",
			Help:        "Observations (spans, or histogram bucket counts) offered to the engine.",
			ConstLabels: prometheus.Labels{"source": name},
		}, func() float64 { return float64(counter.Load()) })
	}
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "sentinel_observations_matched_total",
		Help: "Observations added to a rule's window (one per matching rule).",
	}, func() float64 { return float64(m.matched.Load()) })
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "sentinel_observations_late_total",
		Help: "Observations dropped because they ended before anything a rule's window still holds.",
	}, func() float64 { return float64(m.late.Load()) })
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "sentinel_rule_label_values_truncated_total",
		Help: "group_by values cut to the label value limit (--rules.max-label-value-bytes) before they became a group key.",
	}, func() float64 { return float64(m.truncated.Load()) })
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "sentinel_explain_values_truncated_total",
		Help: "Attribute values cut to " + strconv.Itoa(ExplainValueBytes) + " bytes before slow_requests_by counted them.",
	}, func() float64 { return float64(m.explainTruncated.Load()) })
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "sentinel_explain_values_evicted_total",
		Help: "Attribute values that took the place of a less frequent one in a full slow_requests_by sketch.",
	}, func() float64 { return float64(m.explainEvicted.Load()) })
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "sentinel_exemplar_pins_refused_total",
		Help: "Exemplar traces of pending or firing alerts the trace buffer refused to pin (full).",
	}, func() float64 { return float64(m.pinRefused.Load()) })
	m.overflow = f.NewCounterVec(prometheus.CounterOpts{
		Name: "sentinel_rule_groups_overflow_total",
		Help: "Observations dropped because their rule already tracks its maximum number of groups.",
	}, []string{"rule_group", "rule"})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sentinel_nodata_sources",
		Help: "Span sources (service.name values) whose last-seen time is tracked for SentinelNoData.",
	}, func() float64 { return float64(e.sources.tracked()) })
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "sentinel_nodata_sources_overflow_total",
		Help: "Spans whose service.name was not tracked for SentinelNoData because the tracker was full.",
	}, func() float64 { return float64(e.sources.overflow.Load()) })
	m.templateErr = f.NewCounterVec(prometheus.CounterOpts{
		Name: "sentinel_rule_template_errors_total",
		Help: "Annotation or trace_url_template expansions that failed at evaluation.",
	}, []string{"rule_group", "rule"})
	m.muted = f.NewCounter(prometheus.CounterOpts{
		Name: "sentinel_alerts_muted_total",
		Help: "Alert notifications held back because a maintenance window (mute) was active.",
	})
	m.evaluations = f.NewCounterVec(prometheus.CounterOpts{
		Name: "sentinel_rule_evaluations_total",
		Help: "Rule group evaluations.",
	}, []string{"rule_group"})
	m.evalSeconds = f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sentinel_rule_group_evaluation_duration_seconds",
		Help:    "How long a rule group evaluation took.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	}, []string{"rule_group"})
	m.lastEval = f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sentinel_rule_group_last_evaluation_timestamp_seconds",
		Help: "When a rule group was last evaluated.",
	}, []string{"rule_group"})
	for _, st := range []AlertState{StatePending, StateFiring} {
		f.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "sentinel_alerts",
			Help:        "Alerts by state.",
			ConstLabels: prometheus.Labels{"state": st.String()},
		}, func() float64 { return float64(e.countAlerts(st)) })
	}
	return m
}

func (m *metrics) evaluated(group string, took time.Duration, ts time.Time) {
	m.evaluations.WithLabelValues(group).Inc()
	m.evalSeconds.WithLabelValues(group).Observe(took.Seconds())
	m.lastEval.WithLabelValues(group).Set(float64(ts.UnixNano()) / 1e9)
}
