package scrape

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/kube-sentinel/sentinel/config"
)

// acceptHeader is what Prometheus sends by default (OpenMetrics first, for
// exemplars; then the text formats), with legacy-name escaping.
const acceptHeader = "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5," +
	"application/openmetrics-text;version=0.0.1;q=0.4," +
	"text/plain;version=1.0.0;escaping=underscores;q=0.3," +
	"text/plain;version=0.0.4;q=0.2," +
	"*/*;q=0.1"

const userAgent = "sentinel-scraper"

// Error reasons, the reason label of sentinel_scrape_errors_total.
const (
	ReasonTimeout      = "timeout"
	ReasonConnection   = "connection"
	ReasonTLS          = "tls"
	ReasonHTTPStatus   = "http_status"
	ReasonBodyTooLarge = "body_too_large"
	ReasonParse        = "parse"
)

// job runs the targets of one scrape config.
type job struct {
	s      *Scraper
	cfg    config.ScrapeConfig
	client *http.Client

	cancel context.CancelFunc
	wg     sync.WaitGroup // discovery loops

	mu       sync.Mutex
	ctx      context.Context
	static   []targetSpec
	sd       [][]targetSpec // latest of each kubernetes_sd_config
	targets  map[string]*target
	stopping bool
}

// targetSpec is a target before it runs: where to scrape and its labels.
type targetSpec struct {
	address string
	labels  map[string]string // besides job and instance
}

func newJob(s *Scraper, cfg config.ScrapeConfig, client *http.Client) *job {
	j := &job{s: s, cfg: cfg, client: client, targets: map[string]*target{}, sd: make([][]targetSpec, len(cfg.KubernetesSDConfigs))}
	for _, sc := range cfg.StaticConfigs {
		for _, addr := range sc.Targets {
			j.static = append(j.static, targetSpec{address: addr, labels: sc.Labels})
		}
	}
	return j
}

func (j *job) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	j.mu.Lock()
	j.ctx, j.cancel = ctx, cancel
	j.mu.Unlock()
	j.sync()
	for i, kc := range j.cfg.KubernetesSDConfigs {
		d, err := newDiscoverer(kc, j.cfg.JobName)
		if err != nil {
			j.s.log.Error("kubernetes discovery not started", "job", j.cfg.JobName, "role", kc.Role, "err", err)
			continue
		}
		j.wg.Add(1)
		go func() {
			defer j.wg.Done()
			j.discover(ctx, i, d)
		}()
	}
}

func (j *job) discover(ctx context.Context, i int, d *discoverer) {
	t := time.NewTicker(j.s.opts.DiscoveryInterval)
	defer t.Stop()
	for {
		specs, err := d.refresh(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			j.s.metrics.sdErrors.WithLabelValues(j.cfg.JobName, d.cfg.Role).Inc()
			j.s.log.Warn("kubernetes discovery failed; keeping the previous targets", "job", j.cfg.JobName, "role", d.cfg.Role, "err", err)
		} else {
			j.mu.Lock()
			j.sd[i] = specs
			j.mu.Unlock()
			j.sync()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sync starts the targets that appeared and stops those that went.
func (j *job) sync() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stopping {
		return
	}
	want := map[string]targetSpec{}
	for _, sp := range j.static {
		want[j.scrapeURL(sp.address)] = sp
	}
	for _, list := range j.sd {
		for _, sp := range list {
			want[j.scrapeURL(sp.address)] = sp
		}
	}
	for u, t := range j.targets {
		if sp, ok := want[u]; !ok || !sameLabels(sp.labels, t.spec.labels) {
			t.stop()
			delete(j.targets, u)
		}
	}
	for u, sp := range want {
		if _, ok := j.targets[u]; ok {
			continue
		}
		t := newTarget(j, u, sp)
		j.targets[u] = t
		t.start(j.ctx)
	}
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (j *job) scrapeURL(address string) string {
	u := url.URL{Scheme: j.cfg.Scheme, Host: address, Path: j.cfg.MetricsPath}
	return u.String()
}

func (j *job) stop() {
	j.mu.Lock()
	j.stopping = true
	cancel := j.cancel
	targets := j.targets
	j.targets = map[string]*target{}
	j.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	j.wg.Wait()
	for _, t := range targets {
		t.stop()
	}
}

func (j *job) statuses() []TargetStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]TargetStatus, 0, len(j.targets))
	for _, t := range j.targets {
		out = append(out, t.status())
	}
	return out
}

// target is one scrape loop.
type target struct {
	job      *job
	url      string
	spec     targetSpec
	instance string
	labels   *targetLabels
	hists    *histograms // only the loop touches it

	cancel context.CancelFunc
	done   chan struct{}

	mu           sync.Mutex
	health       string
	lastError    string
	lastReason   string
	lastScrape   time.Time
	lastDuration time.Duration
	scrapes      uint64
}

func newTarget(j *job, u string, sp targetSpec) *target {
	m := map[string]string{}
	for k, v := range sp.labels {
		m[k] = v
	}
	m["job"] = j.cfg.JobName
	m["instance"] = sp.address
	return &target{
		job: j, url: u, spec: sp, instance: sp.address,
		labels: newTargetLabels(m), hists: newHistograms(staleness(j.cfg.ScrapeInterval)), health: HealthUnknown,
	}
}

func (t *target) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	t.cancel, t.done = cancel, make(chan struct{})
	go t.run(ctx)
}

func (t *target) stop() {
	t.cancel()
	<-t.done
	t.job.s.metrics.forget(t.job.cfg.JobName, t.instance)
}

// offset spreads targets over the interval, the same for a target from run
// to run, as Prometheus does, so that a thousand targets never scrape at once.
func (t *target) offset(interval time.Duration) time.Duration {
	h := fnv.New64a()
	_, _ = io.WriteString(h, t.job.cfg.JobName+"\x00"+t.url)
	return time.Duration(h.Sum64() % uint64(interval))
}

func (t *target) run(ctx context.Context) {
	defer close(t.done)
	interval := t.job.cfg.ScrapeInterval
	wait := time.NewTimer(t.offset(interval))
	select {
	case <-ctx.Done():
		wait.Stop()
		return
	case <-wait.C:
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		t.scrape(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// scrape does one scrape and records its outcome.
func (t *target) scrape(ctx context.Context) {
	s := t.job.s
	start := s.opts.Now()
	began := time.Now()
	samples, observations, reason, err := t.fetchAndObserve(ctx, start)
	took := time.Since(began)
	if ctx.Err() != nil && err != nil {
		return // stopping: not the target's fault
	}
	job := t.job.cfg.JobName
	m := s.metrics
	m.duration.WithLabelValues(job, t.instance).Set(took.Seconds())
	// Metrics first, then the status: whoever sees a scrape counted in
	// the status finds it in the metrics too.
	if err != nil {
		m.up.WithLabelValues(job, t.instance).Set(0)
		m.errors.WithLabelValues(job, t.instance, reason).Inc()
	} else {
		m.up.WithLabelValues(job, t.instance).Set(1)
		m.samples.WithLabelValues(job, t.instance).Set(float64(samples))
		if observations > 0 {
			m.observed.WithLabelValues(job).Add(float64(observations))
		}
	}
	t.mu.Lock()
	t.lastScrape, t.lastDuration = start, took
	t.scrapes++
	if err != nil {
		t.health, t.lastError, t.lastReason = HealthBad, err.Error(), reason
	} else {
		t.health, t.lastError, t.lastReason = HealthGood, "", ""
	}
	t.mu.Unlock()
	if err != nil {
		s.log.Debug("scrape failed", "job", job, "target", t.url, "reason", reason, "err", err)
	}
}

var errTooLarge = errors.New("body exceeds the size limit")

func (t *target) fetchAndObserve(ctx context.Context, now time.Time) (samples, observations int, reason string, err error) {
	s := t.job.s
	timeout := t.job.cfg.ScrapeTimeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, http.NoBody)
	if err != nil {
		return 0, 0, ReasonConnection, err
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64))
	resp, err := t.job.client.Do(req)
	if err != nil {
		return 0, 0, classify(ctx, err), err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, ReasonHTTPStatus, fmt.Errorf("server returned HTTP status %s", resp.Status)
	}
	buf, _ := s.bodies.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer func() {
		if buf.Cap() <= 64<<20 {
			buf.Reset()
			s.bodies.Put(buf)
		}
	}()
	buf.Reset()
	limit := s.opts.MaxBodyBytes
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, 0, classify(ctx, err), fmt.Errorf("reading body: %w", err)
	}
	if n > limit {
		return 0, 0, ReasonBodyTooLarge, fmt.Errorf("%w of %d bytes", errTooLarge, limit)
	}
	samples, err = t.hists.parse(buf.Bytes(), resp.Header.Get("Content-Type"))
	if err != nil {
		return samples, 0, ReasonParse, err
	}
	observations = t.hists.apply(now, t.labels, s.opts.Observer)
	return samples, observations, "", nil
}

// classify names why a request failed.
func classify(ctx context.Context, err error) string {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
		header           tls.RecordHeaderError
		alert            tls.AlertError
		netErr           net.Error
	)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &invalid),
		errors.As(err, &verify), errors.As(err, &header), errors.As(err, &alert):
		return ReasonTLS
	case errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout
	}
	return ReasonConnection
}

func (t *target) status() TargetStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	labels := t.labels.Map()
	discovered := map[string]string{
		"__address__":      t.spec.address,
		"__scheme__":       t.job.cfg.Scheme,
		"__metrics_path__": t.job.cfg.MetricsPath,
		"job":              t.job.cfg.JobName,
	}
	for k, v := range t.spec.labels {
		discovered[k] = v
	}
	return TargetStatus{
		DiscoveredLabels:   discovered,
		Labels:             labels,
		ScrapePool:         t.job.cfg.JobName,
		ScrapeURL:          t.url,
		GlobalURL:          t.url,
		LastError:          t.lastError,
		LastErrorReason:    t.lastReason,
		LastScrape:         t.lastScrape,
		LastScrapeDuration: t.lastDuration.Seconds(),
		Health:             t.health,
		ScrapeInterval:     t.job.cfg.ScrapeInterval.String(),
		ScrapeTimeout:      t.job.cfg.ScrapeTimeout.String(),
		Scrapes:            t.scrapes,
	}
}
