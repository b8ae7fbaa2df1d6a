package web

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/golden"
)

// TestRulesAPIEngineExplanations: with the engine's explanations,
// /api/v1/rules series carry criticalPath and slowRequestsBy as structured
// data while they breach, and neither otherwise.
func TestRulesAPIEngineExplanations(t *testing.T) {
	groups := []engine.GroupStatus{{Name: "apiserver", Interval: 15 * time.Second, Rules: []engine.RuleStatus{{
		Name: "NamespacesP99", Kind: "alerting", State: engine.StateFiring, Threshold: time.Second,
		Series: []engine.SeriesStatus{
			{Labels: map[string]string{"verb": "GET"}, Value: 2.5, Observations: 300,
				CriticalPath: &engine.CriticalPath{Traces: 5, Incomplete: 2,
					Services: []engine.PathShare{{Name: "etcd", Share: 0.92}, {Name: "apiserver", Share: 0.08}},
					Spans:    []engine.PathShare{{Name: "etcd/etcdserverpb.KV/Range", Share: 0.92}, {Name: "apiserver/GET /api/v1/namespaces/{:name}", Share: 0.08}}},
				SlowRequestsBy: []engine.SlowShare{{Attribute: "k8s.node.name", Value: "cp-2", SlowShare: 1, AllShare: 0.33}}},
			{Labels: map[string]string{"verb": "LIST"}, Value: 0.1, Observations: 300},
		},
	}}}}
	data, err := json.MarshalIndent(rulesData(groups, EngineExplanation)["groups"], "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/rules_api_explanations.golden", string(data)+"\n")
}
