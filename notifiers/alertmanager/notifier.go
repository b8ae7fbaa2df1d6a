package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"

	"github.com/kube-sentinel/sentinel/engine"
)

// Defaults, as in Prometheus's notifier where it has one.
const (
	DefaultQueueCapacity = 10000
	DefaultMaxBatchSize  = 256
	DefaultTimeout       = 10 * time.Second
	DefaultBackoff       = 500 * time.Millisecond
	// DefaultMaxBatchBytes bounds a request's alerts, so that a post
	// stays quick whatever the alerts hold.
	DefaultMaxBatchBytes = 1 << 20
	// DefaultMaxAlertBytes bounds one alert: past it, its annotations are
	// truncated (labels identify the alert and are kept whole).
	DefaultMaxAlertBytes = 64 << 10
	// MaxBackoff caps the doubling retry delay, so an Alertmanager that comes
	// back gets its alerts within half a minute.
	MaxBackoff = 30 * time.Second
)

// Options configures a Notifier. Zero values take the defaults above.
type Options struct {
	URLs []string // Alertmanagers reached with Prometheus's default HTTP client settings
	// Alertmanagers are Alertmanagers with their own HTTP client
	// settings. Every Alertmanager of both lists (HA) gets every alert.
	Alertmanagers []Alertmanager
	QueueCapacity int           // per Alertmanager; when full, the oldest alert is dropped and counted
	MaxBatchSize  int           // alerts per request
	MaxBatchBytes int           // bytes of alerts per request (at least one alert is sent)
	MaxAlertBytes int           // bytes of one alert; its annotations are truncated to fit, and counted
	Timeout       time.Duration // per request; also bounds the final flush on shutdown
	Backoff       time.Duration // initial retry delay, doubling up to MaxBackoff
	Logger        *slog.Logger
	Registerer    prometheus.Registerer // may be nil
}

// Alertmanager is one Alertmanager and how to reach it.
type Alertmanager struct {
	URL string // scheme://host:port[/prefix]
	// HTTPClientConfig is Prometheus's HTTP client settings (TLS, basic
	// auth, authorization, OAuth2, proxy); nil takes its defaults.
	HTTPClientConfig *promconfig.HTTPClientConfig
	Timeout          time.Duration // per request; 0 takes Options.Timeout
}

// Notifier sends alerts to every configured Alertmanager. It implements
// engine.Notifier.
type Notifier struct {
	maxAlert int
	logger   *slog.Logger
	metrics  *metrics
	loops    []*sendLoop
}

var _ engine.Notifier = (*Notifier)(nil)

// New validates opts and builds a Notifier. Nothing is sent until Run.
func New(opts Options) (*Notifier, error) {
	ams := slices.Clone(opts.Alertmanagers)
	for _, u := range opts.URLs {
		ams = append(ams, Alertmanager{URL: u})
	}
	if len(ams) == 0 {
		return nil, errors.New("alertmanager notifier: no Alertmanager URL configured")
	}
	if opts.QueueCapacity < 0 || opts.MaxBatchSize < 0 || opts.MaxBatchBytes < 0 || opts.MaxAlertBytes < 0 || opts.Timeout < 0 || opts.Backoff < 0 {
		return nil, errors.New("alertmanager notifier: queue capacity, batch size and bytes, alert bytes, timeout and backoff must not be negative")
	}
	if opts.MaxBatchBytes == 0 {
		opts.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if opts.MaxAlertBytes == 0 {
		opts.MaxAlertBytes = DefaultMaxAlertBytes
	}
	if opts.QueueCapacity == 0 {
		opts.QueueCapacity = DefaultQueueCapacity
	}
	if opts.MaxBatchSize == 0 {
		opts.MaxBatchSize = DefaultMaxBatchSize
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Backoff == 0 {
		opts.Backoff = DefaultBackoff
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	n := &Notifier{logger: logger, maxAlert: opts.MaxAlertBytes}
	seen := make(map[string]bool, len(ams))
	for _, am := range ams {
		target, err := parseURL(am.URL)
		if err != nil {
			return nil, err
		}
		// A client of its own per Alertmanager, built as Prometheus builds
		// its notifier's: nothing here depends on or changes
		// http.DefaultClient, and one's credentials never reach another.
		hc := promconfig.DefaultHTTPClientConfig
		if am.HTTPClientConfig != nil {
			hc = *am.HTTPClientConfig
		}
		httpClient, err := promconfig.NewClientFromConfig(hc, "alertmanager")
		if err != nil {
			return nil, fmt.Errorf("alertmanager notifier: Alertmanager %s: %w", target.name, err)
		}
		timeout := opts.Timeout
		if am.Timeout > 0 {
			timeout = am.Timeout
		}
		if seen[target.name] {
			return nil, fmt.Errorf("alertmanager notifier: Alertmanager %q configured twice", target.name)
		}
		seen[target.name] = true
		n.loops = append(n.loops, &sendLoop{
			target:     target,
			client:     newAlertClient(target, httpClient),
			queue:      newBoundedQueue(opts.QueueCapacity, opts.MaxBatchBytes),
			wake:       make(chan struct{}, 1),
			maxBatch:   opts.MaxBatchSize,
			timeout:    timeout,
			backoff:    opts.Backoff,
			maxBackoff: max(MaxBackoff, opts.Backoff),
			logger:     logger.With("alertmanager", target.name),
		})
	}
	m, err := newMetrics(opts.Registerer, opts.QueueCapacity, n.QueueLength)
	if err != nil {
		return nil, err
	}
	n.metrics = m
	for _, l := range n.loops {
		l.metrics = m
		// Export zeros from the start, so rate() sees the first alert.
		m.sent.WithLabelValues(l.target.name)
		m.errors.WithLabelValues(l.target.name)
	}
	return n, nil
}

// target is one Alertmanager: where its API lives and the name used in logs
// and metric labels (the URL without credentials).
type target struct {
	scheme   string
	host     string
	basePath string // <prefix>/api/v2
	user     *url.Userinfo
	name     string
}

func parseURL(raw string) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("alertmanager notifier: Alertmanager URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return target{}, fmt.Errorf("alertmanager notifier: Alertmanager URL %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return target{}, fmt.Errorf("alertmanager notifier: Alertmanager URL %q: no host", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return target{}, fmt.Errorf("alertmanager notifier: Alertmanager URL %q: query and fragment are not supported", u.Redacted())
	}
	name := *u
	name.Path = strings.TrimSuffix(u.Path, "/")
	name.RawPath = ""
	return target{
		scheme:   u.Scheme,
		host:     u.Host,
		basePath: path.Join("/", u.Path, "api/v2"),
		user:     u.User,
		name:     name.Redacted(),
	}, nil
}

// Send enqueues alerts for every Alertmanager and returns at once. An alert
// still queued is superseded by a newer one with the same labels.
func (n *Notifier) Send(alerts ...engine.Alert) {
	if len(alerts) == 0 {
		return
	}
	pending := make([]pendingAlert, len(alerts))
	for i := range alerts {
		pa := toPostable(&alerts[i])
		size, cut := boundAlert(pa, n.maxAlert)
		if cut {
			n.metrics.truncated.Inc()
			n.logger.Warn("Alert over the size limit, annotations truncated", "alertname", pa.Labels["alertname"], "limit_bytes", n.maxAlert)
		}
		pending[i] = pendingAlert{key: labelsKey(pa.Labels), alert: pa, size: size}
	}
	for _, l := range n.loops {
		if dropped := l.queue.push(pending); dropped > 0 {
			n.metrics.dropped.Add(float64(dropped))
			l.logger.Warn("Alert notification queue full, dropped the oldest alerts", "dropped", dropped)
		}
		l.signal()
	}
}

// toPostable copies an engine alert into the Alertmanager API shape; the
// copies of the maps keep a caller's later changes out of the queue.
func toPostable(a *engine.Alert) *models.PostableAlert {
	labels := make(models.LabelSet, len(a.Labels))
	maps.Copy(labels, a.Labels)
	var annotations models.LabelSet
	if len(a.Annotations) > 0 {
		annotations = make(models.LabelSet, len(a.Annotations))
		maps.Copy(annotations, a.Annotations)
	}
	return &models.PostableAlert{
		Alert: models.Alert{
			Labels:       labels,
			GeneratorURL: strfmt.URI(a.GeneratorURL),
		},
		Annotations: annotations,
		StartsAt:    strfmt.DateTime(a.StartsAt),
		EndsAt:      strfmt.DateTime(a.EndsAt),
	}
}

// Run sends queued alerts until ctx is done, then makes one last attempt,
// bounded by the request timeout, to deliver what is still queued. It
// returns when every send loop has stopped.
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range n.loops {
		wg.Go(func() { l.run(ctx) })
	}
	wg.Wait()
}

// QueueLength is the number of alerts not yet delivered to the most
// backlogged Alertmanager.
func (n *Notifier) QueueLength() int {
	longest := 0
	for _, l := range n.loops {
		longest = max(longest, l.queue.len())
	}
	return longest
}
