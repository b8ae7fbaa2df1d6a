package engine

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
)

// sliCollector exports every rule's last evaluation as gauges, one series
// per rule group (group_by values), so that Prometheus can record and
// Grafana can graph what sentinel judges. It reads what evaluation left
// behind: observing a span costs nothing more, and a series or rule that
// is gone is gone from /metrics at the next scrape. The number of series
// is bounded by the rules' group cap (--rules.max-groups-per-rule).
//
// It is an unchecked collector (Describe sends nothing): rules bring
// their own label names, which a fixed descriptor cannot know.
type sliCollector struct{ e *Engine }

func newSLICollector(e *Engine) *sliCollector { return &sliCollector{e: e} }

// Names of the SLI metrics.
const (
	sliQuantile  = "sentinel_rule_quantile_seconds"
	sliThreshold = "sentinel_rule_threshold_seconds"
	sliObs       = "sentinel_rule_observations"
	sliNoData    = "sentinel_rule_no_data"
	sliBudget    = "sentinel_slo_error_budget_remaining_ratio"
	sliBurnRate  = "sentinel_slo_burn_rate"
	sliObjective = "sentinel_slo_objective_ratio"
)

// Labels sentinel sets on SLI metrics itself. A group_by or rule label of
// the same name is exported as exported_<name>, as Prometheus does with a
// target's labels that collide with its own (honor_labels: false).
const (
	sliLabelGroup    = "rule_group"
	sliLabelRule     = "rule"
	sliLabelQuantile = "quantile"
	sliLabelWindow   = "window"
)

func (c *sliCollector) Describe(chan<- *prometheus.Desc) {}

func (c *sliCollector) Collect(ch chan<- prometheus.Metric) {
	rs := c.e.current.Load()
	for _, g := range rs.groups {
		for _, r := range g.rules {
			r.collectSLI(ch)
		}
	}
}

// sliDescs are a rule's descriptors, built once per rule definition.
type sliDescs struct {
	names                            []string // variable label names after rule_group, rule
	quantile, threshold, obs, noData *prometheus.Desc
	budget, burnRate, objective      *prometheus.Desc
	groupIdx                         []int // where each group_by label lands in names
	staticValues                     []string
	quantileValue                    string
}

func (r *ruleState) sliDescs() *sliDescs {
	if r.sli != nil {
		return r.sli
	}
	d := &sliDescs{}
	taken := map[string]bool{sliLabelGroup: true, sliLabelRule: true, sliLabelQuantile: true, sliLabelWindow: true}
	name := func(n string) string {
		for taken[n] {
			n = "exported_" + n
		}
		taken[n] = true
		return n
	}
	// group_by labels first: they tell series apart, so a rule label may
	// never hide one.
	for _, n := range r.groupNames {
		d.groupIdx = append(d.groupIdx, len(d.names))
		d.names = append(d.names, name(n))
	}
	static := make([]string, 0, len(r.def.Labels))
	for k := range r.def.Labels {
		static = append(static, k)
	}
	sort.Strings(static)
	for _, k := range static {
		if !model.LegacyValidation.IsValidLabelName(k) {
			continue
		}
		d.names = append(d.names, name(k))
		d.staticValues = append(d.staticValues, r.def.Labels[k])
	}
	base := append([]string{sliLabelGroup, sliLabelRule}, d.names...)
	withQ := append(append([]string{}, base...), sliLabelQuantile)
	if r.slo == nil {
		d.quantileValue = strconv.FormatFloat(r.def.Objective.Quantile, 'g', -1, 64)
		d.quantile = prometheus.NewDesc(sliQuantile, "The objective's quantile of the rule's window at the last evaluation, in seconds; absent while the window is empty.", withQ, nil)
		d.threshold = prometheus.NewDesc(sliThreshold, "The rule's latency objective: the quantile must stay at or below it (SLOs: objective.latency).", withQ, nil)
	} else {
		d.threshold = prometheus.NewDesc(sliThreshold, "The rule's latency objective: the quantile must stay at or below it (SLOs: objective.latency).", base, nil)
		d.budget = prometheus.NewDesc(sliBudget, "Share of the SLO's error budget left over its period at the last evaluation (1: untouched, 0: spent, negative: overspent).", base, nil)
		d.burnRate = prometheus.NewDesc(sliBurnRate, "How fast the SLO's error budget burns over a window at the last evaluation (1: spent exactly at the period's end).", append(append([]string{}, base...), sliLabelWindow), nil)
		d.objective = prometheus.NewDesc(sliObjective, "The SLO's target as a ratio (objective.target / 100).", base, nil)
	}
	d.obs = prometheus.NewDesc(sliObs, "Observations in the rule's window (SLOs: over the period) at the last evaluation.", base, nil)
	d.noData = prometheus.NewDesc(sliNoData, "1 while the series has too few observations to be judged (no_data), else 0.", base, nil)
	r.sli = d
	return d
}

// collectSLI sends the rule's SLI metrics to ch. They are made under the
// rule's lock and sent after it is released: Gather drains ch in a
// goroutine that also reads the sentinel_alerts gauge, which takes the
// same lock, so sending while holding it deadlocks as soon as ch (1000
// metrics) is full.
func (r *ruleState) collectSLI(ch chan<- prometheus.Metric) {
	for _, m := range r.sliMetrics() {
		ch <- m
	}
}

func (r *ruleState) sliMetrics() []prometheus.Metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []prometheus.Metric
	d := r.sliDescs()
	// Two groups could come out with the same label values (span values
	// that are not UTF-8 are repaired the same way): a duplicate series
	// would fail the whole scrape, so the first wins.
	emitted := make(map[string]struct{}, len(r.series))
	for _, s := range r.series {
		if !s.evaluated {
			continue // opened since the last evaluation: nothing to say yet
		}
		if s.sliValues == nil {
			v := make([]string, 2+len(d.names))
			v[0], v[1] = r.group, r.def.Name
			for i, n := range r.groupNames {
				v[2+d.groupIdx[i]] = strings.ToValidUTF8(s.labels[n], "\uFFFD")
			}
			copy(v[2+len(r.groupNames):], d.staticValues)
			s.sliValues = v
		}
		v := s.sliValues
		key := strings.Join(v[2:], "\xff")
		if _, dup := emitted[key]; dup {
			continue
		}
		emitted[key] = struct{}{}
		out = append(out, prometheus.MustNewConstMetric(d.obs, prometheus.GaugeValue, float64(s.observations), v...))
		out = append(out, prometheus.MustNewConstMetric(d.noData, prometheus.GaugeValue, boolFloat(s.noData), v...))
		if r.slo == nil {
			q := append(v[:len(v):len(v)], d.quantileValue)
			out = append(out, prometheus.MustNewConstMetric(d.threshold, prometheus.GaugeValue, r.def.Objective.Threshold.Seconds(), q...))
			if !math.IsNaN(s.value) {
				out = append(out, prometheus.MustNewConstMetric(d.quantile, prometheus.GaugeValue, s.value, q...))
			}
			continue
		}
		if r.slo.def.Latency > 0 {
			out = append(out, prometheus.MustNewConstMetric(d.threshold, prometheus.GaugeValue, r.slo.def.Latency.Seconds(), v...))
		}
		out = append(out, prometheus.MustNewConstMetric(d.objective, prometheus.GaugeValue, r.slo.def.Target/100, v...))
		out = append(out, prometheus.MustNewConstMetric(d.budget, prometheus.GaugeValue, s.slo.budgetRemaining, v...))
		for i, w := range r.slo.windows {
			lv := append(v[:len(v):len(v)], model.Duration(w).String())
			out = append(out, prometheus.MustNewConstMetric(d.burnRate, prometheus.GaugeValue, s.slo.burnRates[i], lv...))
		}
	}
	return out
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
