package engine

import (
	"regexp/syntax"
	"unicode/utf8"

	"github.com/prometheus/alertmanager/pkg/labels"
)

// index finds the rules an observation may match without running every
// rule's matchers: each rule is filed under one of its equality matchers
// (or a regex that is a plain alternation of literals), so an observation
// costs one label lookup and one map lookup per indexed label name. Rules
// with no such matcher are checked one by one.
type index struct {
	names  []string
	values []map[string][]indexed // parallel to names
	scan   []indexed
}

// indexed is a rule as filed in an index: skip is the matcher the index
// already checked (-1 if none). It belongs to the index, not the rule, so
// that a rule carried over a reload is never written while spans read it.
type indexed struct {
	rule *ruleState
	skip int
}

// metricNameLabel is how a metrics observation exposes its histogram's
// base name, so that metrics rules are indexed by metric.
const metricNameLabel = "__name__"

func buildIndex(rs []*ruleState) index {
	// File each rule under its most selective key: the label name whose
	// values spread the rules thinnest (fewest rules per value), so that an
	// observation wakes as few rules as possible. service.name, which every
	// apiserver rule shares, is a poor key; resource is a good one.
	entries, distinct := map[string]int{}, map[string]map[string]bool{}
	for _, r := range rs {
		for _, k := range r.indexCandidates() {
			entries[k.name] += len(k.values)
			if distinct[k.name] == nil {
				distinct[k.name] = map[string]bool{}
			}
			for _, v := range k.values {
				distinct[k.name][v] = true
			}
		}
	}
	rulesPerValue := func(name string) float64 { return float64(entries[name]) / float64(len(distinct[name])) }
	var ix index
	pos := map[string]int{}
	for _, r := range rs {
		best := -1
		cands := r.indexCandidates()
		for i, k := range cands {
			if best < 0 || rulesPerValue(k.name) < rulesPerValue(cands[best].name) {
				best = i
			}
		}
		if best < 0 {
			ix.scan = append(ix.scan, indexed{rule: r, skip: -1})
			continue
		}
		k := cands[best]
		p, ok := pos[k.name]
		if !ok {
			p = len(ix.names)
			pos[k.name] = p
			ix.names = append(ix.names, k.name)
			ix.values = append(ix.values, map[string][]indexed{})
		}
		for _, v := range k.values {
			ix.values[p][v] = append(ix.values[p][v], indexed{rule: r, skip: k.matcher})
		}
	}
	return ix
}

type indexKey struct {
	name    string
	values  []string
	matcher int // which of the rule's matchers it stands for; -1 for the metric name
}

func (r *ruleState) indexCandidates() []indexKey {
	var out []indexKey
	if r.metric != "" {
		out = append(out, indexKey{name: metricNameLabel, values: []string{r.metric}, matcher: -1})
	}
	for i, m := range r.def.Matchers {
		switch m.Type {
		case labels.MatchEqual:
			if m.Value != "" { // ="" also matches an absent label: not indexable
				out = append(out, indexKey{name: m.Name, values: []string{m.Value}, matcher: i})
			}
		case labels.MatchRegexp:
			if vs, ok := literalAlternation(m.Value); ok {
				out = append(out, indexKey{name: m.Name, values: vs, matcher: i})
			}
		}
	}
	return out
}

// literalAlternation reports the strings a regex such as "GET|LIST" or
// "POST|PUT|PATCH|DELETE" matches, in full as Alertmanager anchors it,
// when they are few (at most maxLiterals) and none is empty: Go's parser
// factors such alternations ("P(?:OST|UT|ATCH)|DELETE"), so the strings
// are expanded back from literals, concatenations, alternations, optional
// parts and small character classes.
func literalAlternation(expr string) ([]string, bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, false
	}
	vs, ok := finiteStrings(re.Simplify())
	if !ok {
		return nil, false
	}
	var out []string
	for _, v := range vs {
		if !containsString(out, v) { // "GET|LIST|GET" files the rule once
			out = append(out, v)
		}
	}
	if len(out) == 0 || hasEmpty(out) {
		return nil, false
	}
	return out, true
}

// maxLiterals bounds what literalAlternation expands: a regex that
// matches more strings is run as a regex.
const maxLiterals = 64

// finiteStrings lists the strings that re matches in full, if they are at
// most maxLiterals (with repeats) and re is case-sensitive.
func finiteStrings(re *syntax.Regexp) ([]string, bool) {
	if re.Flags&syntax.FoldCase != 0 {
		return nil, false
	}
	switch re.Op {
	case syntax.OpEmptyMatch:
		return []string{""}, true
	case syntax.OpLiteral:
		if !validRunes(re.Rune...) {
			return nil, false
		}
		return []string{string(re.Rune)}, true
	case syntax.OpCapture:
		return finiteStrings(re.Sub[0])
	case syntax.OpQuest:
		vs, ok := finiteStrings(re.Sub[0])
		if !ok || len(vs) >= maxLiterals {
			return nil, false
		}
		return append(vs, ""), true
	case syntax.OpCharClass:
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if int(hi-lo) >= maxLiterals-len(out) {
				return nil, false
			}
			for r := lo; r <= hi; r++ {
				if !validRunes(r) {
					return nil, false
				}
				out = append(out, string(r))
			}
		}
		return out, true
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			vs, ok := finiteStrings(sub)
			if !ok || len(out)+len(vs) > maxLiterals {
				return nil, false
			}
			out = append(out, vs...)
		}
		return out, true
	case syntax.OpConcat:
		out := []string{""}
		for _, sub := range re.Sub {
			vs, ok := finiteStrings(sub)
			if !ok || len(out)*len(vs) > maxLiterals {
				return nil, false
			}
			joined := make([]string, 0, len(out)*len(vs))
			for _, a := range out {
				for _, b := range vs {
					joined = append(joined, a+b)
				}
			}
			out = joined
		}
		return out, true
	}
	return nil, false
}

// validRunes reports whether a literal made of rs compares with a label
// value as the regex does: not when it holds U+FFFD, which the regex also
// matches for every byte of invalid UTF-8, or a rune that has no UTF-8
// form.
func validRunes(rs ...rune) bool {
	for _, r := range rs {
		if r == utf8.RuneError || !utf8.ValidRune(r) {
			return false
		}
	}
	return true
}

func hasEmpty(vs []string) bool {
	for _, v := range vs {
		if v == "" {
			return true
		}
	}
	return false
}

// valueMatcher is a matcher compiled for the hot path: equality and
// literal alternations compare strings; only real regexes run the regexp.
type valueMatcher struct {
	name    string
	negate  bool
	literal []string        // match when the value is one of these
	m       *labels.Matcher // otherwise
}

func compileMatcher(m *labels.Matcher) valueMatcher {
	vm := valueMatcher{name: m.Name, m: m}
	switch m.Type {
	case labels.MatchEqual, labels.MatchNotEqual:
		vm.literal, vm.m = []string{m.Value}, nil
		vm.negate = m.Type == labels.MatchNotEqual
	case labels.MatchRegexp, labels.MatchNotRegexp:
		if vs, ok := literalAlternation(m.Value); ok {
			vm.literal, vm.m = vs, nil
			vm.negate = m.Type == labels.MatchNotRegexp
		}
	}
	return vm
}

func (vm *valueMatcher) matches(v string) bool {
	if vm.m != nil {
		return vm.m.Matches(v)
	}
	for _, l := range vm.literal {
		if v == l {
			return !vm.negate
		}
	}
	return vm.negate
}
