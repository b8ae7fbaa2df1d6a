package config

import (
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/yamlpos"
)

func parseScrape(t *testing.T, src string, global time.Duration) ([]ScrapeConfig, error) {
	t.Helper()
	d := &yamlpos.Decoder{File: "/etc/sentinel/sentinel.yaml"}
	root := d.Parse([]byte(src))
	top := d.Mapping(root, "config", "scrape_configs")
	out := ParseScrapeConfigs(d, top["scrape_configs"].Value, global)
	return out, d.Err()
}

func TestParseScrapeConfigsDefaults(t *testing.T) {
	got, err := parseScrape(t, `
scrape_configs:
  - job_name: apiserver
    scheme: https
    bearer_token_file: /var/run/secrets/kubernetes.io/serviceaccount/token
    tls_config: {ca_file: ca.crt, server_name: kubernetes}
    static_configs: [{targets: ["kubernetes.default.svc:443"], labels: {cluster: a}}]
  - job_name: fast
    scrape_interval: 5s
    static_configs: [{targets: ["127.0.0.1:9100"]}]
  - job_name: kubelet
    kubernetes_sd_configs: [{role: node}]
  - job_name: etcd
    scrape_interval: 30s
    scrape_timeout: 20s
    metrics_path: /probe
    basic_auth: {username: u, password_file: pw}
    kubernetes_sd_configs:
      - role: endpoints
        namespaces: {names: [kube-system]}
        api_server: https://127.0.0.1:6443
        authorization: {credentials_file: tok}
`, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d configs", len(got))
	}
	a, f, k, e := got[0], got[1], got[2], got[3]
	if a.ScrapeInterval != time.Minute || a.ScrapeTimeout != 10*time.Second || a.MetricsPath != "/metrics" || a.Scheme != "https" {
		t.Errorf("apiserver defaults: %+v", a)
	}
	if a.HTTPClientConfig.Authorization == nil || a.HTTPClientConfig.Authorization.CredentialsFile != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
		t.Errorf("bearer_token_file not turned into authorization: %+v", a.HTTPClientConfig.Authorization)
	}
	if a.HTTPClientConfig.TLSConfig.CAFile != "/etc/sentinel/ca.crt" || a.HTTPClientConfig.TLSConfig.ServerName != "kubernetes" {
		t.Errorf("tls_config: %+v", a.HTTPClientConfig.TLSConfig)
	}
	if a.StaticConfigs[0].Targets[0] != "kubernetes.default.svc:443" || a.StaticConfigs[0].Labels["cluster"] != "a" {
		t.Errorf("static_configs: %+v", a.StaticConfigs)
	}
	if f.ScrapeInterval != 5*time.Second || f.ScrapeTimeout != 5*time.Second || f.Scheme != "http" {
		t.Errorf("timeout must default to min(10s, interval): %+v", f)
	}
	if k.Scheme != "https" || k.KubernetesSDConfigs[0].Role != RoleNode {
		t.Errorf("kubelet job: %+v", k)
	}
	ke := e.KubernetesSDConfigs[0]
	if e.ScrapeTimeout != 20*time.Second || e.MetricsPath != "/probe" || e.Scheme != "http" ||
		e.HTTPClientConfig.BasicAuth.PasswordFile != "/etc/sentinel/pw" ||
		ke.Role != RoleEndpoints || ke.Namespaces[0] != "kube-system" || ke.APIServer != "https://127.0.0.1:6443" ||
		ke.HTTPClientConfig.Authorization.CredentialsFile != "/etc/sentinel/tok" {
		t.Errorf("etcd job: %+v %+v", e, ke)
	}
}

// Every field of Prometheus's http_config is taken, not a subset.
func TestParseScrapeConfigsHTTPClientConfig(t *testing.T) {
	got, err := parseScrape(t, `
scrape_configs:
  - job_name: a
    proxy_url: http://proxy.example:3128
    follow_redirects: false
    enable_http2: false
    oauth2:
      client_id: sentinel
      client_secret_file: secret
      token_url: https://auth.example/token
      scopes: [metrics]
    http_headers: {X-Scope-OrgID: {values: [tenant-a]}}
    tls_config: {cert_file: c.crt, key_file: c.key, min_version: TLS13}
`, 0)
	if err != nil {
		t.Fatal(err)
	}
	hc := got[0].HTTPClientConfig
	if hc.ProxyURL.String() != "http://proxy.example:3128" || hc.FollowRedirects || hc.EnableHTTP2 ||
		hc.OAuth2 == nil || hc.OAuth2.ClientSecretFile != "/etc/sentinel/secret" || hc.OAuth2.Scopes[0] != "metrics" ||
		hc.HTTPHeaders.Headers["X-Scope-OrgID"].Values[0] != "tenant-a" ||
		hc.TLSConfig.CertFile != "/etc/sentinel/c.crt" || hc.TLSConfig.MinVersion.String() != "TLS13" {
		t.Errorf("http client config: %+v", hc)
	}
}

func TestParseScrapeConfigsGlobalInterval(t *testing.T) {
	got, err := parseScrape(t, `scrape_configs: [{job_name: a, static_configs: [{targets: ["h:1"]}]}]`, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].ScrapeInterval != 15*time.Second || got[0].ScrapeTimeout != 10*time.Second {
		t.Errorf("got %v/%v", got[0].ScrapeInterval, got[0].ScrapeTimeout)
	}
}

func TestParseScrapeConfigsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown field", "scrape_configs:\n  - job_name: a\n    honor_labels: true\n", `sentinel.yaml:3:5: unknown field "honor_labels" in scrape_config`},
		{"no job name", "scrape_configs:\n  - scrape_interval: 1m\n", "sentinel.yaml:2:5: scrape_config has no job_name"},
		{"duplicate job", "scrape_configs:\n  - job_name: a\n  - job_name: a\n", `sentinel.yaml:3:15: job_name "a" is used by another scrape_config`},
		{"timeout over interval", "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 6s\n", "sentinel.yaml:4:21: scrape_timeout 6s is greater than scrape_interval 5s"},
		{"bad duration", "scrape_configs:\n  - job_name: a\n    scrape_interval: soon\n", `sentinel.yaml:3:22: scrape_interval: "soon" is not a duration`},
		{"bad scheme", "scrape_configs:\n  - job_name: a\n    scheme: ftp\n", `sentinel.yaml:3:13: scheme must be http or https, not "ftp"`},
		{"bad role", "scrape_configs:\n  - job_name: a\n    kubernetes_sd_configs: [{role: pod}]\n", `sentinel.yaml:3:36: role "pod" is not supported (node or endpoints)`},
		{"no role", "scrape_configs:\n  - job_name: a\n    kubernetes_sd_configs: [{}]\n", "sentinel.yaml:3:29: kubernetes_sd_config has no role"},
		{"unknown tls field", "scrape_configs:\n  - job_name: a\n    tls_config: {ca_fil: x}\n", `sentinel.yaml:3:18: unknown field "ca_fil" in tls_config`},
		{"unknown sd field", "scrape_configs:\n  - job_name: a\n    kubernetes_sd_configs: [{role: node, selectors: []}]\n", `sentinel.yaml:3:42: unknown field "selectors" in kubernetes_sd_config`},
		{"target with scheme", "scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [\"http://h:1\"]}]\n", `sentinel.yaml:3:33: target "http://h:1": must be host:port, without scheme or path`},
		{"target without port", "scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [h]}]\n", `sentinel.yaml:3:33: target "h": must be host:port`},
		{"bad label name", "scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [\"h:1\"], labels: {a-b: x}}]\n", `sentinel.yaml:3:50: label name "a-b" is not valid`},
		{"two auths", "scrape_configs:\n  - job_name: a\n    bearer_token_file: t\n    basic_auth: {username: u}\n", "sentinel.yaml:2:5: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"},
		{"unknown nested field", "scrape_configs:\n  - job_name: a\n    oauth2: {client_id: c, token_url: \"http://t\", scope: [x]}\n", `sentinel.yaml:3:51: unknown field "scope" in oauth2`},
		{"unknown header field", "scrape_configs:\n  - job_name: a\n    http_headers: {X-A: {value: [v]}}\n", `sentinel.yaml:3:26: unknown field "value" in http_headers.X-A`},
		{"not a bool", "scrape_configs:\n  - job_name: a\n    tls_config: {insecure_skip_verify: maybe}\n", "sentinel.yaml:3:40: cannot unmarshal !!str `maybe` into bool"},
		{"oauth2 without client_id", "scrape_configs:\n  - job_name: a\n    oauth2: {token_url: \"http://t\"}\n", "sentinel.yaml:2:5: oauth2 client_id must be configured"},
		{"metrics path", "scrape_configs:\n  - job_name: a\n    metrics_path: metrics\n", `sentinel.yaml:3:19: metrics_path "metrics" must start with /`},
		{"not a list", "scrape_configs: {job_name: a}\n", "sentinel.yaml:1:17: scrape_configs must be a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseScrape(t, tc.src, 0)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}
