package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/internal/testcerts"
)

// chart is the Helm chart, beside the kustomize manifests.
var chart = filepath.Join("helm", "sentinel")

// helmBinary is the real helm: $HELM, or helm on PATH. scripts/test.sh
// builds it from its Go module at a pinned version; without it the test
// skips locally and fails in CI.
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	h, err := exec.LookPath("helm")
	if err != nil {
		const msg = "no helm (set HELM, or: go install helm.sh/helm/v3/cmd/helm@v3.22.0); scripts/test.sh builds it"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return h
}

// runHelm runs helm with args and returns its standard output.
func runHelm(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	// No repositories, no cache, no config of the user's.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// render is `helm template sentinel deploy/helm/sentinel -n monitoring`
// with args (--set ...), as manifests.
func render(t *testing.T, args ...string) []manifest {
	t.Helper()
	out := runHelm(t, append([]string{"template", "sentinel", chart, "--namespace", "monitoring"}, args...)...)
	var docs []manifest
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(out), -1) {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("helm template %v: a document is not YAML: %v\n%s", args, err, doc)
		}
		if meta.Kind == "" {
			continue // comments only
		}
		if meta.Metadata.Namespace != "monitoring" && meta.Kind != "ClusterRole" && meta.Kind != "ClusterRoleBinding" {
			t.Errorf("helm template %v: %s %s in namespace %q, want the release's", args, meta.Kind, meta.Metadata.Name, meta.Metadata.Namespace)
		}
		docs = append(docs, manifest{kind: meta.Kind, apiVersion: meta.APIVersion, name: meta.Metadata.Name, namespace: meta.Metadata.Namespace, data: []byte(doc)})
	}
	return docs
}

// kustomized is a kustomize build as manifests (build decodes them too).
func kustomized(t *testing.T, fsys filesys.FileSystem, dir string) []manifest {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var docs []manifest
	for _, res := range resMap.Resources() {
		data, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, manifest{kind: res.GetKind(), apiVersion: res.GetApiVersion(), name: res.GetName(), namespace: res.GetNamespace(), data: data})
	}
	return docs
}

// TestHelmLint runs helm lint on the chart, with its defaults and with
// every optional part on.
func TestHelmLint(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"--set", "ha.enabled=true"},
		{"--set", "tls.web.enabled=true", "--set", "tls.web.basicAuthUsers.prometheus=$2y$10$abc", "--set", "serviceMonitor.basicAuthSecret=sentinel-scrape"},
		{"--set", "persistence.enabled=false", "--set", "rules.existingConfigMap=my-rules", "--set", "tls.otlp.enabled=false"},
	} {
		out := runHelm(t, append([]string{"lint", "--strict", chart}, args...)...)
		if !strings.Contains(string(out), "0 chart(s) failed") {
			t.Errorf("helm lint %v:\n%s", args, out)
		}
	}
}

// TestHelmDefault: the chart's defaults render objects that decode
// strictly, pass every check the kustomize build passes, and equal the
// kustomize build's, object by object.
func TestHelmDefault(t *testing.T) {
	docs := render(t)
	o := decode(t, "helm template", docs)
	checkCommon(t, o)
	checkMonitoring(t, "helm", o)
	checkMetaAlerts(t, o.prometheusRules[0])
	agree(t, kustomized(t, filesys.MakeFsOnDisk(), "."), docs)
}

// TestHelmHA: ha.enabled renders what the kustomize HA component does.
func TestHelmHA(t *testing.T) {
	docs := render(t, "--set", "ha.enabled=true")
	o := decode(t, "helm template ha", docs)
	checkCommon(t, o)
	checkMonitoring(t, "helm ha", o)
	checkHA(t, o)
	checkHAMutualTLS(t, o)
	agree(t, kustomized(t, withHA(t), "/deploy"), docs)
}

// TestHelmValues renders the chart's options and checks each does what
// values.yaml says; every object still decodes strictly.
func TestHelmValues(t *testing.T) {
	t.Run("alertmanagers and labels", func(t *testing.T) {
		o := decode(t, "helm", render(t,
			"--set", "alertmanager.urls={http://am-0.example:9093,http://am-1.example:9093}",
			"--set", "extraLabels.team=sre", "--set", "config.clusterName=prod-eu1"))
		cfg := helmConfig(t, o)
		if !reflect.DeepEqual(cfg.Alertmanagers, []string{"http://am-0.example:9093", "http://am-1.example:9093"}) {
			t.Errorf("alertmanagers %v", cfg.Alertmanagers)
		}
		if cfg.ExternalLabels["cluster"] != "prod-eu1" {
			t.Errorf("external_labels %v", cfg.ExternalLabels)
		}
		for _, cm := range o.configMaps {
			if cm.Labels["team"] != "sre" {
				t.Errorf("ConfigMap %s lacks the extra label", cm.Name)
			}
		}
		if o.statefulSet(t, "sentinel").Spec.Template.Labels["team"] != "sre" {
			t.Errorf("the pods lack the extra label")
		}
	})
	t.Run("scrape configs through config.extra", func(t *testing.T) {
		values := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(values, []byte(`config:
  extra:
    scrape_configs:
      - job_name: apiserver
        scheme: https
        bearer_token_file: /var/run/secrets/kubernetes.io/serviceaccount/token
        tls_config: {ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt}
        kubernetes_sd_configs: [{role: endpoints}]
`), 0o644); err != nil {
			t.Fatal(err)
		}
		o := decode(t, "helm", render(t, "-f", values))
		cfg := helmConfig(t, o)
		if len(cfg.ScrapeConfigs) != 1 || cfg.ScrapeConfigs[0].JobName != "apiserver" || len(cfg.Alertmanagers) != 1 {
			t.Errorf("config.extra.scrape_configs: scrape configs %+v, alertmanagers %v", cfg.ScrapeConfigs, cfg.Alertmanagers)
		}
	})
	t.Run("no persistence", func(t *testing.T) {
		s := decode(t, "helm", render(t, "--set", "persistence.enabled=false")).statefulSet(t, "sentinel")
		if len(s.Spec.VolumeClaimTemplates) != 0 {
			t.Errorf("persistence.enabled=false still claims volumes")
		}
		found := false
		for _, v := range s.Spec.Template.Spec.Volumes {
			found = found || (v.Name == "data" && v.EmptyDir != nil)
		}
		if !found {
			t.Errorf("persistence.enabled=false: no emptyDir data volume")
		}
	})
	t.Run("rules from an existing ConfigMap, and extra files", func(t *testing.T) {
		o := decode(t, "helm", render(t, "--set", "rules.existingConfigMap=my-rules"))
		for _, cm := range o.configMaps {
			if cm.Name == "sentinel-rules" {
				t.Errorf("rules.existingConfigMap: the chart still makes sentinel-rules")
			}
		}
		mounted := false
		for _, v := range o.statefulSet(t, "sentinel").Spec.Template.Spec.Volumes {
			mounted = mounted || (v.ConfigMap != nil && v.ConfigMap.Name == "my-rules")
		}
		if !mounted {
			t.Errorf("rules.existingConfigMap=my-rules is not mounted")
		}
		o = decode(t, "helm", render(t, "--set", "rules.pack=false", "--set-string", "rules.files.mine\\.yaml=groups: []"))
		if got := o.configMap(t, "sentinel-rules").Data; !reflect.DeepEqual(got, map[string]string{"mine.yaml": "groups: []\n"}) {
			t.Errorf("rules.pack=false with rules.files: %v", got)
		}
	})
	t.Run("web TLS and basic auth", func(t *testing.T) {
		hash, err := bcrypt.GenerateFromPassword([]byte("scrape"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		o := decode(t, "helm", render(t, "--set", "tls.web.enabled=true",
			"--set", "tls.web.basicAuthUsers.prometheus="+string(hash), "--set", "serviceMonitor.basicAuthSecret=sentinel-scrape"))
		c := o.statefulSet(t, "sentinel").Spec.Template.Spec.Containers[0]
		if !slices.Contains(c.Args, "--web.config.file=/etc/sentinel/web/web.yml") || !slices.Contains(c.Args, "--web.external-url=https://sentinel.monitoring.svc:9464") {
			t.Errorf("args %v: want --web.config.file and an https external URL", c.Args)
		}
		// Basic auth: no password in the pod spec, so TCP probes.
		if c.ReadinessProbe.TCPSocket == nil || c.LivenessProbe.TCPSocket == nil {
			t.Errorf("probes %+v %+v: want TCP checks with basic auth", c.ReadinessProbe, c.LivenessProbe)
		}
		var webCfg struct {
			TLSServerConfig struct {
				CertFile string `json:"cert_file"`
				KeyFile  string `json:"key_file"`
			} `json:"tls_server_config"`
			BasicAuthUsers map[string]string `json:"basic_auth_users"`
		}
		for _, s := range o.secrets {
			if s.Name == "sentinel-web-config" {
				if err := yaml.UnmarshalStrict([]byte(s.StringData["web.yml"]), &webCfg); err != nil {
					t.Fatal(err)
				}
			}
		}
		if webCfg.TLSServerConfig.CertFile != "/etc/sentinel/web-tls/tls.crt" || webCfg.BasicAuthUsers["prometheus"] != string(hash) {
			t.Errorf("web.yml %+v", webCfg)
		}
		// The exporter-toolkit, which sentinel's --web.config.file uses,
		// takes it, with certificates made here in the mounted Secret's place.
		dir := t.TempDir()
		pair := testcerts.NewCA(t, "ca").Server(t, "sentinel")
		testcerts.WriteFile(t, filepath.Join(dir, "tls.crt"), pair.CertPEM)
		testcerts.WriteFile(t, filepath.Join(dir, "tls.key"), pair.KeyPEM)
		webFile := filepath.Join(dir, "web.yml")
		for _, sec := range o.secrets {
			if sec.Name == "sentinel-web-config" {
				testcerts.WriteFile(t, webFile, []byte(strings.ReplaceAll(sec.StringData["web.yml"], "/etc/sentinel/web-tls/", dir+"/")))
			}
		}
		if err := web.Validate(webFile); err != nil {
			t.Errorf("the exporter-toolkit rejects the chart's web.yml: %v", err)
		}
		if secretMount(o.statefulSet(t, "sentinel").Spec.Template.Spec, c, o.certificateFor(t, "sentinel-web-tls").Spec.SecretName) != "/etc/sentinel/web-tls" {
			t.Errorf("the web certificate is not mounted where web.yml reads it")
		}
		ep := o.serviceMonitors[0].Spec.Endpoints[0]
		if ep.Scheme == nil || string(*ep.Scheme) != "https" || ep.TLSConfig == nil || ep.TLSConfig.CA.Secret == nil ||
			ep.TLSConfig.CA.Secret.Name != "sentinel-web-tls" || ep.BasicAuth == nil || ep.BasicAuth.Password.Name != "sentinel-scrape" {
			t.Errorf("ServiceMonitor endpoint %+v: want https with the web CA and basic auth", ep)
		}
		o = decode(t, "helm", render(t, "--set", "tls.web.enabled=true"))
		if p := o.statefulSet(t, "sentinel").Spec.Template.Spec.Containers[0].ReadinessProbe; p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("web TLS without basic auth: readiness probe %+v, want HTTPS", p)
		}
	})
	t.Run("everything optional off", func(t *testing.T) {
		o := decode(t, "helm", render(t, "--set", "serviceMonitor.enabled=false", "--set", "prometheusRule.enabled=false",
			"--set", "networkPolicy.enabled=false", "--set", "networkPolicy.alertmanager.admitSentinel=false", "--set", "tls.otlp.enabled=false"))
		if len(o.serviceMonitors)+len(o.prometheusRules)+len(o.netpols)+len(o.certificates)+len(o.issuers) != 0 {
			t.Errorf("left: %d ServiceMonitors, %d PrometheusRules, %d NetworkPolicies, %d Certificates, %d Issuers",
				len(o.serviceMonitors), len(o.prometheusRules), len(o.netpols), len(o.certificates), len(o.issuers))
		}
		if cfg := helmConfig(t, o); cfg.OTLPGRPCTLS != nil || cfg.OTLPHTTPTLS != nil {
			t.Errorf("tls.otlp.enabled=false: the config still has otlp TLS")
		}
	})
	t.Run("a misspelt value is refused", func(t *testing.T) {
		// values.schema.json, as sentinel's own config refuses unknown fields.
		for _, set := range []string{"persistance.enabled=false", "tls.otlp.certmanager=false", "alertmanager.urls={alertmanager-main:9093}"} {
			out, err := exec.Command(helmBinary(t), "template", "sentinel", chart, "--set", set).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "schema") {
				t.Errorf("helm template --set %s: %v\n%s", set, err, out)
			}
		}
	})
	t.Run("HA without mutual TLS is refused", func(t *testing.T) {
		cmd := exec.Command(helmBinary(t), "template", "sentinel", chart, "--set", "ha.enabled=true", "--set", "tls.otlp.enabled=false")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "ha.enabled needs tls.otlp.enabled") {
			t.Errorf("helm template with ha.enabled and tls.otlp.enabled=false: %v\n%s", err, out)
		}
	})
	t.Run("another release name", func(t *testing.T) {
		out := runHelm(t, "template", "sre", chart, "--namespace", "observability")
		for _, want := range []string{"name: sre-sentinel\n", "sre-sentinel.observability.svc", "name: sre-sentinel-rules\n"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("release sre in observability: the rendering lacks %q", want)
			}
		}
	})
}

// helmConfig parses the chart's sentinel.yaml with sentinel's parser.
func helmConfig(t *testing.T, o *objects) *config.Config {
	t.Helper()
	text := o.configMap(t, "sentinel-config").Data["sentinel.yaml"]
	if cfg, err := config.Parse("sentinel.yaml", []byte(text)); err == nil {
		return cfg
	}
	s := o.statefulSet(t, "sentinel").Spec.Template.Spec
	text, _ = withOTLPCerts(t, s, s.Containers[0], text)
	cfg, err := config.Parse("sentinel.yaml", []byte(text))
	if err != nil {
		t.Fatalf("sentinel rejects the chart's sentinel.yaml: %v\n%s", err, text)
	}
	return cfg
}

// agree checks that the kustomize build and the chart's rendering are the
// same objects with the same content. What may differ: Helm's own labels
// (instance, managed-by, chart), the checksum annotations that roll the
// Collector, kustomize's hash suffix on the Collector's ConfigMap, and
// the comments and layout of the files in ConfigMaps (compared as YAML).
func agree(t *testing.T, kust, helm []manifest) {
	t.Helper()
	k, h := normalize(t, kust), normalize(t, helm)
	var kk, hk []string
	for key := range k {
		kk = append(kk, key)
	}
	for key := range h {
		hk = append(hk, key)
	}
	sort.Strings(kk)
	sort.Strings(hk)
	if !slices.Equal(kk, hk) {
		t.Errorf("kustomize builds %v\nhelm renders    %v", kk, hk)
	}
	for key, kobj := range k {
		hobj, ok := h[key]
		if !ok {
			continue
		}
		if !reflect.DeepEqual(kobj, hobj) {
			kj, _ := json.MarshalIndent(kobj, "", "  ")
			hj, _ := json.MarshalIndent(hobj, "", "  ")
			t.Errorf("%s differs:\nkustomize: %s\nhelm: %s", key, kj, hj)
		}
	}
}

var kustomizeHash = regexp.MustCompile(`^(.*)-[a-z0-9]{10}$`)

func normalize(t *testing.T, docs []manifest) map[string]any {
	t.Helper()
	// kustomize's hashed ConfigMap names, to their names.
	renamed := map[string]string{}
	for _, d := range docs {
		if m := kustomizeHash.FindStringSubmatch(d.name); d.kind == "ConfigMap" && m != nil && strings.HasSuffix(m[1], "-collector") {
			renamed[d.name] = m[1]
		}
	}
	out := map[string]any{}
	for _, d := range docs {
		var obj map[string]any
		if err := yaml.Unmarshal(d.data, &obj); err != nil {
			t.Fatal(err)
		}
		obj = rename(obj, renamed).(map[string]any)
		meta := obj["metadata"].(map[string]any)
		dropLabels(meta)
		if spec, ok := obj["spec"].(map[string]any); ok {
			if tmpl, ok := spec["template"].(map[string]any); ok {
				tm := tmpl["metadata"].(map[string]any)
				if ann, ok := tm["annotations"].(map[string]any); ok {
					for k := range ann {
						if strings.HasPrefix(k, "checksum/") {
							delete(ann, k)
						}
					}
					if len(ann) == 0 {
						delete(tm, "annotations")
					}
				}
			}
		}
		if d.kind == "ConfigMap" {
			if data, ok := obj["data"].(map[string]any); ok {
				for k, v := range data {
					var parsed any
					if err := yaml.Unmarshal([]byte(v.(string)), &parsed); err != nil {
						t.Fatalf("ConfigMap %s: %s is not YAML: %v", d.name, k, err)
					}
					data[k] = parsed
				}
			}
		}
		out[d.kind+"/"+meta["name"].(string)] = obj
	}
	return out
}

func dropLabels(meta map[string]any) {
	labels, ok := meta["labels"].(map[string]any)
	if !ok {
		return
	}
	for _, k := range []string{"app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
		delete(labels, k)
	}
}

// rename replaces every string equal to a key of names with its value.
func rename(v any, names map[string]string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = rename(e, names)
		}
	case []any:
		for i, e := range v {
			v[i] = rename(e, names)
		}
	case string:
		if n, ok := names[v]; ok {
			return n
		}
	}
	return v
}
