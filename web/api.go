package web

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"github.com/kube-sentinel/sentinel/engine"
)

// The JSON shapes of /api/v1, which follow Prometheus's HTTP API; they
// are exported for clients to decode.

// Response is every JSON answer: status "success" with data, or "error"
// with errorType and error.
type Response struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Group is a rule group of /api/v1/rules.
type Group struct {
	Name           string  `json:"name"`
	File           string  `json:"file"`
	Interval       float64 `json:"interval"`
	LastEvaluation string  `json:"lastEvaluation"`
	EvaluationTime float64 `json:"evaluationTime"`
	Rules          []Rule  `json:"rules"`
}

// Rule is a rule of a Group, with one Series per group_by value.
type Rule struct {
	Name           string   `json:"name"`
	Type           string   `json:"type"`
	State          string   `json:"state"`
	Health         string   `json:"health"`
	Quantile       float64  `json:"quantile,omitempty"`
	Threshold      float64  `json:"threshold,omitempty"`
	Window         float64  `json:"window,omitempty"`
	Target         float64  `json:"target,omitempty"` // SLOs: percent
	Period         float64  `json:"period,omitempty"` // SLOs: seconds
	LastEvaluation string   `json:"lastEvaluation"`
	EvaluationTime float64  `json:"evaluationTime"`
	NoData         bool     `json:"noData"`                // blind: every series is no_data, SentinelNoData fires
	NoDataSince    string   `json:"noDataSince,omitempty"` // RFC 3339
	Series         []Series `json:"series"`
	Alerts         []Alert  `json:"alerts"`
}

// Series is one group of a Rule at its last evaluation.
type Series struct {
	Labels       map[string]string `json:"labels"`
	Value        *float64          `json:"value"`               // seconds; null when the window is empty (SLOs: the shortest window's burn rate)
	Threshold    float64           `json:"threshold,omitempty"` // seconds; absent for SLOs
	Observations uint64            `json:"observations"`
	Failed       uint64            `json:"failed"`
	NoData       bool              `json:"noData"`                // fewer than min_observations: neither breach nor clear
	NoDataSince  string            `json:"noDataSince,omitempty"` // RFC 3339
	Exemplars    []Exemplar        `json:"exemplars"`
	// SLOs only.
	BudgetRemaining *float64           `json:"budgetRemaining,omitempty"`
	BurnRates       map[string]float64 `json:"burnRates,omitempty"`
	Pairs           []Pair             `json:"pairs,omitempty"`
	// Why it is slow, when the engine's status says (see ExplainFunc).
	CriticalPath   *CriticalPath     `json:"criticalPath,omitempty"`
	SlowRequestsBy []Overrepresented `json:"slowRequestsBy,omitempty"`
}

// Pair is an SLO's burn-rate pair and its state.
type Pair struct {
	Severity    string  `json:"severity"`
	LongWindow  string  `json:"longWindow"`
	ShortWindow string  `json:"shortWindow"`
	Factor      float64 `json:"factor"`
	State       string  `json:"state"`
}

// Exemplar is one of a series' slowest requests.
type Exemplar struct {
	TraceID   string  `json:"traceId"`
	SpanID    string  `json:"spanId"`
	Value     float64 `json:"value"`
	Timestamp string  `json:"timestamp"`
}

// Alert is a pending or firing alert.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    string            `json:"activeAt"`
	Value       string            `json:"value"`
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func toAlert(a engine.AlertStatus) Alert {
	return Alert{Labels: a.Labels, Annotations: a.Annotations, State: a.State.String(),
		ActiveAt: rfc3339(a.ActiveAt), Value: strconv.FormatFloat(a.Value, 'e', -1, 64)}
}

func rulesData(groups []engine.GroupStatus, explain ExplainFunc) map[string]any {
	out := make([]Group, 0, len(groups))
	for _, g := range groups {
		ag := Group{Name: g.Name, File: g.File, Interval: g.Interval.Seconds(),
			LastEvaluation: rfc3339(g.LastEvaluation), EvaluationTime: g.EvaluationTime.Seconds(), Rules: []Rule{}}
		for _, r := range g.Rules {
			health := "ok"
			if r.LastEvaluation.IsZero() {
				health = "unknown"
			}
			ar := Rule{Name: r.Name, Type: r.Kind, State: r.State.String(), Health: health,
				Quantile: r.Quantile, Threshold: r.Threshold.Seconds(), Window: r.Window.Seconds(),
				Target: r.Target, Period: r.Period.Seconds(),
				LastEvaluation: rfc3339(r.LastEvaluation), EvaluationTime: r.EvaluationTime.Seconds(),
				Series: []Series{}, Alerts: []Alert{}}
			if r.NoData {
				ar.NoData, ar.NoDataSince = true, rfc3339(r.NoDataSince)
			}
			for _, s := range r.Series {
				as := Series{Labels: s.Labels, Value: engine.Seconds(s.Value), Threshold: r.Threshold.Seconds(),
					Observations: s.Observations, Failed: s.Failed, Exemplars: []Exemplar{}}
				if s.NoData {
					as.NoData, as.NoDataSince = true, rfc3339(s.NoDataSince)
				}
				if slo := s.SLO; slo != nil {
					// An SLO's series carry burn rates and the budget instead.
					as.Value, as.Threshold = nil, 0
					as.BudgetRemaining, as.BurnRates = &slo.BudgetRemaining, slo.BurnRates
					for _, p := range slo.Pairs {
						as.Pairs = append(as.Pairs, Pair{Severity: p.Severity, LongWindow: model.Duration(p.LongWindow).String(),
							ShortWindow: model.Duration(p.ShortWindow).String(), Factor: p.Factor, State: p.State.String()})
					}
				}
				if explain != nil {
					if e := explain(s); e != nil {
						as.CriticalPath, as.SlowRequestsBy = e.CriticalPath, e.SlowRequestsBy
					}
				}
				for _, x := range s.Exemplars {
					as.Exemplars = append(as.Exemplars, Exemplar{TraceID: hex.EncodeToString(x.TraceID[:]),
						SpanID: hex.EncodeToString(x.SpanID[:]), Value: x.Duration.Seconds(), Timestamp: rfc3339(x.Time)})
				}
				ar.Series = append(ar.Series, as)
			}
			for _, a := range r.Alerts {
				ar.Alerts = append(ar.Alerts, toAlert(a))
			}
			ag.Rules = append(ag.Rules, ar)
		}
		out = append(out, ag)
	}
	return map[string]any{"groups": out}
}

func (h *Handler) apiRules(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, rulesData(h.opts.Rules.Status(), h.opts.Explain))
}

func (h *Handler) apiAlerts(w http.ResponseWriter, _ *http.Request) {
	alerts := []Alert{}
	for _, a := range h.opts.Rules.Alerts() {
		alerts = append(alerts, toAlert(a))
	}
	writeJSON(w, map[string]any{"alerts": alerts})
}

func writeJSON(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(Response{Status: "success", Data: data})
}
