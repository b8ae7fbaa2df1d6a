package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"github.com/kube-sentinel/sentinel/engine"
)

func (d *daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("Sentinel is Healthy.\n"))
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !d.ready.Load() {
			http.Error(w, "Sentinel is not ready.", http.StatusServiceUnavailable)
			return
		}
		if err := d.receiver.Ready(); err != nil {
			http.Error(w, "Sentinel is not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("Sentinel is Ready.\n"))
	})
	mux.HandleFunc("POST /-/reload", d.lifecycle(func(w http.ResponseWriter, _ *http.Request) {
		needRestart, err := d.reload()
		if err != nil {
			http.Error(w, "reload rejected, the running rules stay in force: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Write([]byte("reloaded\n"))
		for _, name := range needRestart {
			fmt.Fprintf(w, "%s changed but takes effect on restart only; the running value stays\n", name)
		}
	}))
	mux.HandleFunc("GET /api/v1/rules", d.apiRules)
	mux.HandleFunc("GET /api/v1/alerts", d.apiAlerts)
	mux.Handle("GET /api/v1/targets", d.scraper.TargetsHandler())
	mux.HandleFunc("GET /{$}", d.statusPage)
	return mux
}

// The JSON shapes follow Prometheus's HTTP API.
type apiResponse struct {
	Status string `json:"status"`
	Data   any    `json:"data"`
}

type apiGroup struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	Interval       float64   `json:"interval"`
	LastEvaluation string    `json:"lastEvaluation"`
	EvaluationTime float64   `json:"evaluationTime"`
	Rules          []apiRule `json:"rules"`
}

type apiRule struct {
	Name           string      `json:"name"`
	Type           string      `json:"type"`
	State          string      `json:"state"`
	Health         string      `json:"health"`
	Quantile       float64     `json:"quantile,omitempty"`
	Threshold      float64     `json:"threshold,omitempty"`
	Window         float64     `json:"window,omitempty"`
	Target         float64     `json:"target,omitempty"` // SLOs: percent
	Period         float64     `json:"period,omitempty"` // SLOs: seconds
	LastEvaluation string      `json:"lastEvaluation"`
	EvaluationTime float64     `json:"evaluationTime"`
	NoData         bool        `json:"noData"`                // blind: every series is no_data, SentinelNoData fires
	NoDataSince    string      `json:"noDataSince,omitempty"` // RFC 3339
	Series         []apiSeries `json:"series"`
	Alerts         []apiAlert  `json:"alerts"`
}

type apiSeries struct {
	Labels       map[string]string `json:"labels"`
	Value        *float64          `json:"value"`               // seconds; null when the window is empty (SLOs: the shortest window's burn rate)
	Threshold    float64           `json:"threshold,omitempty"` // seconds; absent for SLOs
	Observations uint64            `json:"observations"`
	Failed       uint64            `json:"failed"`
	NoData       bool              `json:"noData"`                // fewer than min_observations: neither breach nor clear
	NoDataSince  string            `json:"noDataSince,omitempty"` // RFC 3339
	Exemplars    []apiExemplar     `json:"exemplars"`
	// SLOs only.
	BudgetRemaining *float64           `json:"budgetRemaining,omitempty"`
	BurnRates       map[string]float64 `json:"burnRates,omitempty"`
	Pairs           []apiPair          `json:"pairs,omitempty"`
	// While the series breaches (docs/explain.md).
	CriticalPath   *apiCriticalPath `json:"criticalPath,omitempty"`
	SlowRequestsBy []apiSlowShare   `json:"slowRequestsBy,omitempty"`
}

// apiCriticalPath is where a series' exemplar traces spent their time.
type apiCriticalPath struct {
	Traces     int                 `json:"traces"`
	Incomplete int                 `json:"incomplete"`
	Services   []apiServiceShare   `json:"services"`
	Spans      []apiOperationShare `json:"spans"`
}

type apiServiceShare struct {
	Service string  `json:"service"`
	Share   float64 `json:"share"`
}

type apiOperationShare struct {
	Span  string  `json:"span"` // service/span name
	Share float64 `json:"share"`
}

// apiSlowShare is an attribute value slow requests have in common.
type apiSlowShare struct {
	Attribute string  `json:"attribute"`
	Value     string  `json:"value"`
	SlowShare float64 `json:"slowShare"`
	AllShare  float64 `json:"allShare"`
}

type apiPair struct {
	Severity    string  `json:"severity"`
	LongWindow  string  `json:"longWindow"`
	ShortWindow string  `json:"shortWindow"`
	Factor      float64 `json:"factor"`
	State       string  `json:"state"`
}

type apiExemplar struct {
	TraceID   string  `json:"traceId"`
	SpanID    string  `json:"spanId"`
	Value     float64 `json:"value"`
	Timestamp string  `json:"timestamp"`
}

type apiAlert struct {
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

func toAPIAlert(a engine.AlertStatus) apiAlert {
	return apiAlert{Labels: a.Labels, Annotations: a.Annotations, State: a.State.String(),
		ActiveAt: rfc3339(a.ActiveAt), Value: strconv.FormatFloat(a.Value, 'e', -1, 64)}
}

func rulesData(groups []engine.GroupStatus) map[string]any {
	out := make([]apiGroup, 0, len(groups))
	for _, g := range groups {
		ag := apiGroup{Name: g.Name, File: g.File, Interval: g.Interval.Seconds(),
			LastEvaluation: rfc3339(g.LastEvaluation), EvaluationTime: g.EvaluationTime.Seconds(), Rules: []apiRule{}}
		for _, r := range g.Rules {
			health := "ok"
			if r.LastEvaluation.IsZero() {
				health = "unknown"
			}
			ar := apiRule{Name: r.Name, Type: r.Kind, State: r.State.String(), Health: health,
				Quantile: r.Quantile, Threshold: r.Threshold.Seconds(), Window: r.Window.Seconds(),
				Target: r.Target, Period: r.Period.Seconds(),
				LastEvaluation: rfc3339(r.LastEvaluation), EvaluationTime: r.EvaluationTime.Seconds(),
				Series: []apiSeries{}, Alerts: []apiAlert{}}
			if r.NoData {
				ar.NoData, ar.NoDataSince = true, rfc3339(r.NoDataSince)
			}
			for _, s := range r.Series {
				as := apiSeries{Labels: s.Labels, Value: engine.Seconds(s.Value), Threshold: r.Threshold.Seconds(),
					Observations: s.Observations, Failed: s.Failed, Exemplars: []apiExemplar{}}
				if s.NoData {
					as.NoData, as.NoDataSince = true, rfc3339(s.NoDataSince)
				}
				if slo := s.SLO; slo != nil {
					// An SLO's series carry burn rates and the budget instead.
					as.Value, as.Threshold = nil, 0
					as.BudgetRemaining, as.BurnRates = &slo.BudgetRemaining, slo.BurnRates
					for _, p := range slo.Pairs {
						as.Pairs = append(as.Pairs, apiPair{Severity: p.Severity, LongWindow: model.Duration(p.LongWindow).String(),
							ShortWindow: model.Duration(p.ShortWindow).String(), Factor: p.Factor, State: p.State.String()})
					}
				}
				for _, x := range s.Exemplars {
					as.Exemplars = append(as.Exemplars, apiExemplar{TraceID: hex.EncodeToString(x.TraceID[:]),
						SpanID: hex.EncodeToString(x.SpanID[:]), Value: x.Duration.Seconds(), Timestamp: rfc3339(x.Time)})
				}
				if cp := s.CriticalPath; cp != nil {
					as.CriticalPath = &apiCriticalPath{Traces: cp.Traces, Incomplete: cp.Incomplete,
						Services: []apiServiceShare{}, Spans: []apiOperationShare{}}
					for _, p := range cp.Services {
						as.CriticalPath.Services = append(as.CriticalPath.Services, apiServiceShare{Service: p.Name, Share: p.Share})
					}
					for _, p := range cp.Spans {
						as.CriticalPath.Spans = append(as.CriticalPath.Spans, apiOperationShare{Span: p.Name, Share: p.Share})
					}
				}
				for _, x := range s.SlowRequestsBy {
					as.SlowRequestsBy = append(as.SlowRequestsBy, apiSlowShare{Attribute: x.Attribute, Value: x.Value, SlowShare: x.SlowShare, AllShare: x.AllShare})
				}
				ar.Series = append(ar.Series, as)
			}
			for _, a := range r.Alerts {
				ar.Alerts = append(ar.Alerts, toAPIAlert(a))
			}
			ag.Rules = append(ag.Rules, ar)
		}
		out = append(out, ag)
	}
	return map[string]any{"groups": out}
}

func (d *daemon) apiRules(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, rulesData(d.engine.Status()))
}

func (d *daemon) apiAlerts(w http.ResponseWriter, _ *http.Request) {
	alerts := []apiAlert{}
	for _, a := range d.engine.Alerts() {
		alerts = append(alerts, toAPIAlert(a))
	}
	writeJSON(w, map[string]any{"alerts": alerts})
}

func writeJSON(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(apiResponse{Status: "success", Data: data})
}
