package ruletest

import (
	"sort"
	"strconv"
	"strings"

	"github.com/kube-sentinel/sentinel/engine"
)

// compareAlerts renders the expected and the got alerts of one
// alert_rule_test entry one per line, sorted, in the same shape, and
// reports whether they are the same.
//
// Labels are compared exactly (alertname is implied and left out);
// the rule's own annotations exactly; a generated annotation and the
// exemplar count only for the expected alert with the same labels that
// lists them, so that each got alert is shown the way it was compared.
func compareAlerts(exp []expectedAlert, got []engine.AlertStatus) (expLines, gotLines []string, same bool) {
	byLabels := map[string]*expectedAlert{}
	for i := range exp {
		e := &exp[i]
		key := renderMap(e.labels)
		if _, ok := byLabels[key]; !ok {
			byLabels[key] = e
		}
		expLines = append(expLines, renderAlert(e.labels, e.annotations, e.exemplars, e.hasExemplars))
	}
	for _, a := range got {
		labels := make(map[string]string, len(a.Labels))
		for k, v := range a.Labels {
			if k != "alertname" {
				labels[k] = v
			}
		}
		e := byLabels[renderMap(labels)]
		annotations := map[string]string{}
		// SentinelNoData has no rule of its own: all its annotations are the
		// engine's, compared only when listed.
		builtin := a.Labels["alertname"] == engine.NoDataAlertName
		for k, v := range a.Annotations {
			if !builtin && !engine.IsGeneratedAnnotation(k) {
				annotations[k] = v
				continue
			}
			if e != nil {
				if _, listed := e.annotations[k]; listed {
					annotations[k] = v
				}
			}
		}
		withExemplars := e != nil && e.hasExemplars
		gotLines = append(gotLines, renderAlert(labels, annotations, exemplarCount(a.Annotations), withExemplars))
	}
	sort.Strings(expLines)
	sort.Strings(gotLines)
	if len(expLines) != len(gotLines) {
		return expLines, gotLines, false
	}
	for i := range expLines {
		if expLines[i] != gotLines[i] {
			return expLines, gotLines, false
		}
	}
	return expLines, gotLines, true
}

func exemplarCount(annotations map[string]string) int {
	ids := annotations["exemplar_trace_ids"]
	if ids == "" {
		return 0
	}
	return strings.Count(ids, ",") + 1
}

// renderAlert shows an alert on one line:
// labels {a="1", b="2"} annotations {summary="..."} exemplars 5.
func renderAlert(labels, annotations map[string]string, exemplars int, withExemplars bool) string {
	var b strings.Builder
	b.WriteString("labels ")
	b.WriteString(renderMap(labels))
	b.WriteString(" annotations ")
	b.WriteString(renderMap(annotations))
	if withExemplars {
		b.WriteString(" exemplars ")
		b.WriteString(strconv.Itoa(exemplars))
	}
	return b.String()
}

func renderMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// diffLines merges two sorted lists into diff lines: "  " for a line in
// both, "- " for one only expected, "+ " for one only got. Between two
// common lines the expected ones come first, so a changed alert reads as a
// "-" line followed by its "+" line.
func diffLines(exp, got []string) []string {
	var out, minus, plus []string
	flush := func() {
		out = append(out, minus...)
		out = append(out, plus...)
		minus, plus = minus[:0], plus[:0]
	}
	i, j := 0, 0
	for i < len(exp) || j < len(got) {
		switch {
		case j == len(got) || (i < len(exp) && exp[i] < got[j]):
			minus = append(minus, "- "+exp[i])
			i++
		case i == len(exp) || got[j] < exp[i]:
			plus = append(plus, "+ "+got[j])
			j++
		default:
			flush()
			out = append(out, "  "+exp[i])
			i++
			j++
		}
	}
	flush()
	return out
}
