package scrape

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/engine"
)

// DefaultMaxBodyBytes bounds one scrape's body (after decompression): an
// apiserver's /metrics is a few MiB to a few tens of MiB.
const DefaultMaxBodyBytes = 50 << 20

// DefaultDiscoveryInterval is how often Kubernetes discovery lists again.
const DefaultDiscoveryInterval = 30 * time.Second

// Options configure a Scraper.
type Options struct {
	// Configs are the scrape_configs; ApplyConfig replaces them.
	Configs []config.ScrapeConfig
	// Observer receives every bucket increase. Required.
	Observer engine.Observer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer, when set, gets the scraper's metrics.
	Registerer prometheus.Registerer
	// Now defaults to time.Now; tests set it.
	Now func() time.Time
	// MaxBodyBytes bounds a scrape's body; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// DiscoveryInterval is how often Kubernetes discovery lists nodes and
	// endpoints; zero means DefaultDiscoveryInterval.
	DiscoveryInterval time.Duration
}

// Scraper scrapes every target of its scrape configs on their schedules,
// one goroutine per target, and hands histogram bucket increases to the
// observer.
type Scraper struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	bodies  sync.Pool // *bytes.Buffer

	mu      sync.Mutex
	ctx     context.Context // set while Run runs
	jobs    map[string]*job
	configs []config.ScrapeConfig
}

// New checks opts and builds a Scraper; Run starts it.
func New(opts Options) (*Scraper, error) {
	if opts.Observer == nil {
		return nil, errors.New("scraper: an observer is required")
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("scraper: max body bytes %d is negative", opts.MaxBodyBytes)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.DiscoveryInterval <= 0 {
		opts.DiscoveryInterval = DefaultDiscoveryInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := newMetrics()
	if opts.Registerer != nil {
		if err := m.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("scraper: registering metrics: %w", err)
		}
	}
	s := &Scraper{opts: opts, log: opts.Logger, metrics: m, jobs: map[string]*job{}}
	if err := s.ApplyConfig(opts.Configs); err != nil {
		return nil, err
	}
	return s, nil
}

// ApplyConfig replaces the scrape configs. Jobs whose config is unchanged
// keep running, with their targets' histogram state; changed jobs start
// afresh (a first scrape is a baseline); removed jobs stop. Before Run it
// only records the configs.
func (s *Scraper) ApplyConfig(cfgs []config.ScrapeConfig) error {
	clients := make(map[string]*http.Client, len(cfgs))
	seen := map[string]bool{}
	for _, c := range cfgs {
		if seen[c.JobName] {
			return fmt.Errorf("scraper: job %q configured twice", c.JobName)
		}
		seen[c.JobName] = true
		if c.ScrapeInterval <= 0 || c.ScrapeTimeout <= 0 {
			return fmt.Errorf("scraper: job %q: scrape interval and timeout must be positive", c.JobName)
		}
		client, err := promconfig.NewClientFromConfig(c.HTTPClientConfig, c.JobName)
		if err != nil {
			return fmt.Errorf("scraper: job %q: HTTP client: %w", c.JobName, err)
		}
		clients[c.JobName] = client
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.configs = slices.Clone(cfgs)
	if s.ctx == nil {
		return nil
	}
	s.reconcileLocked(clients)
	return nil
}

// reconcileLocked starts and stops jobs to match s.configs.
func (s *Scraper) reconcileLocked(clients map[string]*http.Client) {
	want := map[string]config.ScrapeConfig{}
	for _, c := range s.configs {
		want[c.JobName] = c
	}
	for name, j := range s.jobs {
		if c, ok := want[name]; !ok || !reflect.DeepEqual(c, j.cfg) {
			j.stop()
			delete(s.jobs, name)
		}
	}
	for _, c := range s.configs {
		if _, ok := s.jobs[c.JobName]; ok {
			continue
		}
		client := clients[c.JobName]
		if client == nil {
			var err error
			if client, err = promconfig.NewClientFromConfig(c.HTTPClientConfig, c.JobName); err != nil {
				s.log.Error("scrape job not started", "job", c.JobName, "err", err)
				continue
			}
		}
		j := newJob(s, c, client)
		s.jobs[c.JobName] = j
		j.start(s.ctx)
	}
}

// Run scrapes until ctx ends, then waits for every scrape loop to stop.
func (s *Scraper) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ctx != nil {
		s.mu.Unlock()
		return errors.New("scraper: already running")
	}
	s.ctx = ctx
	s.reconcileLocked(nil)
	s.mu.Unlock()

	<-ctx.Done()

	s.mu.Lock()
	jobs := s.jobs
	s.jobs = map[string]*job{}
	s.mu.Unlock()
	for _, j := range jobs {
		j.stop()
	}
	return nil
}

// TargetStatus is one entry of /api/v1/targets' activeTargets, shaped like
// Prometheus's.
type TargetStatus struct {
	DiscoveredLabels   map[string]string `json:"discoveredLabels"`
	Labels             map[string]string `json:"labels"`
	ScrapePool         string            `json:"scrapePool"`
	ScrapeURL          string            `json:"scrapeUrl"`
	GlobalURL          string            `json:"globalUrl"`
	LastError          string            `json:"lastError"`
	LastErrorReason    string            `json:"lastErrorReason,omitempty"` // sentinel's: the reason label of sentinel_scrape_errors_total
	LastScrape         time.Time         `json:"lastScrape"`
	LastScrapeDuration float64           `json:"lastScrapeDuration"` // seconds
	Health             string            `json:"health"`             // up, down, unknown
	ScrapeInterval     string            `json:"scrapeInterval"`
	ScrapeTimeout      string            `json:"scrapeTimeout"`
	// Scrapes counts the scrapes done, successful or not (sentinel's).
	Scrapes uint64 `json:"scrapes"`
}

// Health values, as Prometheus's.
const (
	HealthUnknown = "unknown"
	HealthGood    = "up"
	HealthBad     = "down"
)

// Targets returns the status of every active target, by job then URL.
func (s *Scraper) Targets() []TargetStatus {
	s.mu.Lock()
	jobs := make([]*job, 0, len(s.jobs))
	for _, j := range s.jobs {
		jobs = append(jobs, j)
	}
	s.mu.Unlock()
	var out []TargetStatus
	for _, j := range jobs {
		out = append(out, j.statuses()...)
	}
	slices.SortFunc(out, func(a, b TargetStatus) int {
		if a.ScrapePool != b.ScrapePool {
			if a.ScrapePool < b.ScrapePool {
				return -1
			}
			return 1
		}
		if a.ScrapeURL < b.ScrapeURL {
			return -1
		}
		if a.ScrapeURL > b.ScrapeURL {
			return 1
		}
		return 0
	})
	if out == nil {
		out = []TargetStatus{}
	}
	return out
}

// TargetsHandler serves GET /api/v1/targets as Prometheus does:
// {"status":"success","data":{"activeTargets":[...],"droppedTargets":[]}}.
func (s *Scraper) TargetsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		resp := struct {
			Status string `json:"status"`
			Data   struct {
				ActiveTargets  []TargetStatus `json:"activeTargets"`
				DroppedTargets []TargetStatus `json:"droppedTargets"`
			} `json:"data"`
		}{Status: "success"}
		resp.Data.ActiveTargets = s.Targets()
		resp.Data.DroppedTargets = []TargetStatus{}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
}

type metrics struct {
	up       *prometheus.GaugeVec
	duration *prometheus.GaugeVec
	errors   *prometheus.CounterVec
	samples  *prometheus.GaugeVec
	observed *prometheus.CounterVec
	sdErrors *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sentinel_scrape_up",
			Help: "1 if the target's last scrape succeeded, 0 otherwise.",
		}, []string{"job", "instance"}),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sentinel_scrape_duration_seconds",
			Help: "How long the target's last scrape took, reading and parsing included.",
		}, []string{"job", "instance"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_scrape_errors_total",
			Help: "Failed scrapes by reason: timeout, connection, tls, http_status, body_too_large, parse.",
		}, []string{"job", "instance", "reason"}),
		samples: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sentinel_scrape_samples",
			Help: "Samples in the target's last successful scrape.",
		}, []string{"job", "instance"}),
		observed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_scrape_observations_total",
			Help: "Bucket increases handed to the engine, by job.",
		}, []string{"job"}),
		sdErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_scrape_discovery_errors_total",
			Help: "Kubernetes discovery requests that failed, by job and role.",
		}, []string{"job", "role"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.up, m.duration, m.errors, m.samples, m.observed, m.sdErrors}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	cs := m.collectors()
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// forget drops a stopped target's series.
func (m *metrics) forget(job, instance string) {
	m.up.DeleteLabelValues(job, instance)
	m.duration.DeleteLabelValues(job, instance)
	m.samples.DeleteLabelValues(job, instance)
	m.errors.DeletePartialMatch(prometheus.Labels{"job": job, "instance": instance})
}
