package engine

import "unicode/utf8"

// DefaultMaxLabelValueBytes is the default of Options.MaxLabelValueBytes.
const DefaultMaxLabelValueBytes = 1024

// MinLabelValueBytes leaves room for some of a value besides the marker.
const MinLabelValueBytes = 32

// TruncationMarker ends a group_by value cut at the label value limit.
const TruncationMarker = "…[truncated]"

// boundLabelValue cuts a group_by value to at most limit bytes, the marker
// included, at a UTF-8 boundary, so that one huge label value cannot
// become a huge group key, series label and alert. The cut value is a
// fresh string: it does not keep the observation's data alive. A value at
// most limit bytes long is returned as is.
func boundLabelValue(v string, limit int) (string, bool) {
	if limit <= 0 || len(v) <= limit {
		return v, false
	}
	cut := max(limit-len(TruncationMarker), 0)
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + TruncationMarker, true
}

// groupValue is the bounded value of a group_by label of o.
func (r *ruleState) groupValue(o *Observation, name string) (string, bool) {
	v, _ := o.Labels.Get(name)
	return boundLabelValue(v, r.maxLabelValue)
}
