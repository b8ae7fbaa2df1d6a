package deploy

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

func (o *objects) monitoringTarget(t *testing.T, apiVersion, kind string) any {
	t.Helper()
	if apiVersion != "monitoring.coreos.com/v1" {
		t.Fatalf("%s of apiVersion %s: want monitoring.coreos.com/v1", kind, apiVersion)
	}
	if kind == "ServiceMonitor" {
		o.serviceMonitors = append(o.serviceMonitors, monitoringv1.ServiceMonitor{})
		return &o.serviceMonitors[len(o.serviceMonitors)-1]
	}
	o.prometheusRules = append(o.prometheusRules, monitoringv1.PrometheusRule{})
	return &o.prometheusRules[len(o.prometheusRules)-1]
}

// binary is the path of a program the test needs: skipped without it
// locally, a failure in CI (scripts/test.sh installs it).
func binary(t *testing.T, name, debian string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		msg := "no " + name + " on PATH; on Debian: apt-get install " + debian
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// kubePrometheusAlertmanager are the labels of kube-prometheus's
// Alertmanager pods (its Alertmanager object `main`).
var kubePrometheusAlertmanager = labels.Set{
	"app.kubernetes.io/name":      "alertmanager",
	"app.kubernetes.io/component": "alert-router",
	"app.kubernetes.io/instance":  "main",
	"app.kubernetes.io/part-of":   "kube-prometheus",
	"alertmanager":                "main",
}

// TestMonitoring: the ServiceMonitor scrapes each replica's web port once,
// as job "sentinel" (what the meta-alerts select); and sentinel can reach
// kube-prometheus's Alertmanager through both NetworkPolicies.
func TestMonitoring(t *testing.T) {
	for name, fsys := range map[string]func() (filesys.FileSystem, string){
		"default": func() (filesys.FileSystem, string) { return filesys.MakeFsOnDisk(), "." },
		"ha":      func() (filesys.FileSystem, string) { return withHA(t), "/deploy" },
	} {
		fs, dir := fsys()
		checkMonitoring(t, name, build(t, fs, dir))
	}
}

func checkMonitoring(t *testing.T, name string, o *objects) {
	t.Helper()
	if len(o.serviceMonitors) != 1 || len(o.prometheusRules) != 1 {
		t.Fatalf("%s: %d ServiceMonitors and %d PrometheusRules, want one each", name, len(o.serviceMonitors), len(o.prometheusRules))
	}
	pod := o.statefulSet(t, "sentinel").Spec.Template
	sm := o.serviceMonitors[0]
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("%s: ServiceMonitor endpoints %+v, want the web port", name, sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	// Of the Services it selects, only sentinel has the endpoint's port:
	// each replica is one target.
	var scraped []string
	for _, svc := range o.services {
		if !sel.Matches(labels.Set(svc.Labels)) {
			continue
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == ep.Port {
				scraped = append(scraped, svc.Name)
				if job := svc.Labels[sm.Spec.JobLabel]; job != "sentinel" {
					t.Errorf("%s: Service %s gives the targets job %q, want sentinel (the meta-alerts select it)", name, svc.Name, job)
				}
				if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) || p.TargetPort.StrVal != "web" {
					t.Errorf("%s: Service %s port %s does not lead to sentinel's web port", name, svc.Name, p.Name)
				}
			}
		}
	}
	if !slices.Equal(scraped, []string{"sentinel"}) {
		t.Errorf("%s: the ServiceMonitor scrapes port %q of Services %v, want Service sentinel only", name, ep.Port, scraped)
	}
	if ep.Path != "/metrics" {
		t.Errorf("%s: ServiceMonitor path %q", name, ep.Path)
	}

	// kube-prometheus's Alertmanager admits only Prometheus unless a policy
	// admits sentinel; sentinel's own egress must let it out.
	admitted, egress := false, false
	for _, np := range o.netpols {
		s, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		if s.Matches(kubePrometheusAlertmanager) && !s.Empty() {
			for _, r := range np.Spec.Ingress {
				for _, from := range r.From {
					fs, _ := metav1.LabelSelectorAsSelector(from.PodSelector)
					if from.PodSelector != nil && fs.Matches(labels.Set(pod.Labels)) && from.NamespaceSelector == nil && hasPort(r.Ports, 9093) {
						admitted = true
					}
				}
			}
			// Matching the example Alertmanager too would make this the
			// only policy on it, denying every other sender.
			if s.Matches(labels.Set{"app.kubernetes.io/name": "alertmanager"}) {
				t.Errorf("%s: NetworkPolicy %s selects any Alertmanager, not kube-prometheus's alone", name, np.Name)
			}
		}
		if np.Name == "sentinel" {
			for _, r := range np.Spec.Egress {
				for _, to := range r.To {
					ps, _ := metav1.LabelSelectorAsSelector(to.PodSelector)
					ns, _ := metav1.LabelSelectorAsSelector(to.NamespaceSelector)
					if to.PodSelector != nil && ps.Matches(kubePrometheusAlertmanager) && ns.Matches(labels.Set{"kubernetes.io/metadata.name": "monitoring"}) && hasPort(r.Ports, 9093) {
						egress = true
					}
				}
			}
		}
	}
	if !admitted || !egress {
		t.Errorf("%s: sentinel reaches kube-prometheus's Alertmanager: admitted by a policy on it %v, let out by its own %v", name, admitted, egress)
	}
}

func hasPort(ports []networkingv1.NetworkPolicyPort, port int) bool {
	for _, p := range ports {
		if p.Port != nil && p.Port.IntValue() == port {
			return true
		}
	}
	return false
}

// metaAlertRules is the PrometheusRule's spec as a Prometheus rule file.
func metaAlertRules(t *testing.T, o *objects) []byte {
	t.Helper()
	data, err := yaml.Marshal(o.prometheusRules[0].Spec)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestMetaAlerts runs promtool's unit tests (monitoring/
// prometheusrule_test.yaml) on the PrometheusRule as built, checks every
// alert has its runbook, and that every sentinel_ metric the expressions
// name is one sentinel exports.
func TestMetaAlerts(t *testing.T) {
	o := build(t, filesys.MakeFsOnDisk(), ".")
	if len(o.prometheusRules) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(o.prometheusRules))
	}
	checkMetaAlerts(t, o.prometheusRules[0])

	promtool := binary(t, "promtool", "prometheus")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sentinel-alerts.yaml"), metaAlertRules(t, o), 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("monitoring", "prometheusrule_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheusrule_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", "prometheusrule_test.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

func checkMetaAlerts(t *testing.T, pr monitoringv1.PrometheusRule) {
	t.Helper()
	exported := exportedMetrics(t)
	tested, err := os.ReadFile(filepath.Join("monitoring", "prometheusrule_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if _, err := os.Stat(filepath.Join("..", "docs", "runbooks", r.Alert+".md")); err != nil {
				t.Errorf("no runbook for %s: %v", r.Alert, err)
			}
			if want := "https://github.com/kube-sentinel/sentinel/blob/main/docs/runbooks/" + r.Alert + ".md"; r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %s", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !strings.Contains(string(tested), "alertname: "+r.Alert+"\n") {
				t.Errorf("%s has no promtool test in monitoring/prometheusrule_test.yaml", r.Alert)
			}
			for _, m := range regexp.MustCompile(`sentinel_[a-z_]+`).FindAllString(r.Expr.String(), -1) {
				if !exported[m] {
					t.Errorf("%s: %s is not a metric sentinel exports", r.Alert, m)
				}
			}
			if sev := r.Labels["severity"]; sev != "page" && sev != "ticket" {
				t.Errorf("%s: severity %q, want page or ticket (deploy/alertmanager's routes)", r.Alert, sev)
			}
		}
	}
}

// exportedMetrics are the sentinel_ metric names in sentinel's sources.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	re := regexp.MustCompile(`"(sentinel_[a-z_]+)"`)
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "deploy" || d.Name() == "e2e" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllSubmatch(data, -1) {
			out[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !out["sentinel_spans_received_total"] {
		t.Fatalf("found no sentinel metrics in the sources: %v", out)
	}
	return out
}
