package deploy

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/rules"
)

// objects is one kustomize build, decoded strictly into API types.
type objects struct {
	namespaces      []corev1.Namespace
	serviceAccounts []corev1.ServiceAccount
	configMaps      []corev1.ConfigMap
	secrets         []corev1.Secret
	services        []corev1.Service
	deployments     []appsv1.Deployment
	statefulSets    []appsv1.StatefulSet
	daemonSets      []appsv1.DaemonSet
	pdbs            []policyv1.PodDisruptionBudget
	netpols         []networkingv1.NetworkPolicy
	clusterRoles    []rbacv1.ClusterRole
	bindings        []rbacv1.ClusterRoleBinding
	serviceMonitors []monitoringv1.ServiceMonitor // the Prometheus Operator's
	prometheusRules []monitoringv1.PrometheusRule
	certificates    []certificate // cert-manager's
	issuers         []issuer
}

// build runs kustomize on dir of fsys as `kubectl apply -k` would, and
// decodes every object strictly: an unknown or misspelt field fails.
func build(t *testing.T, fsys filesys.FileSystem, dir string) *objects {
	t.Helper()
	opts := krusty.MakeDefaultOptions() // LoadRestrictionsRootOnly, as kubectl
	resMap, err := krusty.MakeKustomizer(opts).Run(fsys, dir)
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
	return decode(t, dir, docs)
}

// manifest is one object of a build or a chart's rendering, as YAML.
type manifest struct {
	kind, apiVersion, name, namespace string
	data                              []byte
}

// decode decodes every object strictly into its API type: an unknown or
// misspelt field fails.
func decode(t *testing.T, dir string, docs []manifest) *objects {
	t.Helper()
	o := &objects{}
	for _, res := range docs {
		data := res.data
		var target any
		switch res.kind {
		case "Namespace":
			o.namespaces = append(o.namespaces, corev1.Namespace{})
			target = &o.namespaces[len(o.namespaces)-1]
		case "ServiceAccount":
			o.serviceAccounts = append(o.serviceAccounts, corev1.ServiceAccount{})
			target = &o.serviceAccounts[len(o.serviceAccounts)-1]
		case "ConfigMap":
			o.configMaps = append(o.configMaps, corev1.ConfigMap{})
			target = &o.configMaps[len(o.configMaps)-1]
		case "Secret":
			o.secrets = append(o.secrets, corev1.Secret{})
			target = &o.secrets[len(o.secrets)-1]
		case "Service":
			o.services = append(o.services, corev1.Service{})
			target = &o.services[len(o.services)-1]
		case "Deployment":
			o.deployments = append(o.deployments, appsv1.Deployment{})
			target = &o.deployments[len(o.deployments)-1]
		case "StatefulSet":
			o.statefulSets = append(o.statefulSets, appsv1.StatefulSet{})
			target = &o.statefulSets[len(o.statefulSets)-1]
		case "DaemonSet":
			o.daemonSets = append(o.daemonSets, appsv1.DaemonSet{})
			target = &o.daemonSets[len(o.daemonSets)-1]
		case "PodDisruptionBudget":
			o.pdbs = append(o.pdbs, policyv1.PodDisruptionBudget{})
			target = &o.pdbs[len(o.pdbs)-1]
		case "NetworkPolicy":
			o.netpols = append(o.netpols, networkingv1.NetworkPolicy{})
			target = &o.netpols[len(o.netpols)-1]
		case "ClusterRole":
			o.clusterRoles = append(o.clusterRoles, rbacv1.ClusterRole{})
			target = &o.clusterRoles[len(o.clusterRoles)-1]
		case "ClusterRoleBinding":
			o.bindings = append(o.bindings, rbacv1.ClusterRoleBinding{})
			target = &o.bindings[len(o.bindings)-1]
		case "ServiceMonitor", "PrometheusRule":
			target = o.monitoringTarget(t, res.apiVersion, res.kind)
		case "Certificate", "Issuer":
			target = o.certManagerTarget(t, res.apiVersion, res.kind)
		default:
			t.Fatalf("%s: no test decodes kind %s (%s)", dir, res.kind, res.name)
		}
		if err := yaml.UnmarshalStrict(data, target); err != nil {
			t.Fatalf("%s: %s %s does not decode strictly: %v\n%s", dir, res.kind, res.name, err, data)
		}
		if ns := res.namespace; ns != "" && ns != "monitoring" {
			t.Errorf("%s: %s %s is in namespace %q, want monitoring", dir, res.kind, res.name, ns)
		}
	}
	return o
}

func (o *objects) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	for i := range o.deployments {
		if o.deployments[i].Name == name {
			return &o.deployments[i]
		}
	}
	t.Fatalf("no Deployment %s", name)
	return nil
}

func (o *objects) statefulSet(t *testing.T, name string) *appsv1.StatefulSet {
	t.Helper()
	for i := range o.statefulSets {
		if o.statefulSets[i].Name == name {
			return &o.statefulSets[i]
		}
	}
	t.Fatalf("no StatefulSet %s", name)
	return nil
}

// configMap finds a ConfigMap by its name before kustomize's hash suffix.
func (o *objects) configMap(t *testing.T, name string) *corev1.ConfigMap {
	t.Helper()
	re := regexp.MustCompile("^" + regexp.QuoteMeta(name) + "(-[a-z0-9]{10})?$")
	for i := range o.configMaps {
		if re.MatchString(o.configMaps[i].Name) {
			return &o.configMaps[i]
		}
	}
	t.Fatalf("no ConfigMap %s", name)
	return nil
}

func (o *objects) service(t *testing.T, name string) *corev1.Service {
	t.Helper()
	for i := range o.services {
		if o.services[i].Name == name {
			return &o.services[i]
		}
	}
	t.Fatalf("no Service %s", name)
	return nil
}

// ruleFiles are the rule pack: deploy/rules/*.yaml without the unit tests.
func ruleFiles(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("rules", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.yaml") {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = data
	}
	if len(out) == 0 {
		t.Fatal("deploy/rules/ holds no rule file")
	}
	return out
}

// withHA is the deploy/ tree in memory with the HA component enabled, as
// the comment in deploy/kustomization.yaml tells users to.
func withHA(t *testing.T) filesys.FileSystem {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path == "helm" { // the chart; its files/ are symlinks
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.Join("/deploy", path), data)
	})
	if err != nil {
		t.Fatal(err)
	}
	k, err := mem.ReadFile("/deploy/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const off, on = "  # - overlays/ha\n", "  - overlays/ha\n"
	if !bytes.Contains(k, []byte(off)) {
		t.Fatalf("deploy/kustomization.yaml no longer has the commented-out HA component that docs/kubernetes.md tells users to enable")
	}
	if err := mem.WriteFile("/deploy/kustomization.yaml", bytes.Replace(k, []byte(off), []byte(on), 1)); err != nil {
		t.Fatal(err)
	}
	return mem
}

func TestDefault(t *testing.T) {
	o := build(t, filesys.MakeFsOnDisk(), ".")
	checkCommon(t, o)
	d := o.statefulSet(t, "sentinel")
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1", d.Spec.Replicas)
	}
	if len(o.pdbs) != 1 || o.pdbs[0].Spec.MaxUnavailable == nil || o.pdbs[0].Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("one replica: the PodDisruptionBudget must let a drain evict it: %+v", o.pdbs)
	}
}

func TestHA(t *testing.T) {
	o := build(t, withHA(t), "/deploy")
	checkCommon(t, o)
	checkHA(t, o)
}

// checkHA checks the HA form: two spread replicas, the PDB, the headless
// Service and the Collector that routes spans by trace ID to it.
func checkHA(t *testing.T, o *objects) {
	t.Helper()
	d := o.statefulSet(t, "sentinel")
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	if len(d.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
		t.Errorf("the replicas are not spread over nodes")
	}
	// The update cmd/sentinel's HA test proves pages once: one replica at
	// a time, the next only once the replaced one is Ready, so the other
	// replica sends the firing alerts meanwhile.
	if d.Spec.PodManagementPolicy != appsv1.OrderedReadyPodManagement || d.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		t.Errorf("HA update: %s, %+v: want OrderedReady and RollingUpdate", d.Spec.PodManagementPolicy, d.Spec.UpdateStrategy)
	}
	pdb := o.pdbs[0].Spec
	if pdb.MinAvailable == nil || pdb.MinAvailable.IntValue() != 1 || pdb.MaxUnavailable != nil {
		t.Errorf("HA PodDisruptionBudget: %+v", pdb)
	}
	headless := o.service(t, "sentinel-replicas")
	if headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("sentinel-replicas must be headless (one DNS record per replica)")
	}
	collector := o.deployment(t, "sentinel-collector")
	checkPodSecurity(t, "sentinel-collector", collector.Spec.Template.Spec)
	checkVolumes(t, o, "sentinel-collector", collector.Spec.Template.Spec)

	// The collector's loadbalancing exporter resolves the headless Service
	// and routes by trace ID, so that each replica gets a uniform sample of
	// every rule's requests (and whole traces for its exemplars).
	var cfg struct {
		Exporters map[string]struct {
			RoutingKey        string   `json:"routing_key"`
			RoutingAttributes []string `json:"routing_attributes"`
			Resolver          struct {
				DNS struct {
					Hostname string `json:"hostname"`
					Port     string `json:"port"`
				} `json:"dns"`
			} `json:"resolver"`
			Endpoint string `json:"endpoint"`
		} `json:"exporters"`
	}
	if err := yaml.Unmarshal([]byte(o.configMap(t, "sentinel-collector").Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	lb, ok := cfg.Exporters["loadbalancing/sentinel"]
	if !ok {
		t.Fatalf("no loadbalancing/sentinel exporter: %+v", cfg.Exporters)
	}
	if want := headless.Name + "." + headless.Namespace + ".svc.cluster.local"; lb.Resolver.DNS.Hostname != want || lb.Resolver.DNS.Port != "4317" {
		t.Errorf("loadbalancing resolver %+v, want %s port 4317", lb.Resolver.DNS, want)
	}
	// Routing by an attribute would put every span of a service (all of
	// the apiserver's) on one replica: no redundancy, and the replicas'
	// alerts would differ.
	if lb.RoutingKey != "traceID" || len(lb.RoutingAttributes) > 0 {
		t.Errorf("loadbalancing routing_key %q %v, want traceID", lb.RoutingKey, lb.RoutingAttributes)
	}

	// Both replicas send the same alerts: nothing in the config tells
	// them apart (an external label per pod would defeat Alertmanager's
	// deduplication).
	var args []string
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		if strings.Contains(a, "$(") {
			args = append(args, a)
		}
	}
	if len(args) > 0 || len(d.Spec.Template.Spec.Containers[0].Env) > 0 {
		t.Errorf("replica-specific args or env %v %v: both replicas must send identical alert labels", args, d.Spec.Template.Spec.Containers[0].Env)
	}
}

// TestHASchedulesOnOneWorker: the walk-through's kind cluster has one
// worker (its control-plane node is tainted), so the HA replicas' spread
// must be a preference, or the second replica stays Pending.
func TestHASchedulesOnOneWorker(t *testing.T) {
	o := build(t, withHA(t), "/deploy")
	for name, pod := range map[string]corev1.PodSpec{
		"sentinel":           o.statefulSet(t, "sentinel").Spec.Template.Spec,
		"sentinel-collector": o.deployment(t, "sentinel-collector").Spec.Template.Spec,
	} {
		for _, c := range pod.TopologySpreadConstraints {
			if c.WhenUnsatisfiable != corev1.ScheduleAnyway {
				t.Errorf("%s: spread over %s is %s: with kind's one worker a replica would stay Pending", name, c.TopologyKey, c.WhenUnsatisfiable)
			}
		}
		if a := pod.Affinity; a != nil && a.PodAntiAffinity != nil && len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0 {
			t.Errorf("%s: required pod anti-affinity: with kind's one worker a replica would stay Pending", name)
		}
	}
	var cluster struct {
		Nodes []struct {
			Role string `json:"role"`
		} `json:"nodes"`
	}
	data, err := os.ReadFile(filepath.Join("kind", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &cluster); err != nil {
		t.Fatal(err)
	}
	workers := 0
	for _, n := range cluster.Nodes {
		if n.Role == "worker" {
			workers++
		}
	}
	if workers != 1 {
		t.Errorf("the kind cluster has %d workers; docs/kubernetes.md says one (both HA replicas share it)", workers)
	}
}

// checkCommon checks what both variants share.
func checkCommon(t *testing.T, o *objects) {
	t.Helper()
	// The namespace is the user's (kube-prometheus's monitoring, or one
	// made with kubectl create namespace): `kubectl delete -k` must not
	// delete it, and everything else in it.
	if len(o.namespaces) != 0 {
		t.Errorf("the build creates Namespaces %+v: it must only use one", o.namespaces)
	}
	checkRBAC(t, o)

	d := o.statefulSet(t, "sentinel")
	pod := d.Spec.Template.Spec
	checkPodSecurity(t, "sentinel", pod)
	checkVolumes(t, o, "sentinel", pod)
	if pod.ServiceAccountName != "sentinel" {
		t.Errorf("serviceAccountName %q", pod.ServiceAccountName)
	}
	if !reflect.DeepEqual(d.Spec.Selector.MatchLabels, map[string]string{"app.kubernetes.io/name": "sentinel"}) {
		t.Errorf("selector %v", d.Spec.Selector.MatchLabels)
	}
	c := pod.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if want := map[string]int32{"otlp-grpc": 4317, "otlp-http": 4318, "web": 9464}; !reflect.DeepEqual(ports, want) {
		t.Errorf("container ports %v, want %v", ports, want)
	}
	checkProbe(t, "readiness", c.ReadinessProbe, "/-/ready", ports)
	checkProbe(t, "liveness", c.LivenessProbe, "/-/healthy", ports)

	args := map[string]string{}
	for _, a := range c.Args {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		args[k] = v
	}
	if args["web.listen-address"] != ":9464" {
		t.Errorf("--web.listen-address %q", args["web.listen-address"])
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	// --storage.path is a writable volume.
	storage, ok := mounts[args["storage.path"]]
	if !ok || storage.ReadOnly {
		t.Errorf("--storage.path=%s is not a writable volume mount: %+v", args["storage.path"], c.VolumeMounts)
	} else {
		checkStorage(t, d, storage.Name, volumes)
	}

	// The config file is the ConfigMap's, and sentinel's parser takes it.
	cfgDir, cfgFile := filepath.Split(args["config.file"])
	cfgMount, ok := mounts[filepath.Clean(cfgDir)]
	if !ok || volumes[cfgMount.Name].ConfigMap == nil {
		t.Fatalf("--config.file=%s is not in a ConfigMap volume", args["config.file"])
	}
	cm := o.configMap(t, "sentinel-config")
	if volumes[cfgMount.Name].ConfigMap.Name != cm.Name {
		t.Errorf("config volume mounts %s, not %s", volumes[cfgMount.Name].ConfigMap.Name, cm.Name)
	}
	// Its otlp.*.tls files are a Secret's, which cert-manager writes in
	// the cluster: certificates made here stand in for them.
	cfgText, certDir := withOTLPCerts(t, pod, c, cm.Data[cfgFile])
	cfg, err := config.Parse(args["config.file"], []byte(cfgText))
	if err != nil {
		t.Fatalf("sentinel rejects the ConfigMap's %s: %v", cfgFile, err)
	}
	checkScrapeConfigs(t, o, args["config.file"], cfgText, cfg)

	// The rule pack's ConfigMap is deploy/rules/, byte for byte, and it is
	// mounted where the config's rule_files look.
	pack := o.configMap(t, "sentinel-rules")
	files := ruleFiles(t)
	var gotKeys, wantKeys []string
	for k := range pack.Data {
		gotKeys = append(gotKeys, k)
	}
	for k := range files {
		wantKeys = append(wantKeys, k)
	}
	sort.Strings(gotKeys)
	sort.Strings(wantKeys)
	if !reflect.DeepEqual(gotKeys, wantKeys) {
		t.Errorf("the rules ConfigMap holds %v, deploy/rules/ %v: list every rule file in deploy/kustomization.yaml", gotKeys, wantKeys)
	}
	for name, data := range files {
		if pack.Data[name] != string(data) {
			t.Errorf("the rules ConfigMap's %s differs from deploy/rules/%s", name, name)
		}
		if _, err := rules.Parse(name, []byte(pack.Data[name]), rules.Options{DefaultInterval: cfg.EvaluationInterval}); err != nil {
			t.Errorf("rules.Parse rejects %s: %v", name, err)
		}
	}
	var rulesMount *corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		if v := volumes[m.Name]; v.ConfigMap != nil && v.ConfigMap.Name == pack.Name {
			rulesMount = &m
		}
	}
	if rulesMount == nil {
		t.Fatalf("the rules ConfigMap %s is not mounted", pack.Name)
	}
	for name := range files {
		matched := false
		for _, pattern := range cfg.RulePatterns() {
			if ok, _ := filepath.Match(pattern, filepath.Join(rulesMount.MountPath, name)); ok {
				matched = true
			}
		}
		if !matched {
			t.Errorf("rule_files %v do not load %s mounted at %s", cfg.RuleFiles, name, rulesMount.MountPath)
		}
	}
	if cfg.StoragePath != args["storage.path"] {
		t.Errorf("storage.path %q in the config, --storage.path=%q", cfg.StoragePath, args["storage.path"])
	}
	// The Alertmanager it sends to is kube-prometheus's, alertmanager-main,
	// the name deploy/alertmanager's example has too.
	if want := "http://alertmanager-main.monitoring.svc:9093"; !slices.Contains(cfg.Alertmanagers, want) {
		t.Errorf("alertmanagers %v, want %s", cfg.Alertmanagers, want)
	}
	am := build(t, filesys.MakeFsOnDisk(), "alertmanager").service(t, "alertmanager-main")
	if am.Spec.Ports[0].Port != 9093 {
		t.Errorf("deploy/alertmanager's Service alertmanager-main serves %d, not 9093", am.Spec.Ports[0].Port)
	}

	svc := o.service(t, "sentinel")
	svcPorts := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		svcPorts[p.Name] = p.Port
		if p.TargetPort.Type != intstr.String || ports[p.TargetPort.StrVal] != p.Port {
			t.Errorf("Service port %s targets %v", p.Name, p.TargetPort.String())
		}
	}
	if want := map[string]int32{"otlp-grpc": 4317, "otlp-http": 4318, "web": 9464}; !reflect.DeepEqual(svcPorts, want) {
		t.Errorf("Service ports %v, want %v", svcPorts, want)
	}
	if !reflect.DeepEqual(svc.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("Service selector %v, pod labels %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}

	if len(o.pdbs) != 1 || !reflect.DeepEqual(o.pdbs[0].Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget %+v does not select the Deployment's pods", o.pdbs)
	}
	checkNetworkPolicy(t, o, d.Spec.Selector.MatchLabels)
	checkSentinelTLS(t, o, cfg, certDir)
}

// checkScrapeConfigs: the control plane's scrape jobs (commented out while
// no shipped rule reads metrics) pass sentinel's parser once uncommented,
// discover the apiserver and the kubelets over HTTPS with the service
// account's token and CA, and the ClusterRole lets their discovery list
// what it lists.
func checkScrapeConfigs(t *testing.T, o *objects, file, text string, cfg *config.Config) {
	t.Helper()
	if len(cfg.ScrapeConfigs) == 0 {
		var block []string
		in := false
		for _, line := range strings.Split(text, "\n") {
			if line == "# scrape_configs:" {
				in = true
			}
			if in && !strings.HasPrefix(line, "#") {
				break
			}
			if in {
				block = append(block, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
			}
		}
		if len(block) == 0 {
			t.Fatalf("%s has neither scrape_configs nor a commented-out `# scrape_configs:` block", file)
		}
		var err error
		cfg, err = config.Parse(file, []byte(text+"\n"+strings.Join(block, "\n")+"\n"))
		if err != nil {
			t.Fatalf("sentinel rejects the scrape_configs of %s, uncommented: %v", file, err)
		}
	}
	const token, ca = "/var/run/secrets/kubernetes.io/serviceaccount/token", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	roles := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		hc := sc.HTTPClientConfig
		tokenFile := hc.BearerTokenFile // Validate moves bearer_token_file into authorization
		if a := hc.Authorization; a != nil && a.Type == "Bearer" {
			tokenFile = a.CredentialsFile
		}
		if sc.Scheme != "https" || sc.MetricsPath != "/metrics" || tokenFile != token || hc.TLSConfig.CAFile != ca {
			t.Errorf("scrape job %s: %s %s, token %q, CA %q: want https /metrics with the service account's token and CA",
				sc.JobName, sc.Scheme, sc.MetricsPath, tokenFile, hc.TLSConfig.CAFile)
		}
		for _, kc := range sc.KubernetesSDConfigs {
			roles[sc.JobName+"/"+kc.Role] = true
		}
	}
	if !roles["apiserver/"+config.RoleEndpoints] || !roles["kubelet/"+config.RoleNode] {
		t.Errorf("scrape jobs discover %v: want apiserver by role endpoints and kubelet by role node", roles)
	}
	// What each discovery role LISTs, the ClusterRole must let it list.
	allowed := func(resource, verb string) bool {
		for _, cr := range o.clusterRoles {
			for _, r := range cr.Rules {
				if slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
					return true
				}
			}
		}
		return false
	}
	for _, need := range [][2]string{{"nodes", "list"}, {"endpoints", "list"}, {"nodes/metrics", "get"}} {
		if !allowed(need[0], need[1]) {
			t.Errorf("the ClusterRole does not allow %s %s, which the scrape jobs need", need[1], need[0])
		}
	}
}

func checkProbe(t *testing.T, what string, p *corev1.Probe, path string, ports map[string]int32) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("no %s probe", what)
		return
	}
	port := p.HTTPGet.Port
	if p.HTTPGet.Path != path || (port.StrVal != "web" && port.IntValue() != 9464) || ports["web"] != 9464 {
		t.Errorf("%s probe %s on %s, want %s on 9464", what, p.HTTPGet.Path, port.String(), path)
	}
}

// checkPodSecurity holds every pod we ship to the restricted Pod Security
// Standard, plus a read-only root filesystem and resource bounds.
func checkPodSecurity(t *testing.T, name string, pod corev1.PodSpec) {
	t.Helper()
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil ||
		psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %+v: want runAsNonRoot and seccompProfile RuntimeDefault", name, psc)
	}
	if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		t.Errorf("%s: runs as root", name)
	}
	if len(pod.InitContainers) > 0 {
		t.Errorf("%s: init containers are not checked here", name)
	}
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s/%s: no securityContext", name, c.Name)
			continue
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s/%s: allowPrivilegeEscalation must be false", name, c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s/%s: readOnlyRootFilesystem must be true", name, c.Name)
		case sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s/%s: capabilities %+v, want drop ALL and add none", name, c.Name, sc.Capabilities)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("%s/%s: privileged", name, c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: resources %+v: want cpu and memory requests and a memory limit", name, c.Name, c.Resources)
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s/%s: want readiness and liveness probes", name, c.Name)
		}
		if c.Image == "" || strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
			t.Errorf("%s/%s: image %q: pin a tag", name, c.Name, c.Image)
		}
	}
}

// checkVolumes: every ConfigMap or Secret a pod mounts is in the build,
// unless it is optional (created by the user, like the PagerDuty key).
func checkVolumes(t *testing.T, o *objects, name string, pod corev1.PodSpec) {
	t.Helper()
	have := map[string]bool{}
	for _, cm := range o.configMaps {
		have["configmap/"+cm.Name] = true
	}
	for _, s := range o.secrets {
		have["secret/"+s.Name] = true
	}
	for _, c := range o.certificates { // cert-manager writes its Secret
		have["secret/"+c.Spec.SecretName] = true
	}
	for _, v := range pod.Volumes {
		switch {
		case v.ConfigMap != nil && !have["configmap/"+v.ConfigMap.Name] && (v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional):
			t.Errorf("%s: volume %s mounts ConfigMap %s, which the build lacks", name, v.Name, v.ConfigMap.Name)
		case v.Secret != nil && !have["secret/"+v.Secret.SecretName] && (v.Secret.Optional == nil || !*v.Secret.Optional):
			t.Errorf("%s: volume %s mounts Secret %s, which the build lacks", name, v.Name, v.Secret.SecretName)
		}
	}
}

// checkRBAC: exactly the permissions sentinel needs, nothing more.
func checkRBAC(t *testing.T, o *objects) {
	t.Helper()
	want := []rbacv1.PolicyRule{
		{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
		// Role node discovery LISTs /api/v1/nodes; watch is for when it watches.
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"nodes/metrics", "nodes/proxy"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"endpoints"}, Verbs: []string{"list", "watch"}},
	}
	if len(o.clusterRoles) != 1 || !reflect.DeepEqual(o.clusterRoles[0].Rules, want) || o.clusterRoles[0].AggregationRule != nil {
		t.Errorf("ClusterRoles %+v, want one with exactly %+v", o.clusterRoles, want)
	}
	if len(o.bindings) != 1 {
		t.Fatalf("%d ClusterRoleBindings, want 1", len(o.bindings))
	}
	b := o.bindings[0]
	if b.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: o.clusterRoles[0].Name}) ||
		!reflect.DeepEqual(b.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sentinel", Namespace: "monitoring"}}) {
		t.Errorf("ClusterRoleBinding %+v", b)
	}
	found := false
	for _, sa := range o.serviceAccounts {
		found = found || sa.Name == "sentinel"
	}
	if !found {
		t.Errorf("no ServiceAccount sentinel")
	}
}

func checkNetworkPolicy(t *testing.T, o *objects, selector map[string]string) {
	t.Helper()
	var np *networkingv1.NetworkPolicy
	for i := range o.netpols {
		if o.netpols[i].Name == "sentinel" {
			np = &o.netpols[i]
		}
	}
	if np == nil {
		t.Fatal("no NetworkPolicy sentinel")
	}
	if !reflect.DeepEqual(np.Spec.PodSelector.MatchLabels, selector) {
		t.Errorf("NetworkPolicy selects %v", np.Spec.PodSelector.MatchLabels)
	}
	if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
		t.Errorf("policyTypes %v: want both directions", np.Spec.PolicyTypes)
	}
	ports := func(ps []networkingv1.NetworkPolicyPort) []string {
		var out []string
		for _, p := range ps {
			out = append(out, fmt.Sprintf("%s/%s", p.Port.String(), *p.Protocol))
		}
		return out
	}
	var in, out []string
	for _, r := range np.Spec.Ingress {
		if len(r.From) == 0 {
			t.Errorf("ingress rule on %v is open to every source", ports(r.Ports))
		}
		in = append(in, ports(r.Ports)...)
	}
	for _, r := range np.Spec.Egress {
		if len(r.To) == 0 {
			t.Errorf("egress rule on %v is open to every destination", ports(r.Ports))
		}
		out = append(out, ports(r.Ports)...)
	}
	sort.Strings(in)
	sort.Strings(out)
	if want := []string{"4317/TCP", "4318/TCP", "9464/TCP"}; !reflect.DeepEqual(in, want) {
		t.Errorf("ingress ports %v, want %v", in, want)
	}
	for _, want := range []string{"53/UDP", "53/TCP", "9093/TCP", "443/TCP", "6443/TCP"} {
		if !slices.Contains(out, want) {
			t.Errorf("egress ports %v lack %s", out, want)
		}
	}
}

// TestTracing builds the node-local collector and checks the control
// plane's tracing configuration files.
func TestTracing(t *testing.T) {
	o := build(t, filesys.MakeFsOnDisk(), "tracing")
	if len(o.daemonSets) != 1 {
		t.Fatalf("%d DaemonSets, want the node-local collector", len(o.daemonSets))
	}
	ds := o.daemonSets[0]
	pod := ds.Spec.Template.Spec
	checkPodSecurity(t, ds.Name, pod)
	checkVolumes(t, o, ds.Name, pod)
	if !pod.HostNetwork || pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("the node-local collector must run on the host network and resolve cluster names")
	}
	var cfg struct {
		Receivers struct {
			OTLP struct {
				Protocols map[string]struct{ Endpoint string } `json:"protocols"`
			} `json:"otlp"`
		} `json:"receivers"`
		Exporters map[string]struct {
			Endpoint string `json:"endpoint"`
		} `json:"exporters"`
		Service struct {
			Pipelines map[string]struct {
				Exporters []string `json:"exporters"`
			} `json:"pipelines"`
		} `json:"service"`
	}
	if err := yaml.Unmarshal([]byte(o.configMap(t, "control-plane-collector").Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	for proto, r := range cfg.Receivers.OTLP.Protocols {
		if !strings.HasPrefix(r.Endpoint, "127.0.0.1:") {
			t.Errorf("otlp %s receiver on %s: a host-network collector must listen on loopback only", proto, r.Endpoint)
		}
	}
	if got := cfg.Exporters["otlp/sentinel"].Endpoint; got != "sentinel.monitoring.svc:4317" {
		t.Errorf("otlp/sentinel exporter to %q", got)
	}
	if got := cfg.Service.Pipelines["traces"].Exporters; !slices.Contains(got, "otlp/sentinel") || !slices.Contains(got, "otlp/tracing") {
		t.Errorf("traces pipeline exports to %v: want sentinel and the tracing backend", got)
	}

	// The host components' files point at that collector.
	type tracing struct {
		Endpoint               string `json:"endpoint"`
		SamplingRatePerMillion *int32 `json:"samplingRatePerMillion"`
	}
	for file, want := range map[string]string{
		"apiserver-tracing-config.yaml":          "apiserver.config.k8s.io/v1beta1",
		"apiserver-tracing-config-v1alpha1.yaml": "apiserver.config.k8s.io/v1alpha1",
	} {
		var tc struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			tracing
		}
		readStrict(t, filepath.Join("tracing", file), &tc)
		if tc.APIVersion != want || tc.Kind != "TracingConfiguration" || tc.Endpoint != "127.0.0.1:4317" || tc.SamplingRatePerMillion == nil {
			t.Errorf("%s: %+v", file, tc)
		}
	}
	var kc struct {
		APIVersion string  `json:"apiVersion"`
		Kind       string  `json:"kind"`
		Tracing    tracing `json:"tracing"`
	}
	readStrict(t, filepath.Join("tracing", "kubelet-config-tracing.yaml"), &kc)
	if kc.APIVersion != "kubelet.config.k8s.io/v1beta1" || kc.Kind != "KubeletConfiguration" || kc.Tracing.Endpoint != "127.0.0.1:4317" {
		t.Errorf("kubelet tracing: %+v", kc)
	}
	for file, prefix := range map[string]string{"etcd-v3.5.flags": "--experimental-", "etcd-v3.6.flags": "--"} {
		data, err := os.ReadFile(filepath.Join("tracing", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"enable-distributed-tracing=true", "distributed-tracing-address=127.0.0.1:4317"} {
			if !strings.Contains(string(data), prefix+want) {
				t.Errorf("%s lacks %s%s", file, prefix, want)
			}
		}
	}
}

func readStrict(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Errorf("%s: %v", path, err)
	}
}

// TestAlertmanager builds deploy/alertmanager: the config it carries is
// alertmanager.yaml (amtool checks it in cmd/sentinel's tests).
func TestAlertmanager(t *testing.T) {
	o := build(t, filesys.MakeFsOnDisk(), "alertmanager")
	am := o.deployment(t, "alertmanager")
	checkPodSecurity(t, "alertmanager", am.Spec.Template.Spec)
	checkVolumes(t, o, "alertmanager", am.Spec.Template.Spec)
	if svc := o.service(t, "alertmanager-main"); svc.Spec.Ports[0].Port != 9093 || svc.Spec.Selector["app.kubernetes.io/name"] != "alertmanager" {
		t.Errorf("Service alertmanager %+v", svc.Spec)
	}
	file, err := os.ReadFile(filepath.Join("alertmanager", "alertmanager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.secrets) != 1 || string(o.secrets[0].Data["alertmanager.yaml"]) != string(file) {
		t.Errorf("the Alertmanager Secret does not carry alertmanager.yaml")
	}
	// The PagerDuty key file is where the optional Secret is mounted.
	var cfg struct {
		Receivers []struct {
			Name             string `json:"name"`
			PagerdutyConfigs []struct {
				RoutingKeyFile string `json:"routing_key_file"`
			} `json:"pagerduty_configs"`
		} `json:"receivers"`
	}
	if err := yaml.Unmarshal(file, &cfg); err != nil {
		t.Fatal(err)
	}
	var keyFile string
	for _, r := range cfg.Receivers {
		for _, p := range r.PagerdutyConfigs {
			keyFile = p.RoutingKeyFile
		}
	}
	mounted := false
	for _, m := range am.Spec.Template.Spec.Containers[0].VolumeMounts {
		mounted = mounted || filepath.Dir(keyFile) == m.MountPath
	}
	if keyFile == "" || !mounted {
		t.Errorf("routing_key_file %q is not in a mounted volume", keyFile)
	}
}

// TestDockerfile keeps the image's build the one that stamps the version
// (cmd/sentinel's TestBinarySIGTERM builds with the same -X flags and checks
// `sentinel version`).
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{
		"FROM golang:1.26 AS build",
		"CGO_ENABLED=0",
		"go build -trimpath",
		`-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT"`,
		"./cmd/sentinel",
		"FROM gcr.io/distroless/static:nonroot",
		"USER 65532",
		`ENTRYPOINT ["/usr/local/bin/sentinel", "run"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	main, err := os.ReadFile(filepath.Join("..", "cmd", "sentinel", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*version\s*=\s*"`).Match(main) || !regexp.MustCompile(`(?m)^\s*commit\s*=\s*"`).Match(main) {
		t.Errorf("cmd/sentinel/main.go no longer has the version and commit variables the Dockerfile's -X flags set")
	}
}

// TestKind checks the walk-through's kind cluster and Jaeger: the files the
// cluster mounts exist, the apiserver reads the tracing configuration
// where it is mounted, and Jaeger's objects decode strictly.
func TestKind(t *testing.T) {
	var cluster struct {
		Nodes []struct {
			Role        string `json:"role"`
			ExtraMounts []struct {
				HostPath      string `json:"hostPath"`
				ContainerPath string `json:"containerPath"`
				ReadOnly      bool   `json:"readOnly"`
			} `json:"extraMounts"`
		} `json:"nodes"`
		KubeadmConfigPatches []string `json:"kubeadmConfigPatches"`
	}
	data, err := os.ReadFile(filepath.Join("kind", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &cluster); err != nil {
		t.Fatal(err)
	}
	mounted := map[string]bool{}
	for _, n := range cluster.Nodes {
		for _, m := range n.ExtraMounts {
			// kind resolves hostPath from where it runs: the repository's root.
			if _, err := os.Stat(filepath.Join("..", m.HostPath)); err != nil {
				t.Errorf("%s node mounts %s: %v", n.Role, m.HostPath, err)
			}
			mounted[m.ContainerPath] = true
		}
	}
	patched := 0
	for _, p := range cluster.KubeadmConfigPatches {
		if !strings.Contains(p, "tracing-config-file") {
			continue
		}
		patched++
		var cc map[string]any
		if err := yaml.Unmarshal([]byte(p), &cc); err != nil {
			t.Fatalf("kubeadm patch: %v\n%s", err, p)
		}
		if !strings.Contains(p, "/etc/kubernetes/tracing/apiserver-tracing-config.yaml") || !mounted["/etc/kubernetes/tracing/apiserver-tracing-config.yaml"] {
			t.Errorf("the apiserver's --tracing-config-file is not the mounted file:\n%s", p)
		}
	}
	if patched != 2 {
		t.Errorf("%d kubeadm patches set --tracing-config-file, want one for v1beta3 and one for v1beta4", patched)
	}

	docs, err := os.ReadFile(filepath.Join("kind", "jaeger.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(docs), "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		var target any
		switch meta.Kind {
		case "Deployment":
			target = &appsv1.Deployment{}
		case "Service":
			target = &corev1.Service{}
		default:
			t.Fatalf("jaeger.yaml: kind %q", meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), target); err != nil {
			t.Errorf("jaeger.yaml: %v", err)
		}
	}
}

// TestRunbooks: every alert of the rule pack has its page in docs/runbooks/,
// and the runbook_url annotations lead there.
func TestRunbooks(t *testing.T) {
	for file, data := range ruleFiles(t) {
		groups, err := rules.Parse(file, data, rules.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range groups {
			for _, r := range g.Rules {
				page := filepath.Join("..", "docs", "runbooks", r.Name+".md")
				if _, err := os.Stat(page); err != nil {
					t.Errorf("%s: no runbook for %s: %v", file, r.Name, err)
				}
			}
		}
		for _, m := range regexp.MustCompile(`runbook_url: "[^"]*/blob/main/(docs/runbooks/[^"]+)"`).FindAllSubmatch(data, -1) {
			if _, err := os.Stat(filepath.Join("..", string(m[1]))); err != nil {
				t.Errorf("%s: runbook_url leads to %s: %v", file, m[1], err)
			}
		}
	}
}

// checkStorage: --storage.path is a PersistentVolumeClaim per replica
// (the StatefulSet's volumeClaimTemplates), so the windows and budgets it
// snapshots survive restarts, reschedules and rollouts; the StatefulSet
// keeps the claims when it is deleted or scaled down; and it rolls one
// replica at a time, the next only once the previous is Ready (what the HA
// pair's page-once proof assumes).
func checkStorage(t *testing.T, s *appsv1.StatefulSet, volume string, volumes map[string]corev1.Volume) {
	t.Helper()
	if v, ok := volumes[volume]; ok {
		t.Errorf("--storage.path is the pod volume %+v: want the StatefulSet's volumeClaimTemplate %s, one PVC per replica", v, volume)
	}
	var pvc *corev1.PersistentVolumeClaim
	for i := range s.Spec.VolumeClaimTemplates {
		if s.Spec.VolumeClaimTemplates[i].Name == volume {
			pvc = &s.Spec.VolumeClaimTemplates[i]
		}
	}
	if pvc == nil {
		t.Fatalf("no volumeClaimTemplate %s for --storage.path", volume)
	}
	if !slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteOnce) || pvc.Spec.Resources.Requests.Storage().IsZero() {
		t.Errorf("volumeClaimTemplate %s: %+v: want ReadWriteOnce and a storage request", volume, pvc.Spec)
	}
	if p := s.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType ||
		p.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("persistentVolumeClaimRetentionPolicy %+v: the budgets' volumes must be retained", p)
	}
	if s.Spec.PodManagementPolicy != appsv1.OrderedReadyPodManagement {
		t.Errorf("podManagementPolicy %q: want OrderedReady (one replica at a time, the next once it is Ready)", s.Spec.PodManagementPolicy)
	}
	if u := s.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateStatefulSetStrategyType ||
		(u.RollingUpdate != nil && u.RollingUpdate.MaxUnavailable != nil && u.RollingUpdate.MaxUnavailable.IntValue() != 1) ||
		(u.RollingUpdate != nil && u.RollingUpdate.Partition != nil && *u.RollingUpdate.Partition != 0) {
		t.Errorf("updateStrategy %+v: want RollingUpdate of one replica at a time, every replica", u)
	}
	if s.Spec.ServiceName == "" {
		t.Errorf("the StatefulSet names no governing Service")
	}
}

// TestConfigMapsKeepTheirNames: the config and the rule pack's ConfigMaps
// are not renamed on each edit (kustomize's content hash), so that an edit
// updates the mounted files in place, sentinel reloads them, and the pods
// (and their windows) stay.
func TestConfigMapsKeepTheirNames(t *testing.T) {
	for name, fsys := range map[string]func() (filesys.FileSystem, string){
		"default": func() (filesys.FileSystem, string) { return filesys.MakeFsOnDisk(), "." },
		"ha":      func() (filesys.FileSystem, string) { return withHA(t), "/deploy" },
	} {
		fs, dir := fsys()
		o := build(t, fs, dir)
		mounted := map[string]bool{}
		for _, v := range o.statefulSet(t, "sentinel").Spec.Template.Spec.Volumes {
			if v.ConfigMap != nil {
				mounted[v.ConfigMap.Name] = true
			}
		}
		for _, cm := range []string{"sentinel-config", "sentinel-rules"} {
			if got := o.configMap(t, cm).Name; got != cm || !mounted[cm] {
				t.Errorf("%s: ConfigMap %s is built as %s (mounted: %v): want its name unchanged by its content", name, cm, got, mounted)
			}
		}
	}
}

// TestManagedClustersExample: the metrics-only rule that docs/kubernetes.md
// shows for managed clusters passes sentinel's parser.
func TestManagedClustersExample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", "kubernetes.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "## Managed clusters")
	if !ok {
		t.Fatal("docs/kubernetes.md has no Managed clusters section")
	}
	m := regexp.MustCompile("(?s)```yaml\n(\\s*groups:.*?)```").FindStringSubmatch(section)
	if m == nil {
		t.Fatal("the Managed clusters section shows no rule file")
	}
	lines := strings.Split(m[1], "\n")
	indent := len(lines[0]) - len(strings.TrimLeft(lines[0], " "))
	for i, l := range lines {
		if len(l) >= indent {
			lines[i] = l[indent:]
		}
	}
	groups, err := rules.Parse("kubernetes.md", []byte(strings.Join(lines, "\n")), rules.Options{})
	if err != nil {
		t.Fatalf("the managed clusters example: %v\n%s", err, m[1])
	}
	if len(groups) != 1 || len(groups[0].Rules) != 1 || groups[0].Rules[0].Source != rules.SourceMetrics {
		t.Errorf("the managed clusters example is not one metrics rule: %+v", groups)
	}
}
