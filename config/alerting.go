package config

import (
	"net/url"
	"path"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
	"gopkg.in/yaml.v3"

	"github.com/kube-sentinel/sentinel/internal/yamlpos"
)

// AlertmanagerConfig is one alerting.alertmanagers entry: Prometheus's
// alertmanager_config (scheme, path_prefix, timeout, static_configs and
// the HTTP client settings inline), or sentinel's older url form. Its
// settings apply to every Alertmanager it names.
type AlertmanagerConfig struct {
	// URLs are the Alertmanagers the entry names, each as
	// scheme://host:port[/path_prefix]: its url, or one per static_configs target.
	URLs []string
	// HTTPClientConfig is how to reach them: tls_config, basic_auth,
	// authorization, oauth2, proxy_url, …; relative file names are
	// resolved against the config file's directory.
	HTTPClientConfig promconfig.HTTPClientConfig
	// Timeout bounds each request; 0 takes the notifier's default (10s).
	Timeout time.Duration
}

var alertmanagerFields = append([]string{"url", "scheme", "path_prefix", "timeout", "api_version", "static_configs"}, httpClientFields...)

func parseAlertmanagers(d *yamlpos.Decoder, n *yaml.Node, dir string) []AlertmanagerConfig {
	var out []AlertmanagerConfig
	for _, am := range d.Sequence(n, "alertmanagers") {
		f := d.Mapping(am, "alertmanager", alertmanagerFields...)
		before := len(d.Errs)
		ac := AlertmanagerConfig{HTTPClientConfig: parseHTTPClientConfig(d, am, f, dir)}
		if v := f["timeout"].Value; v != nil {
			ac.Timeout = d.Duration(v, "timeout")
			if ac.Timeout <= 0 && len(d.Errs) == before {
				d.Errorf(v, "timeout must be positive")
			}
		}
		if v := f["api_version"].Value; v != nil {
			if s := d.String(v, "api_version"); s != "v2" {
				d.Errorf(v, "api_version %q is not supported: Alertmanager's API v2 is the only one", s)
			}
		}
		prefix := ""
		if v := f["path_prefix"].Value; v != nil {
			prefix = d.String(v, "path_prefix")
			if prefix != "" && !strings.HasPrefix(prefix, "/") {
				prefix = "/" + prefix
			}
		}
		scheme := "http"
		if v := f["scheme"].Value; v != nil {
			scheme = d.String(v, "scheme")
			if scheme != "http" && scheme != "https" {
				d.Errorf(v, "scheme must be http or https, not %q", scheme)
			}
		}
		raw, static := f["url"].Value, f["static_configs"].Value
		switch {
		case raw != nil && static != nil:
			d.Errorf(am, "alertmanager has both url and static_configs: give one")
		case raw != nil:
			if f["scheme"].Value != nil {
				d.Errorf(f["scheme"].Value, "scheme is part of url: give one")
			}
			u := d.String(raw, "url")
			if err := CheckAlertmanagerURL(u); err != nil {
				d.Errorf(raw, "%v", err)
				break
			}
			if prefix != "" {
				pu, _ := url.Parse(u)
				pu.Path = path.Join("/", pu.Path, prefix)
				u = pu.String()
			}
			ac.URLs = append(ac.URLs, u)
		case static != nil:
			for _, s := range d.Sequence(static, "static_configs") {
				sf := d.Mapping(s, "static_config", "targets")
				for _, t := range d.Sequence(sf["targets"].Value, "targets") {
					addr := d.String(t, "target")
					if err := checkTargetAddress(addr); err != "" {
						d.Errorf(t, "target %q: %s", addr, err)
						continue
					}
					ac.URLs = append(ac.URLs, scheme+"://"+addr+prefix)
				}
			}
			if len(ac.URLs) == 0 && len(d.Errs) == before {
				d.Errorf(static, "static_configs has no targets")
			}
		default:
			d.Errorf(am, "alertmanager has no url or static_configs")
		}
		if len(d.Errs) == before {
			out = append(out, ac)
		}
	}
	return out
}
