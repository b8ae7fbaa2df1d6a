package ruletest

import ("testing";"strings")

func TestDebugIDs(t *testing.T) {
	var ids []string
	for i := 600; i >= 596; i-- { ids = append(ids, TraceID("the slowest requests are the exemplars", 0, i)) }
	t.Log(strings.Join(ids, ","))
}
