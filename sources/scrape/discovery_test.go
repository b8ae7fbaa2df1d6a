package scrape

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeAPIServer serves the two lists discovery reads, over TLS, and
// insists on the bearer token.
type fakeAPIServer struct {
	*httptest.Server
	mu        sync.Mutex
	nodes     string
	endpoints string
	seen      []string
}

func newFakeAPIServer(t *testing.T, token string) *fakeAPIServer {
	f := &fakeAPIServer{}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.seen = append(f.seen, r.URL.Path)
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"kind":"Status","code":401}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/nodes":
			fmt.Fprint(w, f.nodes)
		case "/api/v1/namespaces/default/endpoints/kubernetes":
			fmt.Fprint(w, f.endpoints)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPIServer) setNodes(s string) {
	f.mu.Lock()
	f.nodes = s
	f.mu.Unlock()
}

func (f *fakeAPIServer) endpointsFor(port string) {
	f.mu.Lock()
	f.endpoints = fmt.Sprintf(`{"kind":"Endpoints","apiVersion":"v1","metadata":{"name":"kubernetes","namespace":"default"},
"subsets":[{"addresses":[{"ip":"127.0.0.1"}],"ports":[{"name":"https","port":%s,"protocol":"TCP"}]}]}`, port)
	f.mu.Unlock()
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
	deadline := time.Now().Add(5 * time.Second)
	for len(r.s.Targets()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("node-b still a target: %+v", r.s.Targets())
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := testutilCounter(r, "kubelet", "node")
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("discovery errors not counted: %v", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ts := r.s.Targets(); len(ts) != 0 {
		t.Errorf("targets %+v", ts)
	}
}

func testutilCounter(r *running, job, role string) float64 {
	return testutil.ToFloat64(r.s.metrics.sdErrors.WithLabelValues(job, role))
}
