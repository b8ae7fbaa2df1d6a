package scrape

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/kube-sentinel/sentinel/engine"
)

// fallbackContentType is how a body without a usable Content-Type is read:
// the Prometheus text format, which is what a bare exporter serves.
const fallbackContentType = "text/plain"

// staleAfter is how old the previous successful scrape of a series may be
// for the next scrape to still turn the series' increase into
// observations: 5 minutes, Prometheus's default lookback delta
// (--query.lookback-delta), the age past which Prometheus no longer treats
// a sample as current. A target that was down longer starts over with a
// baseline, so that its whole outage's requests are not dumped into the
// window of the scrape that finds it back (which would page on a burst
// that never happened, or hide the outage's real timing); a failed scrape
// or two in between is still covered by the next success, as rate()
// covers a gap between two samples.
const staleAfter = 5 * time.Minute

// staleness is the bound for a job scraped every interval: staleAfter, or
// three intervals when that is longer, so that a job scraped every 5m or
// more (for which Prometheus too needs a longer lookback delta) is not a
// baseline at every scrape, and one failed scrape is always covered.
func staleness(interval time.Duration) time.Duration {
	return max(staleAfter, 3*interval)
}

// histograms follows the classic histograms and the counters of one target
// from scrape to scrape and turns their increases into observations. It is
// used by one goroutine at a time.
type histograms struct {
	series map[uint64]*histState
	gen    uint64
	// counters are the request counters (see counter.go).
	counters map[uint64]*counterState
	// last is the time of the previous successful scrape (zero before the
	// first); staleAfter is the staleness bound, 0 for none.
	last       time.Time
	staleAfter time.Duration

	// scratch, reused across scrapes
	symbols *labels.SymbolTable
	cur     []curSeries
	curIdx  map[uint64]int
	curCtr  []curCounter
	lset    labels.Labels
	ex      exemplar.Exemplar
	hashBuf []byte
	obs     engine.Observation
	view    seriesLabels
}

// histState is what the previous scrape showed of one series.
type histState struct {
	lset      labels.Labels // without le; __name__ is the base name
	base      string
	bounds    []float64 // sorted upper bounds, +Inf last when present
	cum       []float64 // cumulative counts
	count     float64   // _count, NaN when not exposed
	exemplars []exemplarSeen
	gen       uint64
}

// curSeries is one series of the scrape being read.
type curSeries struct {
	hash      uint64
	lset      labels.Labels // of the first bucket sample (with le and _bucket)
	base      string
	buckets   []bucket
	count     float64
	hasCount  bool
	malformed bool
}

type bucket struct {
	le  float64
	v   float64
	ex  exemplarSeen
	idx int
}

// exemplarSeen is an exemplar as far as telling it from the previous one
// and attaching it to an observation goes.
type exemplarSeen struct {
	ok      bool
	value   float64
	ts      int64
	traceID [16]byte
	spanID  [8]byte
}

// newHistograms starts with no history; a scrape after a gap longer than
// staleAfter (0: never) is a new baseline.
func newHistograms(staleAfter time.Duration) *histograms {
	return &histograms{
		series:     map[uint64]*histState{},
		counters:   map[uint64]*counterState{},
		symbols:    labels.NewSymbolTable(),
		curIdx:     map[uint64]int{},
		staleAfter: staleAfter,
	}
}

// errParse marks a body that could not be read; the scrape is then
// discarded whole, as Prometheus does.
var errParse = errors.New("parse")

// parse reads a body into h.cur without touching the state.
func (h *histograms) parse(body []byte, contentType string) (samples int, err error) {
	p, err := textparse.New(body, contentType, h.symbols, textparse.ParserOptions{
		FallbackContentType:     fallbackContentType,
		OpenMetricsSkipSTSeries: true,
	})
	if p == nil {
		return 0, fmt.Errorf("%w: %v", errParse, err)
	}
	for i := range h.cur {
		h.cur[i].buckets = h.cur[i].buckets[:0]
	}
	h.cur = h.cur[:0]
	clear(h.curIdx)
	h.curCtr = h.curCtr[:0]

	var famName []byte
	famType := model.MetricTypeUnknown
	for {
		entry, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return samples, fmt.Errorf("%w: %v", errParse, err)
		}
		switch entry {
		case textparse.EntryType:
			name, typ := p.Type()
			famName = append(famName[:0], name...)
			famType = typ
			continue
		case textparse.EntrySeries:
		default:
			continue
		}
		samples++
		series, _, v := p.Series()
		name := metricName(series)
		if isCounter(name, famName, famType) {
			h.addCounter(p, series, v)
			continue
		}
		var base []byte
		isBucket := false
		switch {
		case bytes.HasSuffix(name, []byte("_bucket")):
			base, isBucket = name[:len(name)-len("_bucket")], true
		case bytes.HasSuffix(name, []byte("_count")):
			base = name[:len(name)-len("_count")]
		default:
			continue
		}
		if bytes.Equal(base, famName) {
			if famType != model.MetricTypeHistogram {
				continue // a summary's _count, a gauge histogram
			}
		} else if bytes.Equal(name, famName) || !isBucket {
			// A family declared under the full name is not a histogram;
			// an untyped _count alone says nothing.
			continue
		}
		p.Labels(&h.lset)
		le := h.lset.Get(model.BucketLabel)
		if isBucket && le == "" {
			continue
		}
		var hash uint64
		hash, h.hashBuf = h.lset.HashWithoutLabels(h.hashBuf, model.BucketLabel)
		hash ^= xxhash.Sum64(base) * 0x9E3779B97F4A7C15
		idx, ok := h.curIdx[hash]
		if !ok {
			if !isBucket {
				continue // a _count before its buckets: unusual, ignored
			}
			idx = len(h.cur)
			if idx < cap(h.cur) {
				h.cur = h.cur[:idx+1]
			} else {
				h.cur = append(h.cur, curSeries{})
			}
			c := &h.cur[idx]
			c.hash, c.lset, c.base = hash, h.lset, string(base)
			c.count, c.hasCount, c.malformed = 0, false, false
			h.curIdx[hash] = idx
		}
		c := &h.cur[idx]
		if !isBucket {
			c.count, c.hasCount = v, true
			continue
		}
		bound, perr := parseBound(le)
		if perr != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			c.malformed = true
			continue
		}
		b := bucket{le: bound, v: v, idx: len(c.buckets)}
		for p.Exemplar(&h.ex) {
			if !b.ex.ok { // OpenMetrics allows one per sample; keep the first
				b.ex = toExemplar(&h.ex)
			}
		}
		c.buckets = append(c.buckets, b)
	}
	return samples, nil
}

// metricName is the name at the start of a series' text, or nil when the
// name is quoted inside the braces (UTF-8 names; not histograms we read).
func metricName(series []byte) []byte {
	if i := bytes.IndexAny(series, "{ "); i >= 0 {
		return series[:i]
	}
	return series
}

func parseBound(le string) (float64, error) {
	switch le {
	case "+Inf", "Inf", "+inf", "inf":
		return math.Inf(1), nil
	}
	f, err := strconv.ParseFloat(le, 64)
	if err != nil || math.IsNaN(f) {
		return 0, fmt.Errorf("bad le %q", le)
	}
	return f, nil
}

func toExemplar(e *exemplar.Exemplar) exemplarSeen {
	out := exemplarSeen{ok: true, value: e.Value}
	if e.HasTs {
		out.ts = e.Ts
	}
	decodeID(out.traceID[:], e.Labels.Get("trace_id"))
	decodeID(out.spanID[:], e.Labels.Get("span_id"))
	return out
}

// decodeID decodes a hex ID right-aligned into dst (a 64-bit trace ID fits
// a 128-bit one, as OpenTelemetry maps them); a bad ID stays zero.
func decodeID(dst []byte, s string) {
	if s == "" || len(s)%2 != 0 || len(s) > 2*len(dst) {
		return
	}
	var tmp [16]byte
	n, err := hex.Decode(tmp[:], []byte(s))
	if err != nil {
		return
	}
	copy(dst[len(dst)-n:], tmp[:n])
}

// apply compares the parsed scrape with the previous one, emits the bucket
// and counter increases at time now with target's labels, and makes this
// scrape the new previous one. Series the scrape no longer shows are
// forgotten. When the previous successful scrape is older than the
// staleness bound, every series is a new baseline.
//
// Every series kept from one apply to the next was in the previous
// successful scrape (the others are forgotten), so h.last is the time of
// the previous successful scrape of each of them.
func (h *histograms) apply(now time.Time, target *targetLabels, observer engine.Observer) (observations int) {
	h.gen++
	stale := h.staleAfter > 0 && !h.last.IsZero() && now.Sub(h.last) > h.staleAfter
	h.last = now
	observations = h.applyCounters(now, stale, target, observer)
	for i := range h.cur {
		c := &h.cur[i]
		if c.malformed || len(c.buckets) == 0 {
			continue
		}
		slices.SortFunc(c.buckets, func(a, b bucket) int {
			if a.le != b.le {
				if a.le < b.le {
					return -1
				}
				return 1
			}
			return a.idx - b.idx
		})
		if hasDuplicateBound(c.buckets) {
			continue // unreadable: the series is forgotten
		}
		prev := h.series[c.hash]
		if stale || prev == nil || prev.base != c.base || !sameBounds(prev.bounds, c.buckets) {
			h.baseline(c, prev)
			continue
		}
		reset := c.hasCount && !math.IsNaN(prev.count) && c.count < prev.count
		for j, b := range c.buckets {
			if b.v < prev.cum[j] {
				reset = true
				break
			}
		}
		if !reset {
			observations += h.emit(c, prev, now, target, observer)
		}
		h.store(prev, c)
	}
	for k, s := range h.series {
		if s.gen != h.gen {
			delete(h.series, k)
		}
	}
	return observations
}

func hasDuplicateBound(buckets []bucket) bool {
	for i := 1; i < len(buckets); i++ {
		if buckets[i].le == buckets[i-1].le {
			return true
		}
	}
	return false
}

func sameBounds(bounds []float64, buckets []bucket) bool {
	if len(bounds) != len(buckets) {
		return false
	}
	for i, b := range buckets {
		if bounds[i] != b.le {
			return false
		}
	}
	return true
}

func (h *histograms) baseline(c *curSeries, prev *histState) {
	if prev == nil || prev.base != c.base {
		prev = &histState{}
		h.series[c.hash] = prev
	}
	prev.base = c.base
	prev.lset = labels.NewBuilder(c.lset).Del(model.BucketLabel).Set(model.MetricNameLabel, c.base).Labels()
	prev.bounds = prev.bounds[:0]
	for _, b := range c.buckets {
		prev.bounds = append(prev.bounds, b.le)
	}
	h.store(prev, c)
}

func (h *histograms) store(s *histState, c *curSeries) {
	s.cum = s.cum[:0]
	s.exemplars = s.exemplars[:0]
	for _, b := range c.buckets {
		s.cum = append(s.cum, b.v)
		s.exemplars = append(s.exemplars, b.ex)
	}
	s.count = math.NaN()
	if c.hasCount {
		s.count = c.count
	}
	s.gen = h.gen
}

// emit sends one observation per bucket whose own (non-cumulative) count
// grew. Cumulative increases are made monotonic first, as
// histogram_quantile does with buckets that a non-atomic exposition left
// out of order.
func (h *histograms) emit(c *curSeries, prev *histState, now time.Time, target *targetLabels, observer engine.Observer) (n int) {
	h.view = seriesLabels{series: &prev.lset, target: target}
	var running, emitted uint64
	lower := 0.0
	for j, b := range c.buckets {
		inc := uint64(math.Round(b.v - prev.cum[j]))
		running = max(running, inc)
		d := running - emitted
		emitted = running
		le := b.le
		if d > 0 {
			dur := le
			if math.IsInf(le, 1) {
				dur = lower
			}
			h.obs = engine.Observation{
				Source:     engine.SourceMetrics,
				End:        now,
				Count:      d,
				UpperBound: le,
				Bounds:     prev.bounds,
				Labels:     &h.view,
			}
			if ex := b.ex; ex.ok && ex != prev.exemplars[j] {
				dur = ex.value
				h.obs.TraceID, h.obs.SpanID = ex.traceID, ex.spanID
			}
			h.obs.Duration = secondsToDuration(dur)
			observer.Observe(&h.obs)
			n++
		}
		if !math.IsInf(le, 1) {
			lower = le
		}
	}
	return n
}

func secondsToDuration(s float64) time.Duration {
	if s <= 0 || math.IsNaN(s) {
		return 0
	}
	if s >= float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}

// seriesLabels is the label view of a metrics observation: the target's
// labels (job, instance, discovered and static labels) win over the
// series' own, as with Prometheus's honor_labels: false.
type seriesLabels struct {
	series *labels.Labels
	target *targetLabels
}

func (l *seriesLabels) Get(name string) (string, bool) {
	if v, ok := l.target.get(name); ok {
		return v, true
	}
	if name == model.BucketLabel {
		return "", false
	}
	v := l.series.Get(name)
	return v, v != ""
}

// targetLabels are a target's labels, sorted by name.
type targetLabels struct {
	names, values []string
}

func newTargetLabels(m map[string]string) *targetLabels {
	t := &targetLabels{}
	for k := range m {
		t.names = append(t.names, k)
	}
	slices.Sort(t.names)
	for _, k := range t.names {
		t.values = append(t.values, m[k])
	}
	return t
}

func (t *targetLabels) get(name string) (string, bool) {
	for i, n := range t.names {
		if n == name {
			return t.values[i], true
		}
	}
	return "", false
}

func (t *targetLabels) Map() map[string]string {
	m := make(map[string]string, len(t.names))
	for i, n := range t.names {
		m[n] = t.values[i]
	}
	return m
}
