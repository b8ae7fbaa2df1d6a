package alertmanager

import (
	"sort"
	"unicode/utf8"

	"github.com/prometheus/alertmanager/api/v2/models"
)

// TruncationMarker ends an annotation cut to fit the alert size limit.
const TruncationMarker = "…[truncated]"

// alertOverhead is what an alert's JSON takes besides its labels and
// annotations: field names, quotes, timestamps.
const alertOverhead = 128

// alertSize is about the bytes an alert takes in a request's JSON.
func alertSize(a *models.PostableAlert) int {
	n := alertOverhead + len(a.GeneratorURL)
	for k, v := range a.Labels {
		n += len(k) + len(v) + 6
	}
	for k, v := range a.Annotations {
		n += len(k) + len(v) + 6
	}
	return n
}

// boundAlert truncates the annotations of an alert over limit bytes, the
// longest first, each to an equal share of what the labels leave, and
// returns the alert's size. Labels are kept whole: they are the alert's
// identity (the engine bounds the values it puts there).
func boundAlert(a *models.PostableAlert, limit int) (size int, cut bool) {
	size = alertSize(a)
	if limit <= 0 || size <= limit || len(a.Annotations) == 0 {
		return size, false
	}
	room := limit - (size - annotationsSize(a.Annotations))
	share := max(room/len(a.Annotations), 2*len(TruncationMarker))
	// A fresh map: the alert's annotations may be shared with the caller.
	out := make(models.LabelSet, len(a.Annotations))
	names := make([]string, 0, len(a.Annotations))
	for k := range a.Annotations {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := a.Annotations[k]
		if len(v) > share {
			c := share - len(TruncationMarker)
			for c > 0 && !utf8.RuneStart(v[c]) {
				c--
			}
			v = v[:c] + TruncationMarker
			cut = true
		}
		out[k] = v
	}
	a.Annotations = out
	return alertSize(a), cut
}

func annotationsSize(ls models.LabelSet) int {
	n := 0
	for k, v := range ls {
		n += len(k) + len(v) + 6
	}
	return n
}
