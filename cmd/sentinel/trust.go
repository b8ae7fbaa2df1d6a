package main

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"mime"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/internal/logbound"
	"github.com/kube-sentinel/sentinel/internal/tlsreload"
)

// otlpTLS makes the OTLP receivers' TLS configs from otlp.grpc.tls and
// otlp.http.tls (nil for a transport without); they reload the files when
// they change.
func otlpTLS(cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) (grpcTLS, httpTLS *tls.Config, err error) {
	if cfg.OTLPGRPCTLS == nil && cfg.OTLPHTTPTLS == nil {
		return nil, nil, nil
	}
	metrics, err := tlsreload.NewMetrics(reg)
	if err != nil {
		return nil, nil, err
	}
	build := func(files *tlsreload.Files, listener string) (*tls.Config, error) {
		if files == nil {
			return nil, nil
		}
		r, err := tlsreload.New(*files, tlsreload.Options{Listener: listener, Logger: logger, Metrics: metrics})
		if err != nil {
			return nil, err
		}
		return r.TLSConfig(), nil
	}
	if grpcTLS, err = build(cfg.OTLPGRPCTLS, "otlp_grpc"); err != nil {
		return nil, nil, err
	}
	if httpTLS, err = build(cfg.OTLPHTTPTLS, "otlp_http"); err != nil {
		return nil, nil, err
	}
	return grpcTLS, httpTLS, nil
}

// serveWeb serves the web listener, with TLS, client certificates and
// basic auth when --web.config.file names an exporter-toolkit web config
// (re-read as it changes, as Prometheus does).
func (d *daemon) serveWeb() error {
	if d.web.ErrorLog == nil { // handshake errors and the like, in our log rather than on stderr
		// Failed handshakes are logged at the rate clients choose: bound it.
		dropped := promauto.With(d.registry).NewCounter(prometheus.CounterOpts{
			Name: "sentinel_web_error_log_lines_dropped_total",
			Help: "Lines of the web server's error log (failed TLS handshakes, malformed requests) not written because they came faster than the log's rate.",
		})
		d.web.ErrorLog = logbound.NewLogLogger(d.logger.With("component", "web").Handler(), slog.LevelWarn, 1, 10, dropped.Inc)
	}
	file := d.opts.WebConfigFile
	if file == "" {
		return d.web.Serve(d.webLn)
	}
	noSystemd := false
	return web.Serve(d.webLn, d.web, &web.FlagConfig{
		WebListenAddresses: &[]string{d.webLn.Addr().String()},
		WebSystemdSocket:   &noSystemd,
		WebConfigFile:      &file,
	}, d.logger.With("component", "web"))
}

// checkWebConfig refuses a --web.config.file that does not load, at start
// rather than at the first request.
func checkWebConfig(file string) error {
	if file == "" {
		return nil
	}
	if err := web.Validate(file); err != nil {
		return errors.New("--web.config.file " + file + ": " + err.Error())
	}
	return nil
}

// lifecycle guards an endpoint that changes the daemon's state (POST
// /-/reload): it answers 403 unless --web.enable-lifecycle is set, as
// Prometheus does, and refuses what a browser sends on behalf of another
// site (cross-origin requests, by Sec-Fetch-Site or Origin against Host)
// and the form encodings a page can post without a CORS preflight, so
// that a web page a user visits cannot reload sentinel. Scripts (curl, a
// config-reloader sidecar) send none of those headers and pass.
func (d *daemon) lifecycle(h http.HandlerFunc) http.HandlerFunc {
	cop := http.NewCrossOriginProtection()
	return func(w http.ResponseWriter, r *http.Request) {
		if !d.opts.EnableLifecycle {
			d.lifecycleRefused.WithLabelValues("disabled").Inc()
			http.Error(w, "Lifecycle API is not enabled.", http.StatusForbidden)
			return
		}
		if err := cop.Check(r); err != nil {
			d.lifecycleRefused.WithLabelValues("cross_origin").Inc()
			d.logger.Warn("lifecycle request refused: cross-origin", "path", r.URL.Path, "origin", r.Header.Get("Origin"),
				"sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "remote", r.RemoteAddr)
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
		if browserForm(r) {
			d.lifecycleRefused.WithLabelValues("form_post").Inc()
			d.logger.Warn("lifecycle request refused: a browser form post", "path", r.URL.Path,
				"content_type", r.Header.Get("Content-Type"), "remote", r.RemoteAddr)
			http.Error(w, "a browser's form post cannot reach the lifecycle API", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

// browserForm tells a request a browser sent with a content type that
// needs no CORS preflight (a form, or fetch with text/plain).
func browserForm(r *http.Request) bool {
	fromBrowser := r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Sec-Fetch-Mode") != ""
	if !fromBrowser {
		return false
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true // unparseable: a browser sent it, and it is no JSON client
	}
	switch mt {
	case "text/plain", "application/x-www-form-urlencoded", "multipart/form-data":
		return true
	}
	return false
}
