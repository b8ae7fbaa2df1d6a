package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Files names a server's TLS material, with the OpenTelemetry Collector's
// field names (cert_file, key_file, client_ca_file, min_version).
type Files struct {
	CertFile string
	KeyFile  string
	// ClientCAFile, when set, makes a client certificate signed by one of
	// its CAs a condition of every connection.
	ClientCAFile string
	// MinVersion is tls.VersionTLS12 when zero.
	MinVersion uint16
}

// Versions are the min_version values, as the Collector spells them.
var Versions = map[string]uint16{
	"1.2": tls.VersionTLS12,
	"1.3": tls.VersionTLS13,
}

// Check loads the files once, as a start or `sentinel check config` does.
func (f Files) Check() error {
	_, err := f.load()
	return err
}

// material is one loaded generation of the files.
type material struct {
	cert     *tls.Certificate
	clientCA *x509.CertPool // nil: no client certificates asked for
	notAfter time.Time
}

func (f Files) load() (*material, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("cert_file and key_file are both required")
	}
	certPEM, err := os.ReadFile(f.CertFile)
	if err != nil {
		return nil, fmt.Errorf("cert_file: %w", err)
	}
	keyPEM, err := os.ReadFile(f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cert_file %s and key_file %s: %w", f.CertFile, f.KeyFile, err)
	}
	m := &material{cert: &cert, notAfter: cert.Leaf.NotAfter}
	if f.ClientCAFile != "" {
		caPEM, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client_ca_file: %w", err)
		}
		m.clientCA = x509.NewCertPool()
		if !m.clientCA.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("client_ca_file %s: no PEM certificate in it", f.ClientCAFile)
		}
	}
	return m, nil
}

// Metrics are the counters of every Reloader of a process.
type Metrics struct {
	reloads  *prometheus.CounterVec
	refused  *prometheus.CounterVec
	notAfter *prometheus.GaugeVec
}

// Reasons a handshake is refused, the reason label of
// sentinel_tls_handshakes_refused_total.
const (
	ReasonNoClientCertificate        = "no_client_certificate"
	ReasonUntrustedClientCertificate = "untrusted_client_certificate"
)

// NewMetrics makes the metrics and registers them when reg is not nil.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_tls_certificate_reloads_total",
			Help: "Loads of a listener's changed certificate, key or client CA files, by result (success, failure: the previous ones stay in force).",
		}, []string{"listener", "result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_tls_handshakes_refused_total",
			Help: "TLS handshakes refused because the client presented no certificate or one no client CA signed.",
		}, []string{"listener", "reason"}),
		notAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sentinel_tls_certificate_expiry_timestamp_seconds",
			Help: "When the certificate a listener serves expires (its NotAfter).",
		}, []string{"listener"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.reloads, m.refused, m.notAfter} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("tls metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Options configure a Reloader.
type Options struct {
	// Listener names the server in logs and metrics ("otlp_grpc").
	Listener string
	Logger   *slog.Logger
	// Metrics defaults to unregistered ones.
	Metrics *Metrics
}

// Reloader hands out the current TLS material of Files.
type Reloader struct {
	files Files
	opts  Options

	mu      sync.Mutex
	current *material
	seen    [3]os.FileInfo // what the files looked like when last tried, loaded or not
}

// New loads the files; it fails when they do not load.
func New(files Files, opts Options) (*Reloader, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics, _ = NewMetrics(nil)
	}
	r := &Reloader{files: files, opts: opts}
	r.seen = r.stat()
	m, err := files.load()
	if err != nil {
		return nil, fmt.Errorf("%s TLS: %w", opts.Listener, err)
	}
	r.current = m
	opts.Metrics.notAfter.WithLabelValues(opts.Listener).Set(float64(m.notAfter.Unix()))
	// Zero values, so that a rate over them exists before the first event.
	for _, result := range []string{"success", "failure"} {
		opts.Metrics.reloads.WithLabelValues(opts.Listener, result)
	}
	if files.ClientCAFile != "" {
		for _, reason := range []string{ReasonNoClientCertificate, ReasonUntrustedClientCertificate} {
			opts.Metrics.refused.WithLabelValues(opts.Listener, reason)
		}
	}
	return r, nil
}

func (r *Reloader) paths() [3]string {
	return [3]string{r.files.CertFile, r.files.KeyFile, r.files.ClientCAFile}
}

func (r *Reloader) stat() [3]os.FileInfo {
	var out [3]os.FileInfo
	for i, p := range r.paths() {
		if p != "" {
			out[i], _ = os.Stat(p) // follows symlinks, as a Secret volume's ..data swap needs
		}
	}
	return out
}

func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// load returns the current material, first loading the files if any of
// them changed since they were last tried.
func (r *Reloader) load() *material {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.stat()
	changed := false
	for i := range now {
		changed = changed || !sameFile(now[i], r.seen[i])
	}
	if !changed {
		return r.current
	}
	r.seen = now
	m, err := r.files.load()
	if err != nil {
		r.opts.Metrics.reloads.WithLabelValues(r.opts.Listener, "failure").Inc()
		r.opts.Logger.Error("TLS files changed but do not load; the previous certificate stays in force",
			"listener", r.opts.Listener, "err", err)
		return r.current
	}
	r.current = m
	r.opts.Metrics.reloads.WithLabelValues(r.opts.Listener, "success").Inc()
	r.opts.Metrics.notAfter.WithLabelValues(r.opts.Listener).Set(float64(m.notAfter.Unix()))
	r.opts.Logger.Info("TLS files reloaded", "listener", r.opts.Listener,
		"subject", m.cert.Leaf.Subject.String(), "not_after", m.notAfter)
	return m
}

// TLSConfig is a server config that serves the current certificate and,
// when a client CA is set, refuses clients without a certificate that one
// of the current client CAs signed.
//
// The client certificate is verified here rather than by crypto/tls
// (ClientAuth RequireAndVerifyClientCert with a fixed ClientCAs) so that a
// new CA bundle applies to the next handshake, resumed or not, and a
// refusal is counted.
func (r *Reloader) TLSConfig() *tls.Config {
	c := &tls.Config{
		MinVersion: r.files.MinVersion,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.load().cert, nil
		},
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	if r.files.ClientCAFile != "" {
		// Verified below. VerifyConnection runs at every handshake, with a
		// certificate or without, resumed ones too, so a session that began
		// under a CA since removed from the bundle does not resume.
		c.ClientAuth = tls.RequestClientCert
		c.VerifyConnection = r.verifyClient
	}
	return c
}

func (r *Reloader) verifyClient(cs tls.ConnectionState) error {
	refuse := func(reason string, err error) error {
		r.opts.Metrics.refused.WithLabelValues(r.opts.Listener, reason).Inc()
		r.opts.Logger.Debug("TLS handshake refused", "listener", r.opts.Listener, "reason", reason, "err", err)
		return err
	}
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return refuse(ReasonNoClientCertificate, errors.New("tls: a client certificate is required"))
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         r.load().clientCA,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return refuse(ReasonUntrustedClientCertificate, fmt.Errorf("tls: client certificate %q: %w", certs[0].Subject.String(), err))
	}
	return nil
}
