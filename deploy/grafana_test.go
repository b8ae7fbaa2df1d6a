package deploy

import (
	"encoding/json"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// TestGrafanaDashboard: deploy/grafana builds into one ConfigMap that
// decodes strictly, carries the label kube-prometheus-stack's Grafana
// sidecar looks for, and holds a dashboard that parses. (cmd/sentinel's
// TestDashboardQueriesReturnData runs its queries against a real
// Prometheus; TestDashboardConfigMap keeps the ConfigMap equal to the JSON.)
func TestGrafanaDashboard(t *testing.T) {
	o := build(t, filesys.MakeFsOnDisk(), "grafana")
	cm := o.configMap(t, "sentinel-grafana-dashboard")
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("labels %v: the Grafana sidecar wants grafana_dashboard: \"1\"", cm.Labels)
	}
	if cm.Namespace != "" {
		t.Errorf("namespace %q: the dashboard goes where Grafana's sidecar searches, chosen at apply time", cm.Namespace)
	}
	var dash struct {
		UID    string            `json:"uid"`
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["sentinel.json"]), &dash); err != nil || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("sentinel.json: %v (uid %q, %d panels)", err, dash.UID, len(dash.Panels))
	}
	// kubectl apply -k deploy/ installs it, in monitoring beside
	// kube-prometheus; the chart renders the same object (TestHelmDefault
	// compares them).
	whole := build(t, filesys.MakeFsOnDisk(), ".").configMap(t, "sentinel-grafana-dashboard")
	if whole.Data["sentinel.json"] != cm.Data["sentinel.json"] || whole.Labels["grafana_dashboard"] != "1" {
		t.Errorf("deploy/ builds a different dashboard ConfigMap: labels %v", whole.Labels)
	}
}
