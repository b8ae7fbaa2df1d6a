package main

import (
	"crypto/tls"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	toolkitweb "github.com/prometheus/exporter-toolkit/web"

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
	return toolkitweb.Serve(d.webLn, d.web, &toolkitweb.FlagConfig{
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
	if err := toolkitweb.Validate(file); err != nil {
		return errors.New("--web.config.file " + file + ": " + err.Error())
	}
	return nil
}
