package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kube-sentinel/sentinel/engine"
)

// Rules is what the web layer reads of the engine: every group's and
// rule's status, and the pending and firing alerts.
type Rules interface {
	Status() []engine.GroupStatus
	Alerts() []engine.AlertStatus
}

// ExemplarURLFunc renders an exemplar's link to an external tracing UI
// for a group's rule ("" when it cannot).
type ExemplarURLFunc func(group, rule string, x engine.Exemplar) string

// Options are what the web layer reads and calls. Rules is required; a
// nil function or handler turns its endpoint off (404) or, for Ready,
// answers not ready.
type Options struct {
	Rules Rules
	// ExternalTraceURL links exemplars to an external tracing UI (the
	// engine's trace_url_template). It is asked at every rendering; nil
	// or returning nil: no external link.
	ExternalTraceURL func() ExemplarURLFunc
	// Traces is the trace store of the trace view (/trace/{traceID} and
	// /api/v1/traces/{traceID}); nil answers every trace 404.
	Traces TraceSource
	// Explain reads why a series is slow from its engine status, for
	// /api/v1/rules and beside a pending or firing series on the status
	// page; nil: nothing is explained.
	Explain ExplainFunc
	// Targets serves /api/v1/targets (the scrape targets).
	Targets http.Handler
	// Ready says why the daemon does not serve (/-/ready answers 503 with
	// it), nil when it does.
	Ready func() error
	// Reload re-reads config and rules (POST /-/reload): the settings that
	// changed but take effect on restart only, or why the new config or
	// rules were rejected.
	Reload func() (needRestart []string, err error)
	// EnableLifecycle is --web.enable-lifecycle: without it POST /-/reload
	// is refused.
	EnableLifecycle bool
	// Gatherer serves /metrics; Registerer takes the web layer's own
	// metrics (both may be nil).
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Version    string
}

// Handler serves the HTTP API and the status page.
type Handler struct {
	opts    Options
	logger  *slog.Logger
	mux     *http.ServeMux
	history *statusHistory // the status page's charts

	statusPageErrors prometheus.Counter
	lifecycleRefused *prometheus.CounterVec
	pprofRefused     prometheus.Counter
}

// New returns the handler of the web port.
func New(opts Options) (*Handler, error) {
	if opts.Rules == nil {
		return nil, errors.New("web: no rules to show")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: opts, logger: opts.Logger, history: newStatusHistory()}
	f := promauto.With(opts.Registerer)
	h.lifecycleRefused = f.NewCounterVec(prometheus.CounterOpts{
		Name: "sentinel_web_lifecycle_refused_total",
		Help: "Requests to lifecycle endpoints (POST /-/reload) refused, by reason (disabled, cross_origin, form_post).",
	}, []string{"reason"})
	h.pprofRefused = f.NewCounter(prometheus.CounterOpts{
		Name: "sentinel_web_pprof_refused_total",
		Help: "Requests for a CPU profile or an execution trace refused: seconds over 60 or not a number.",
	})
	h.statusPageErrors = f.NewCounter(prometheus.CounterOpts{
		Name: "sentinel_status_page_errors_total",
		Help: "Status page renderings that failed.",
	})
	h.mux = h.routes()
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) routes() *http.ServeMux {
	mux := http.NewServeMux()
	if h.opts.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(h.opts.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("Sentinel is Healthy.\n"))
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if h.opts.Ready == nil {
			http.Error(w, "Sentinel is not ready.", http.StatusServiceUnavailable)
			return
		}
		if err := h.opts.Ready(); err != nil {
			http.Error(w, "Sentinel is not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("Sentinel is Ready.\n"))
	})
	if h.opts.Reload != nil {
		mux.HandleFunc("POST /-/reload", h.lifecycle(h.reload))
	}
	mux.HandleFunc("GET /api/v1/rules", h.apiRules)
	mux.HandleFunc("GET /api/v1/alerts", h.apiAlerts)
	if h.opts.Targets != nil {
		mux.Handle("GET /api/v1/targets", h.opts.Targets)
	}
	mux.HandleFunc("GET /api/v1/traces/{traceID}", h.apiTrace)
	mux.HandleFunc("GET /trace/{traceID}", h.tracePage)
	mux.HandleFunc("GET /{$}", h.statusPage)
	// Go's profiles, as Prometheus and Alertmanager serve them: what
	// scripts/pgo-profiles.sh takes cmd/sentinel/default.pgo from.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", h.boundedProfile(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", h.boundedProfile(pprof.Trace))
	return mux
}

// maxProfileSeconds bounds what a client may ask of the CPU profile and
// the execution trace: they run, and hold the profiler, for that long.
const maxProfileSeconds = 60

// boundedProfile refuses (400, counted) a profile or trace longer than
// maxProfileSeconds, or whose seconds is not a number.
func (h *Handler) boundedProfile(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if v := r.FormValue("seconds"); v != "" {
			if s, err := strconv.ParseFloat(v, 64); err != nil || !(s > 0 && s <= maxProfileSeconds) {
				h.pprofRefused.Inc()
				http.Error(w, fmt.Sprintf("seconds must be a number over 0 and at most %d", maxProfileSeconds), http.StatusBadRequest)
				return
			}
		}
		next(w, r)
	}
}

// SampleStatus records every series' value once per evaluation interval
// (every() is asked each time, as a reload may change it) until ctx is
// done, so that the charts have no gaps when nobody looks at the page.
func (h *Handler) SampleStatus(ctx context.Context, every func() time.Duration) {
	for {
		h.history.record(h.opts.Rules.Status(), time.Now())
		select {
		case <-ctx.Done():
			return
		case <-time.After(every()):
		}
	}
}
