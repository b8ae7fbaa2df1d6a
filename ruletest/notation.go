package ruletest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kube-sentinel/sentinel/internal/yamlpos"
)

// maxSlots bounds one expanded list: far beyond any useful test (a day at
// 1s is 86,400), small enough that a typo such as "1s x 99999999999" is an
// error rather than an hour of simulation.
const maxSlots = 100_000_000

// notationError is a problem at a byte offset of a durations or values
// string; the test-file parser turns the offset into a column.
type notationError struct {
	Offset int
	Msg    string
}

func (e *notationError) Error() string { return fmt.Sprintf("at offset %d: %s", e.Offset, e.Msg) }

func notationErrorf(off int, format string, args ...any) *notationError {
	return &notationError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// token is one whitespace-separated word of a notation string.
type token struct {
	text string
	off  int
}

func tokenize(s string) []token {
	var out []token
	start := -1
	for i := 0; i <= len(s); i++ {
		space := i == len(s) || s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'
		switch {
		case space && start >= 0:
			out = append(out, token{s[start:i], start})
			start = -1
		case !space && start < 0:
			start = i
		}
	}
	return out
}

// item is one term of promtool's expansion notation before it is expanded:
// base (with its offset), an optional "+step"/"-step", an optional "x N".
type item struct {
	base, step string
	baseOff    int
	stepOff    int
	stepNeg    bool
	hasCount   bool
	count      int64
	countOff   int
}

// scanItems splits s into items. A repetition may be written "AxN",
// "A xN" or "A x N", so "50ms x 300" and promtool's "0+10x600" both read.
func scanItems(s string, splitStep func(string) int) ([]item, error) {
	toks := tokenize(s)
	var items []item
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.text == "x" || isRepeat(t.text) {
			if len(items) == 0 || items[len(items)-1].hasCount {
				return nil, notationErrorf(t.off, "%q repeats nothing: write it right after a value, as in \"50ms x 3\"", t.text)
			}
			countText, countOff := t.text[1:], t.off+1
			if t.text == "x" {
				if i+1 >= len(toks) {
					return nil, notationErrorf(t.off, "\"x\" needs a count after it, as in \"50ms x 3\"")
				}
				i++
				countText, countOff = toks[i].text, toks[i].off
			}
			n, err := parseCount(countText, countOff)
			if err != nil {
				return nil, err
			}
			it := &items[len(items)-1]
			it.hasCount, it.count, it.countOff = true, n, countOff
			continue
		}
		it := item{base: t.text, baseOff: t.off}
		if x := strings.IndexByte(t.text, 'x'); x >= 0 {
			if x == 0 {
				return nil, notationErrorf(t.off, "%q: expected a value before \"x\"", t.text)
			}
			n, err := parseCount(t.text[x+1:], t.off+x+1)
			if err != nil {
				return nil, err
			}
			it.base, it.hasCount, it.count, it.countOff = t.text[:x], true, n, t.off+x+1
		}
		if k := splitStep(it.base); k > 0 {
			it.stepNeg = it.base[k] == '-'
			it.step, it.stepOff = it.base[k+1:], it.baseOff+k+1
			it.base = it.base[:k]
			if it.step == "" {
				return nil, notationErrorf(it.stepOff-1, "%q: expected a step after %q", t.text, it.base+string(t.text[k]))
			}
		}
		items = append(items, it)
	}
	return items, nil
}

func isRepeat(s string) bool {
	if len(s) < 2 || s[0] != 'x' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func parseCount(s string, off int) (int64, error) {
	if s == "" {
		return 0, notationErrorf(off, "\"x\" needs a count after it, as in \"50ms x 3\"")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, notationErrorf(off, "count %q is not a whole number", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n >= maxSlots {
		return 0, notationErrorf(off, "count %q is too large (at most %d)", s, maxSlots-1)
	}
	return n, nil
}

// durationRun is a run of slots of a durations list: count slots, the
// first of duration start and each next one step longer; skipped runs
// stand for slots with no span.
type durationRun struct {
	skip        bool
	start, step time.Duration
	count       int64
}

func (r durationRun) at(k int64) time.Duration { return r.start + time.Duration(k)*r.step }

// expandDurations reads the durations notation of input_spans, promtool's
// expansion over durations: "D" is one span, "D x N" is N+1 spans of D,
// "D+S x N" / "D-S x N" N+1 spans growing (shrinking) by S, "_" skips one
// slot and, as the contract says, "_ x N" skips N+1. D is a duration in
// Prometheus or Go notation (3s, 250ms, 1.5s, 0.5ms).
func expandDurations(s string) ([]durationRun, int64, error) {
	items, err := scanItems(s, splitDurationStep)
	if err != nil {
		return nil, 0, err
	}
	if len(items) == 0 {
		return nil, 0, notationErrorf(0, "no durations: write e.g. \"50ms x 300 3s x 300\"")
	}
	var runs []durationRun
	var total int64
	for _, it := range items {
		r := durationRun{count: 1}
		if it.hasCount {
			r.count = it.count + 1
		}
		switch {
		case it.base == "_":
			if it.step != "" {
				return nil, 0, notationErrorf(it.baseOff, "\"_\" cannot have a step")
			}
			r.skip = true
		default:
			d, err := yamlpos.ParseDuration(it.base)
			if err != nil {
				return nil, 0, notationErrorf(it.baseOff, "%v", err)
			}
			r.start = d
			if it.step != "" {
				if !it.hasCount {
					return nil, 0, notationErrorf(it.baseOff, "%q: a step needs a count, as in \"100ms+10ms x 5\"", it.base+"±"+it.step)
				}
				st, err := yamlpos.ParseDuration(it.step)
				if err != nil {
					return nil, 0, notationErrorf(it.stepOff, "step: %v", err)
				}
				if it.stepNeg {
					st = -st
				}
				r.step = st
				last := float64(d) + float64(it.count)*float64(st)
				if last < 0 {
					return nil, 0, notationErrorf(it.baseOff, "durations would become negative after %s", d)
				}
				if last > float64(maxSpanDuration) {
					return nil, 0, notationErrorf(it.baseOff, "durations would grow beyond %s", maxSpanDuration)
				}
			}
			if d > maxSpanDuration {
				return nil, 0, notationErrorf(it.baseOff, "a span cannot last longer than %s", maxSpanDuration)
			}
		}
		total += r.count
		if total > maxSlots {
			return nil, 0, notationErrorf(it.baseOff, "the list expands to more than %d slots", maxSlots)
		}
		if n := len(runs); n > 0 && r.skip && runs[n-1].skip {
			runs[n-1].count += r.count
			continue
		}
		runs = append(runs, r)
	}
	return runs, total, nil
}

// splitDurationStep finds the sign that starts a step in "D+S": a duration
// holds no sign of its own.
func splitDurationStep(b string) int {
	for i := 1; i < len(b); i++ {
		if b[i] == '+' || b[i] == '-' {
			return i
		}
	}
	return -1
}

// maxSpanDuration bounds a generated span's duration, so that its start
// (end minus duration) never falls before the simulation's time 0.
const maxSpanDuration = 365 * 24 * time.Hour

// sampleKind is what one slot of a series holds.
type sampleKind uint8

const (
	sampleValue   sampleKind = iota
	sampleOmitted            // "_": no sample
	sampleStale              // "stale": a staleness marker
)

// seriesRun is a run of samples of input_series values.
type seriesRun struct {
	kind        sampleKind
	start, step float64
	count       int64
}

// sample is one expanded slot of a series.
type sample struct {
	kind  sampleKind
	value float64
}

// expandSeries reads promtool's values notation exactly as promtool does:
// "a" one sample, "a+bxn" / "a-bxn" n+1 samples a, a±b, ..., a±nb, "axn"
// n+1 samples of a, "_" no sample, "_xn" n slots without a sample (n, not
// n+1, as in promtool), "stale" a staleness marker. Numbers may be
// signed, fractional, exponents, Inf or NaN.
func expandSeries(s string) ([]seriesRun, int64, error) {
	items, err := scanItems(s, splitNumberStep)
	if err != nil {
		return nil, 0, err
	}
	var runs []seriesRun
	var total int64
	for _, it := range items {
		r := seriesRun{count: 1}
		switch {
		case it.base == "_":
			if it.step != "" {
				return nil, 0, notationErrorf(it.baseOff, "\"_\" cannot have a step")
			}
			r.kind = sampleOmitted
			if it.hasCount {
				r.count = it.count
			}
		case it.base == "stale":
			if it.step != "" || it.hasCount {
				return nil, 0, notationErrorf(it.baseOff, "\"stale\" is one staleness marker; it takes no step or count")
			}
			r.kind = sampleStale
		default:
			v, err := parseSampleValue(it.base)
			if err != nil {
				return nil, 0, notationErrorf(it.baseOff, "%v", err)
			}
			r.start = v
			if it.hasCount {
				r.count = it.count + 1
			}
			if it.step != "" {
				if !it.hasCount {
					return nil, 0, notationErrorf(it.baseOff, "%q needs a count, as in \"0+10x60\"", s[it.baseOff:it.stepOff+len(it.step)])
				}
				st, err := parseSampleValue(it.step)
				if err != nil {
					return nil, 0, notationErrorf(it.stepOff, "step: %v", err)
				}
				if it.stepNeg {
					st = -st
				}
				r.step = st
			}
		}
		total += r.count
		if total > maxSlots {
			return nil, 0, notationErrorf(it.baseOff, "the list expands to more than %d samples", maxSlots)
		}
		if r.count > 0 {
			runs = append(runs, r)
		}
	}
	return runs, total, nil
}

// splitNumberStep finds the sign that starts a step in "a+b" / "a-b": not
// a leading sign, nor the sign of an exponent.
func splitNumberStep(b string) int {
	for i := 1; i < len(b); i++ {
		if (b[i] == '+' || b[i] == '-') && b[i-1] != 'e' && b[i-1] != 'E' {
			return i
		}
	}
	return -1
}

func parseSampleValue(s string) (float64, error) {
	switch strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "+"), "-")) {
	case "inf":
		if strings.HasPrefix(s, "-") {
			return math.Inf(-1), nil
		}
		return math.Inf(1), nil
	case "nan":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || strings.ContainsAny(s, "_xXpP") || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

// each calls f for every slot of the runs, in order, until f returns false.
func eachSample(runs []seriesRun, f func(i int64, s sample) bool) {
	var i int64
	for _, r := range runs {
		for k := int64(0); k < r.count; k++ {
			s := sample{kind: r.kind}
			if r.kind == sampleValue {
				s.value = r.start + float64(k)*r.step
			}
			if !f(i, s) {
				return
			}
			i++
		}
	}
}

// parseSeries reads an input_series selector as promtool does:
// `name{label="value", ...}`, or `{__name__="name", ...}`. Values are
// quoted with ", ' or ` and Go escapes.
func parseSeries(s string) (name string, labels map[string]string, err error) {
	i := skipSpace(s, 0)
	start := i
	for i < len(s) && isNameChar(s[i], i == start, true) {
		i++
	}
	name = s[start:i]
	labels = map[string]string{}
	i = skipSpace(s, i)
	if i < len(s) && s[i] == '{' {
		i = skipSpace(s, i+1)
		for i < len(s) && s[i] != '}' {
			ls := i
			for i < len(s) && isNameChar(s[i], i == ls, false) {
				i++
			}
			label := s[ls:i]
			if label == "" {
				return "", nil, notationErrorf(ls, "expected a label name")
			}
			i = skipSpace(s, i)
			if i >= len(s) || s[i] != '=' || (i+1 < len(s) && (s[i+1] == '~' || s[i+1] == '=')) {
				return "", nil, notationErrorf(i, "expected = after label %q (a series names values; it does not match them)", label)
			}
			i = skipSpace(s, i+1)
			vs := i
			if i >= len(s) || (s[i] != '"' && s[i] != '\'' && s[i] != '`') {
				return "", nil, notationErrorf(i, "expected a quoted value for label %q", label)
			}
			q := s[i]
			for i++; i < len(s) && s[i] != q; i++ {
				if s[i] == '\\' && q != '`' {
					i++
				}
			}
			if i >= len(s) {
				return "", nil, notationErrorf(vs, "value of label %q is not closed", label)
			}
			i++
			raw := s[vs:i]
			if q == '\'' {
				raw = `"` + strings.ReplaceAll(strings.ReplaceAll(raw[1:len(raw)-1], `\'`, `'`), `"`, `\"`) + `"`
			}
			v, uerr := strconv.Unquote(raw)
			if uerr != nil {
				return "", nil, notationErrorf(vs, "value of label %q: %v", label, uerr)
			}
			if _, dup := labels[label]; dup {
				return "", nil, notationErrorf(ls, "label %q given twice", label)
			}
			labels[label] = v
			i = skipSpace(s, i)
			if i < len(s) && s[i] == ',' {
				i = skipSpace(s, i+1)
			} else if i < len(s) && s[i] != '}' {
				return "", nil, notationErrorf(i, "expected , or } after the value of label %q", label)
			}
		}
		if i >= len(s) {
			return "", nil, notationErrorf(len(s), "expected } to close the labels")
		}
		i = skipSpace(s, i+1)
	}
	if i < len(s) {
		return "", nil, notationErrorf(i, "unexpected %q after the series", s[i:])
	}
	if n, ok := labels["__name__"]; ok {
		if name != "" && n != name {
			return "", nil, notationErrorf(start, "the series is named both %q and __name__=%q", name, n)
		}
		name = n
		delete(labels, "__name__")
	}
	if name == "" {
		return "", nil, notationErrorf(start, "the series has no metric name")
	}
	return name, labels, nil
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

func isNameChar(c byte, first, colon bool) bool {
	switch {
	case c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		return true
	case c == ':':
		return colon
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}
