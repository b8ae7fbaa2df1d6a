package ruletest

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/rules"
	"github.com/kube-sentinel/sentinel/sources/otlp"
	"github.com/kube-sentinel/sentinel/sources/scrape"
)

// simClock is the engine's clock in a test: it moves only when the runner
// moves it.
type simClock struct{ t time.Time }

func (c *simClock) Now() time.Time { return c.t }

const week = 7 * 24 * time.Hour

// origin returns the instant that stands for a test's time 0.
//
// promtool's time 0 is the Unix epoch, but a span ending there would have
// to start before it, which OTLP timestamps cannot say. So time 0 is a
// whole number of weeks after the epoch (at least a year, so that every
// span's start is after the epoch) that is also a multiple of every group's
// interval: evaluation times, the engine's time slots and weekly cron
// schedules then fall exactly where they would if time 0 were the epoch.
func origin(set *rules.Set, defaultInterval time.Duration) time.Time {
	l := int64(week)
	for _, g := range set.Groups {
		p := defaultInterval
		if !g.Interval.IsZero() {
			p = g.Interval.Period(time.Unix(0, 0).UTC())
		}
		if p <= 0 {
			continue
		}
		if n, ok := lcm(l, int64(p)); ok && n <= int64(50*365*24*time.Hour) {
			l = n
		}
	}
	minimum := int64(maxSpanDuration + week)
	return time.Unix(0, (minimum+l-1)/l*l).UTC()
}

func lcm(a, b int64) (int64, bool) {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	q := a / x
	if q != 0 && b > (1<<63-1)/q {
		return 0, false
	}
	return q * b, true
}

// simulation is one test run: a fresh engine fed generated spans on
// simulated time.
type simulation struct {
	tc       *testCase
	set      *rules.Set
	t0       time.Time
	clock    *simClock
	engine   *engine.Engine
	cursors  []*cursor
	nextSlot int64 // the slot of the next span to feed; -1 when none is left

	// input_series are scraped as a target would be: one exposition per
	// slot, through the scrape source's own bucket-delta code.
	exposition  *scrape.Exposition
	samples     [][]sample // per series, per slot
	seriesSlot  int64      // the next slot to scrape
	seriesSlots int64

	// evaluationInterval evaluates groups without an interval of their
	// own; the engine and the rule parser were given the same.
	evaluationInterval time.Duration
}

// result is what a test's alert_rule_test entry found.
type result struct {
	test     alertTest
	got      []engine.AlertStatus
	lastEval time.Duration // relative to time 0; -1 when nothing was evaluated yet
}

func newSimulation(tc *testCase, set *rules.Set, evaluationInterval time.Duration, external map[string]string) (*simulation, error) {
	s := &simulation{tc: tc, set: set, t0: origin(set, evaluationInterval), evaluationInterval: evaluationInterval}
	s.clock = &simClock{t: s.t0}
	e, err := engine.New(engine.Options{
		Clock:           s.clock,
		Registerer:      prometheus.NewRegistry(),
		ExternalLabels:  external,
		DefaultInterval: evaluationInterval,
	})
	if err != nil {
		return nil, err
	}
	e.Load(set)
	s.engine = e
	for i := range tc.spans {
		s.cursors = append(s.cursors, newCursor(i, &tc.spans[i]))
	}
	s.findNextSlot()
	s.exposition = scrape.NewExposition(nil)
	for _, in := range tc.series {
		var samples []sample
		eachSample(in.values, func(_ int64, x sample) bool {
			samples = append(samples, x)
			return true
		})
		s.samples = append(s.samples, samples)
		s.seriesSlots = max(s.seriesSlots, int64(len(samples)))
	}
	return s, nil
}

// run evaluates every group on its schedule from time 0 to the last
// eval_time, feeding each span before the first evaluation at or after its
// end, and records the firing alerts of each alert_rule_test entry after
// the last evaluation at or before its eval_time (promtool's rounding down
// to the evaluation grid).
func (s *simulation) run(ctx context.Context) ([]result, error) {
	results := make([]result, len(s.tc.alertTests))
	order := make([]int, len(s.tc.alertTests))
	var end time.Duration
	for i, at := range s.tc.alertTests {
		order[i] = i
		results[i].test = at
		end = max(end, at.evalTime)
	}
	sort.SliceStable(order, func(a, b int) bool {
		return s.tc.alertTests[order[a]].evalTime < s.tc.alertTests[order[b]].evalTime
	})

	type scheduled struct {
		name     string
		schedule rules.Schedule
		next     time.Time
	}
	var groups []*scheduled
	for _, g := range s.set.Groups {
		sc := g.Interval
		if sc.IsZero() {
			sc = rules.Every(s.evaluationInterval)
		}
		groups = append(groups, &scheduled{name: g.Name, schedule: sc, next: sc.Next(s.t0.Add(-1))})
	}

	lastEval := time.Duration(-1)
	checked := 0
	check := func(before time.Time) {
		for ; checked < len(order); checked++ {
			i := order[checked]
			at := s.tc.alertTests[i]
			if !s.t0.Add(at.evalTime).Before(before) {
				return
			}
			results[i].got = s.firing(at.alertname)
			results[i].lastEval = lastEval
		}
	}
	deadline := s.t0.Add(end)
	var due []string
	for {
		var now time.Time
		for _, g := range groups {
			if !g.next.IsZero() && (now.IsZero() || g.next.Before(now)) {
				now = g.next
			}
		}
		if now.IsZero() || now.After(deadline) {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		check(now)
		s.feedUntil(now)
		if err := s.scrapeUntil(now); err != nil {
			return nil, err
		}
		s.clock.t = now
		due = due[:0]
		for _, g := range groups {
			if g.next.Equal(now) {
				due = append(due, g.name)
				g.next = g.schedule.Next(now)
			}
		}
		s.engine.Evaluate(ctx, now, due...)
		lastEval = now.Sub(s.t0)
	}
	check(deadline.Add(1))
	return results, nil
}

// firing returns the firing alerts (pending ones are not compared) of the
// rules named alertname.
func (s *simulation) firing(alertname string) []engine.AlertStatus {
	var out []engine.AlertStatus
	for _, a := range s.engine.Alerts() {
		if a.State == engine.StateFiring && a.Labels["alertname"] == alertname {
			out = append(out, a)
		}
	}
	return out
}

func (s *simulation) slotTime(slot int64) time.Time {
	return s.t0.Add(time.Duration(slot) * s.tc.interval)
}

// feedUntil hands the engine every span that ends at or before t, a slot
// at a time, through the OTLP receivers' own conversion, with the clock
// at the slot's time as a live receiver would see it.
func (s *simulation) feedUntil(t time.Time) {
	for s.nextSlot >= 0 {
		end := s.slotTime(s.nextSlot)
		if end.After(t) {
			return
		}
		td := ptrace.NewTraces()
		for _, c := range s.cursors {
			if c.peek() == s.nextSlot {
				c.appendSpan(td, s.tc.name, end)
			}
		}
		s.clock.t = end
		otlp.ObserveTraces(td, s.engine)
		s.findNextSlot()
	}
}

// scrapeUntil renders every input_series sample of each slot at or before
// t as one text exposition and hands it to the scrape source's code, as if
// a target had been scraped then: "_" and "stale" leave the series out of
// that scrape.
func (s *simulation) scrapeUntil(t time.Time) error {
	var b strings.Builder
	for ; s.seriesSlot < s.seriesSlots; s.seriesSlot++ {
		at := s.slotTime(s.seriesSlot)
		if at.After(t) {
			return nil
		}
		b.Reset()
		for i, in := range s.tc.series {
			if s.seriesSlot >= int64(len(s.samples[i])) {
				continue
			}
			x := s.samples[i][s.seriesSlot]
			if x.kind != sampleValue {
				continue
			}
			writeSample(&b, in.metric, in.labels, x.value)
		}
		s.clock.t = at
		if _, err := s.exposition.Observe(at, []byte(b.String()), "text/plain; version=0.0.4", s.engine); err != nil {
			return fmt.Errorf("input_series at %s: %w", at.Sub(s.t0), err)
		}
	}
	return nil
}

func writeSample(b *strings.Builder, metric string, labels map[string]string, v float64) {
	b.WriteString(metric)
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(labels[k]))
		b.WriteByte('"')
	}
	b.WriteString("} ")
	b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	b.WriteByte('\n')
}

func (s *simulation) findNextSlot() {
	s.nextSlot = -1
	for _, c := range s.cursors {
		if p := c.peek(); p >= 0 && (s.nextSlot < 0 || p < s.nextSlot) {
			s.nextSlot = p
		}
	}
}

// cursor walks one input_spans entry's expanded durations.
type cursor struct {
	entry int
	in    *spanInput
	run   int
	k     int64 // position in runs[run]
	slot  int64 // the slot of that position

	resource, attributes pcommon.Map
	name                 string
}

func newCursor(entry int, in *spanInput) *cursor {
	c := &cursor{entry: entry, in: in, resource: pcommon.NewMap(), attributes: pcommon.NewMap()}
	inResource := map[string]bool{}
	for _, a := range in.resource {
		putAttribute(c.resource, a)
		inResource[a.key] = true
	}
	var method, path string
	for _, a := range in.attributes {
		// Exporters put service.name on the resource; accept it among the
		// span's attributes too, and move it where it belongs.
		if a.key == "service.name" && !inResource[a.key] {
			putAttribute(c.resource, a)
			continue
		}
		putAttribute(c.attributes, a)
		switch v, _ := a.value.(string); a.key {
		case "http.request.method", "http.method":
			method = v
		case "url.path", "http.target":
			path = v
		}
	}
	c.name = in.name
	if c.name == "" {
		c.name = "test span"
		if method != "" && path != "" {
			c.name = method + " " + path
		}
	}
	return c
}

func putAttribute(m pcommon.Map, a attribute) {
	switch v := a.value.(type) {
	case int64:
		m.PutInt(a.key, v)
	case float64:
		m.PutDouble(a.key, v)
	case bool:
		m.PutBool(a.key, v)
	case string:
		m.PutStr(a.key, v)
	default:
		m.PutStr(a.key, fmt.Sprint(v))
	}
}

// peek returns the slot of the entry's next span, or -1.
func (c *cursor) peek() int64 {
	for c.run < len(c.in.durations) {
		r := c.in.durations[c.run]
		if !r.skip && c.k < r.count {
			return c.slot
		}
		c.slot += r.count - c.k
		c.run++
		c.k = 0
	}
	return -1
}

// appendSpan adds the entry's next span, ending at end, to td.
func (c *cursor) appendSpan(td ptrace.Traces, testName string, end time.Time) {
	d := c.in.durations[c.run].at(c.k)
	traceID, spanID := spanIdentity(testName, c.entry, c.slot)
	c.k++
	c.slot++

	rs := td.ResourceSpans().AppendEmpty()
	c.resource.CopyTo(rs.Resource().Attributes())
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("sentinel/ruletest")
	span := ss.Spans().AppendEmpty()
	span.SetTraceID(pcommon.TraceID(traceID))
	span.SetSpanID(pcommon.SpanID(spanID))
	span.SetName(c.name)
	span.SetKind(c.in.kind)
	span.Status().SetCode(c.in.status)
	span.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-d)))
	span.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
	c.attributes.CopyTo(span.Attributes())
}
