package config

import (
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
	"gopkg.in/yaml.v3"

	"github.com/kube-sentinel/sentinel/internal/yamlpos"
)

// Scrape defaults, as Prometheus's.
const (
	DefaultScrapeInterval = time.Minute
	DefaultScrapeTimeout  = 10 * time.Second
	DefaultMetricsPath    = "/metrics"
)

// ScrapeConfig is one scrape_configs entry: the subset of Prometheus's
// scrape_config that sentinel understands, with the same names and defaults.
type ScrapeConfig struct {
	JobName        string
	ScrapeInterval time.Duration
	ScrapeTimeout  time.Duration
	MetricsPath    string
	Scheme         string // http or https
	// HTTPClientConfig is Prometheus's http_config, inline as in
	// Prometheus (tls_config, basic_auth, authorization, oauth2,
	// proxy_url, …), validated; relative file names are resolved against
	// the config file's directory, as Prometheus does.
	HTTPClientConfig    promconfig.HTTPClientConfig
	StaticConfigs       []StaticConfig
	KubernetesSDConfigs []KubernetesSDConfig
}

// StaticConfig is a static_configs entry.
type StaticConfig struct {
	Targets []string          // host:port
	Labels  map[string]string // added to every target's series
}

// Kubernetes discovery roles sentinel implements.
const (
	RoleNode      = "node"      // every node's kubelet, at its InternalIP and kubelet port
	RoleEndpoints = "endpoints" // the addresses and ports of Endpoints objects
)

// KubernetesSDConfig is a kubernetes_sd_configs entry.
type KubernetesSDConfig struct {
	Role string // RoleNode or RoleEndpoints
	// Namespaces restricts role endpoints to these namespaces
	// (namespaces: {names: [...]}). When empty, role endpoints discovers only
	// the apiserver: the "kubernetes" Endpoints in "default".
	Namespaces []string
	// APIServer is the API server's URL; empty means in-cluster (the
	// service account's token and CA, KUBERNETES_SERVICE_HOST/PORT).
	APIServer string
	// HTTPClientConfig is how to reach APIServer (tls_config,
	// bearer_token_file, ...); unused in-cluster.
	HTTPClientConfig promconfig.HTTPClientConfig
}

// ParseScrapeConfigs parses the scrape_configs list n (nil: none).
// globalInterval is the default scrape interval (zero: DefaultScrapeInterval).
// Errors are recorded on d at the offending node.
func ParseScrapeConfigs(d *yamlpos.Decoder, n *yaml.Node, globalInterval time.Duration) []ScrapeConfig {
	if globalInterval <= 0 {
		globalInterval = DefaultScrapeInterval
	}
	dir := ""
	if d.File != "" {
		dir = filepath.Dir(d.File)
	}
	var out []ScrapeConfig
	seen := map[string]bool{}
	for _, item := range d.Sequence(n, "scrape_configs") {
		allowed := append([]string{"job_name", "scrape_interval", "scrape_timeout", "metrics_path", "scheme",
			"static_configs", "kubernetes_sd_configs"}, httpClientFields...)
		f := d.Mapping(item, "scrape_config", allowed...)
		sc := ScrapeConfig{
			ScrapeInterval: globalInterval,
			MetricsPath:    DefaultMetricsPath,
			Scheme:         "http",
		}
		sc.JobName = d.String(f["job_name"].Value, "job_name")
		switch {
		case sc.JobName == "":
			d.Errorf(item, "scrape_config has no job_name")
		case seen[sc.JobName]:
			d.Errorf(f["job_name"].Value, "job_name %q is used by another scrape_config", sc.JobName)
		}
		seen[sc.JobName] = true

		if v := f["scrape_interval"].Value; v != nil {
			sc.ScrapeInterval = d.Duration(v, "scrape_interval")
			if sc.ScrapeInterval <= 0 {
				d.Errorf(v, "scrape_interval must be positive")
			}
		}
		sc.ScrapeTimeout = min(DefaultScrapeTimeout, sc.ScrapeInterval)
		if v := f["scrape_timeout"].Value; v != nil {
			sc.ScrapeTimeout = d.Duration(v, "scrape_timeout")
			switch {
			case sc.ScrapeTimeout <= 0:
				d.Errorf(v, "scrape_timeout must be positive")
			case sc.ScrapeInterval > 0 && sc.ScrapeTimeout > sc.ScrapeInterval:
				d.Errorf(v, "scrape_timeout %v is greater than scrape_interval %v", sc.ScrapeTimeout, sc.ScrapeInterval)
			}
		}
		if v := f["metrics_path"].Value; v != nil {
			sc.MetricsPath = d.String(v, "metrics_path")
			if !strings.HasPrefix(sc.MetricsPath, "/") {
				d.Errorf(v, "metrics_path %q must start with /", sc.MetricsPath)
			}
		}
		schemeSet := false
		if v := f["scheme"].Value; v != nil {
			schemeSet = true
			sc.Scheme = d.String(v, "scheme")
			if sc.Scheme != "http" && sc.Scheme != "https" {
				d.Errorf(v, "scheme must be http or https, not %q", sc.Scheme)
			}
		}
		sc.HTTPClientConfig = parseHTTPClientConfig(d, item, f, dir)

		for _, s := range d.Sequence(f["static_configs"].Value, "static_configs") {
			sf := d.Mapping(s, "static_config", "targets", "labels")
			st := StaticConfig{Labels: d.StringMap(sf["labels"].Value, "labels")}
			checkLabelNames(d, sf["labels"].Value)
			for _, t := range d.Sequence(sf["targets"].Value, "targets") {
				addr := d.String(t, "target")
				if err := checkTargetAddress(addr); err != "" {
					d.Errorf(t, "target %q: %s", addr, err)
					continue
				}
				st.Targets = append(st.Targets, addr)
			}
			sc.StaticConfigs = append(sc.StaticConfigs, st)
		}
		for _, k := range d.Sequence(f["kubernetes_sd_configs"].Value, "kubernetes_sd_configs") {
			kf := d.Mapping(k, "kubernetes_sd_config", append([]string{"role", "namespaces", "api_server"}, httpClientFields...)...)
			kc := KubernetesSDConfig{Role: d.String(kf["role"].Value, "role")}
			switch {
			case kf["role"].Value == nil:
				d.Errorf(k, "kubernetes_sd_config has no role (node or endpoints)")
			case kc.Role != RoleNode && kc.Role != RoleEndpoints:
				d.Errorf(kf["role"].Value, "role %q is not supported (node or endpoints)", kc.Role)
			}
			ns := d.Mapping(kf["namespaces"].Value, "namespaces", "names")
			kc.Namespaces = d.Strings(ns["names"].Value, "namespaces.names")
			if kc.Role == RoleNode && len(kc.Namespaces) > 0 {
				d.Errorf(kf["namespaces"].Value, "namespaces does not apply to role node")
			}
			if v := kf["api_server"].Value; v != nil {
				kc.APIServer = d.String(v, "api_server")
				if u, err := url.Parse(kc.APIServer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					d.Errorf(v, "api_server %q is not an http(s) URL", kc.APIServer)
				}
			}
			kc.HTTPClientConfig = parseHTTPClientConfig(d, k, kf, dir)
			sc.KubernetesSDConfigs = append(sc.KubernetesSDConfigs, kc)
		}
		// Kubelets serve /metrics only over HTTPS on 10250: a job that
		// discovers nothing but nodes means https unless it says otherwise.
		if !schemeSet && len(sc.StaticConfigs) == 0 && len(sc.KubernetesSDConfigs) > 0 {
			allNodes := true
			for _, kc := range sc.KubernetesSDConfigs {
				allNodes = allNodes && kc.Role == RoleNode
			}
			if allNodes {
				sc.Scheme = "https"
			}
		}
		out = append(out, sc)
	}
	return out
}

// checkTargetAddress accepts host:port, as Prometheus's static targets.
func checkTargetAddress(addr string) string {
	if strings.Contains(addr, "/") {
		return "must be host:port, without scheme or path"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return "must be host:port"
	}
	return ""
}

// TargetLabelNames lists the labels that scrape targets add to every series
// besides job and instance: static_configs labels, and what discovery adds
// (node for role node; namespace, service and node for role endpoints).
func (c *Config) TargetLabelNames() []string {
	set := map[string]bool{}
	for _, sc := range c.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for k := range st.Labels {
				set[k] = true
			}
		}
		for _, sd := range sc.KubernetesSDConfigs {
			set["node"] = true
			if sd.Role == RoleEndpoints {
				set["namespace"], set["service"] = true, true
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
