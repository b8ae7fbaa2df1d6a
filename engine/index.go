package engine

import (
	"regexp/syntax"

	"github.com/prometheus/alertmanager/pkg/labels"
)

// index finds the rules an observation may match without running every
// rule's matchers: each rule is filed under one of its equality matchers
// (or a regex that is a plain alternation of literals), so an observation
// costs one label lookup and one map lookup per indexed label name. Rules
// with no such matcher are checked one by one.
type index struct {
	names  []string
	values []map[string][]*ruleState // parallel to names
	scan   []*ruleState
}

// metricNameLabel is how a metrics observation exposes its histogram's
// base name, so that metrics rules are indexed by metric.
const metricNameLabel = "__name__"

func buildIndex(rs []*ruleState) index {
	// Prefer label names that many rules select on equality: fewer names
	// means fewer lookups per observation.
	popularity := map[string]int{}
	for _, r := range rs {
		for _, k := range r.indexCandidates() {
			popularity[k.name]++
		}
	}
	var ix index
	pos := map[string]int{}
	for _, r := range rs {
		best := -1
		cands := r.indexCandidates()
		for i, k := range cands {
			if best < 0 || popularity[k.name] > popularity[cands[best].name] {
				best = i
			}
		}
		if best < 0 {
			ix.scan = append(ix.scan, r)
			r.indexed = -1
			continue
		}
		k := cands[best]
		p, ok := pos[k.name]
		if !ok {
			p = len(ix.names)
			pos[k.name] = p
			ix.names = append(ix.names, k.name)
			ix.values = append(ix.values, map[string][]*ruleState{})
		}
		for _, v := range k.values {
			ix.values[p][v] = append(ix.values[p][v], r)
		}
		r.indexed = k.matcher
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
	for i, m := range r.matchers {
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

// literalAlternation reports the literals of a regex such as "GET|LIST",
// matched in full as Alertmanager anchors it.
func literalAlternation(expr string) ([]string, bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, false
	}
	re = re.Simplify()
	var subs []*syntax.Regexp
	switch re.Op {
	case syntax.OpLiteral:
		subs = []*syntax.Regexp{re}
	case syntax.OpAlternate:
		subs = re.Sub
	case syntax.OpCharClass:
		return nil, false
	default:
		return nil, false
	}
	var out []string
	for _, s := range subs {
		if s.Op != syntax.OpLiteral || s.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		out = append(out, string(s.Rune))
	}
	if len(out) == 0 || hasEmpty(out) {
		return nil, false
	}
	return out, true
}

func hasEmpty(vs []string) bool {
	for _, v := range vs {
		if v == "" {
			return true
		}
	}
	return false
}
