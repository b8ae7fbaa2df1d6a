package scrape

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// fakeAPIServer serves the lists discovery reads, over TLS, insists on the
// bearer token, and allows only what the shipped ClusterRole grants: list
// (and watch) on nodes and endpoints. A GET of one endpoints object (the
// get verb) is refused as RBAC would refuse it.
type fakeAPIServer struct {
	*httptest.Server
	mu        sync.Mutex
	nodes     string
	endpoints map[string][]string // namespace → Endpoints objects (JSON)
	seen      []string            // request URIs
}

func newFakeAPIServer(t *testing.T, token string) *fakeAPIServer {
	f := &fakeAPIServer{endpoints: map[string][]string{}}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.seen = append(f.seen, r.URL.RequestURI())
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"kind":"Status","code":401}`, http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet {
			http.Error(w, `{"kind":"Status","code":405}`, http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/v1/"), "/")
		switch {
		case r.URL.Path == "/api/v1/nodes":
			fmt.Fprint(w, f.nodes)
		case len(parts) == 3 && parts[0] == "namespaces" && parts[2] == "endpoints":
			// list endpoints in a namespace, honouring metadata.name field selectors
			name := ""
			if fs := r.URL.Query().Get("fieldSelector"); fs != "" {
				var ok bool
				if name, ok = strings.CutPrefix(fs, "metadata.name="); !ok || strings.Contains(name, ",") {
					http.Error(w, `{"kind":"Status","code":400,"message":"unsupported field selector"}`, http.StatusBadRequest)
					return
				}
			}
			var items []string
			for _, ep := range f.endpoints[parts[1]] {
				if name == "" || strings.Contains(ep, fmt.Sprintf(`"name":%q`, name)) {
					items = append(items, ep)
				}
			}
			fmt.Fprintf(w, `{"kind":"EndpointsList","apiVersion":"v1","items":[%s]}`, strings.Join(items, ","))
		case len(parts) == 4 && parts[0] == "namespaces" && parts[2] == "endpoints":
			http.Error(w, fmt.Sprintf(`{"kind":"Status","code":403,"reason":"Forbidden","message":"endpoints %q is forbidden: User \"system:serviceaccount:monitoring:sentinel\" cannot get resource \"endpoints\" in API group \"\" in the namespace %q"}`, parts[3], parts[1]), http.StatusForbidden)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPIServer) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

func (f *fakeAPIServer) setNodes(s string) {
	f.mu.Lock()
	f.nodes = s
	f.mu.Unlock()
}

// endpointsFor sets the default namespace's Endpoints: the apiserver's
// "kubernetes" at port, and another service that discovery without
// namespaces must leave out.
func (f *fakeAPIServer) endpointsFor(port string) {
	f.mu.Lock()
	f.endpoints["default"] = []string{
		endpointsJSON("default", "other", "127.0.0.2", "8080"),
		endpointsJSON("default", "kubernetes", "127.0.0.1", port),
	}
	f.mu.Unlock()
}

func (f *fakeAPIServer) setEndpoints(ns string, objs ...string) {
	f.mu.Lock()
	f.endpoints[ns] = objs
	f.mu.Unlock()
}

func endpointsJSON(ns, name, ip, port string) string {
	return fmt.Sprintf(`{"metadata":{"name":%q,"namespace":%q},
"subsets":[{"addresses":[{"ip":%q}],"ports":[{"name":"https","port":%s,"protocol":"TCP"}]}]}`, name, ns, ip, port)
}

func nodeJSON(name, ip, port string) string {
	return fmt.Sprintf(`{"metadata":{"name":%q,"labels":{"kubernetes.io/hostname":%q}},
"status":{"addresses":[{"type":"Hostname","address":%q},{"type":"InternalIP","address":%q}],
"daemonEndpoints":{"kubeletEndpoint":{"Port":%s}}}}`, name, name, name, ip, port)
}

func TestKubernetesDiscovery(t *testing.T) {
	kubelet1 := httptest.NewTLSServer(growingHistogram())
	defer kubelet1.Close()
	kubelet2 := httptest.NewTLSServer(growingHistogram())
	defer kubelet2.Close()
	apiserverMetrics := httptest.NewServer(growingHistogram())
	defer apiserverMetrics.Close()

	api := newFakeAPIServer(t, "sa-token")
	_, p1, _ := net.SplitHostPort(hostOf(kubelet1.URL))
	_, p2, _ := net.SplitHostPort(hostOf(kubelet2.URL))
	_, pa, _ := net.SplitHostPort(hostOf(apiserverMetrics.URL))
	api.setNodes(`{"kind":"NodeList","items":[` + nodeJSON("node-a", "127.0.0.1", p1) + "," + nodeJSON("node-b", "127.0.0.1", p2) + `]}`)
	api.endpointsFor(pa)

	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	apiCA := writeCA(t, api.Server)
	// Both kubelets share httptest's certificate.
	kubeletCA := writeCA(t, kubelet1)
	cfgs := parseConfigs(t, fmt.Sprintf(`
scrape_configs:
  - job_name: kubelet
    scrape_interval: 100ms
    tls_config: {ca_file: %[1]s}
    kubernetes_sd_configs:
      - role: node
        api_server: %[2]s
        bearer_token_file: %[3]s
        tls_config: {ca_file: %[4]s}
  - job_name: apiserver
    scrape_interval: 100ms
    kubernetes_sd_configs:
      - role: endpoints
        api_server: %[2]s
        bearer_token_file: %[3]s
        tls_config: {ca_file: %[4]s}
`, kubeletCA, api.URL, token, apiCA))
	if cfgs[0].Scheme != "https" {
		t.Fatalf("a node-only job must default to https, got %q", cfgs[0].Scheme)
	}
	r := startScraper(t, cfgs, func(o *Options) { o.DiscoveryInterval = 100 * time.Millisecond })
	ts := waitScrapes(t, r.s, 3, 2, 10*time.Second)
	nodes := map[string]string{}
	for _, st := range ts {
		if st.Health != HealthGood {
			t.Errorf("%+v", st)
		}
		switch st.ScrapePool {
		case "kubelet":
			nodes[st.Labels["node"]] = st.Labels["instance"]
			if st.ScrapeURL != "https://"+st.Labels["instance"]+"/metrics" {
				t.Errorf("kubelet URL %s", st.ScrapeURL)
			}
		case "apiserver":
			if st.Labels["namespace"] != "default" || st.Labels["service"] != "kubernetes" || st.Labels["instance"] != "127.0.0.1:"+pa {
				t.Errorf("apiserver target labels %v", st.Labels)
			}
		}
	}
	if nodes["node-a"] != "127.0.0.1:"+p1 || nodes["node-b"] != "127.0.0.1:"+p2 {
		t.Errorf("kubelet targets %v", nodes)
	}
	checkListsOnly(t, api)
	// Observations carry the discovered node label.
	sawNode := false
	for _, o := range r.rec.take() {
		sawNode = sawNode || o.Job == "kubelet"
	}
	if !sawNode {
		t.Error("no observation from the kubelets")
	}

	// A node leaves; the next list drops its target.
	api.setNodes(`{"kind":"NodeList","items":[` + nodeJSON("node-a", "127.0.0.1", p1) + `]}`)
	testkit.Eventually(t, 10*time.Second, func() error {
		if ts := r.s.Targets(); len(ts) != 2 {
			return fmt.Errorf("node-b still a target: %+v", ts)
		}
		return nil
	})
}

func TestDiscoveryFailureKeepsTargets(t *testing.T) {
	api := newFakeAPIServer(t, "right")
	api.setNodes(`{"items":[]}`)
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgs := parseConfigs(t, fmt.Sprintf(`
scrape_configs:
  - job_name: kubelet
    kubernetes_sd_configs: [{role: node, api_server: %s, bearer_token_file: %s, tls_config: {ca_file: %s}}]
`, api.URL, token, writeCA(t, api.Server)))
	r := startScraper(t, cfgs, func(o *Options) { o.DiscoveryInterval = 50 * time.Millisecond })
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := testutilCounter(r, "kubelet", "node"); n < 2 {
			return fmt.Errorf("discovery errors not counted: %v", n)
		}
		return nil
	})
	if ts := r.s.Targets(); len(ts) != 0 {
		t.Errorf("targets %+v", ts)
	}
}

func testutilCounter(r *running, job, role string) float64 {
	return testutil.ToFloat64(r.s.metrics.sdErrors.WithLabelValues(job, role))
}

// checkListsOnly checks that discovery only listed (the list verb the
// ClusterRole grants), the apiserver's Endpoints by a field selector.
func checkListsOnly(t *testing.T, api *fakeAPIServer) {
	t.Helper()
	sawList := false
	for _, uri := range api.requests() {
		switch uri {
		case "/api/v1/nodes":
		case "/api/v1/namespaces/default/endpoints?fieldSelector=metadata.name%3Dkubernetes":
			sawList = true
		default:
			t.Errorf("discovery requested %s", uri)
		}
	}
	if !sawList {
		t.Errorf("no list of the kubernetes Endpoints in %q", api.requests())
	}
}

// TestEndpointsDiscoveryUsesList: role endpoints lists, with or without
// namespaces, and never GETs one object, which the fake API server refuses
// as RBAC refuses a verb the ClusterRole does not grant.
func TestEndpointsDiscoveryUsesList(t *testing.T) {
	api := newFakeAPIServer(t, "sa-token")
	api.endpointsFor("6443")
	api.setEndpoints("kube-system", endpointsJSON("kube-system", "etcd", "127.0.0.3", "2381"), endpointsJSON("", "kube-dns", "127.0.0.4", "9153"))
	api.setEndpoints("monitoring", endpointsJSON("monitoring", "alertmanager", "127.0.0.5", "9093"))
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := writeCA(t, api.Server)

	// The fake refuses the get verb, as the shipped ClusterRole would.
	d := discoverFor(t, api, token, ca, "")
	var ep endpoints
	err := d.list(t.Context(), "/api/v1/namespaces/default/endpoints/kubernetes", nil, &ep)
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "cannot get resource") {
		t.Fatalf("a GET of one Endpoints object was not refused: %v", err)
	}

	for _, c := range []struct {
		namespaces string
		want       []string
		uris       []string
	}{
		{"", []string{"127.0.0.1:6443 default/kubernetes"},
			[]string{"/api/v1/namespaces/default/endpoints?fieldSelector=metadata.name%3Dkubernetes"}},
		{"namespaces: {names: [kube-system, default]}",
			[]string{"127.0.0.1:6443 default/kubernetes", "127.0.0.2:8080 default/other", "127.0.0.3:2381 kube-system/etcd", "127.0.0.4:9153 kube-system/kube-dns"},
			[]string{"/api/v1/namespaces/kube-system/endpoints", "/api/v1/namespaces/default/endpoints"}},
	} {
		before := len(api.requests())
		d := discoverFor(t, api, token, ca, c.namespaces)
		specs, err := d.refresh(t.Context())
		if err != nil {
			t.Fatalf("%q: %v", c.namespaces, err)
		}
		var got []string
		for _, sp := range specs {
			got = append(got, sp.address+" "+sp.labels["namespace"]+"/"+sp.labels["service"])
		}
		slices.Sort(got)
		if strings.Join(got, ", ") != strings.Join(c.want, ", ") {
			t.Errorf("%q: targets %q, want %q", c.namespaces, got, c.want)
		}
		if uris := api.requests()[before:]; strings.Join(uris, " ") != strings.Join(c.uris, " ") {
			t.Errorf("%q: requests %q, want %q", c.namespaces, uris, c.uris)
		}
	}
}

func discoverFor(t *testing.T, api *fakeAPIServer, token, ca, namespaces string) *discoverer {
	t.Helper()
	sd := fmt.Sprintf("role: endpoints, api_server: %s, bearer_token_file: %s, tls_config: {ca_file: %s}", api.URL, token, ca)
	if namespaces != "" {
		sd += ", " + namespaces
	}
	cfgs := parseConfigs(t, "scrape_configs:\n  - job_name: apiserver\n    kubernetes_sd_configs: [{"+sd+"}]\n")
	d, err := newDiscoverer(cfgs[0].KubernetesSDConfigs[0], "apiserver")
	if err != nil {
		t.Fatal(err)
	}
	return d
}
