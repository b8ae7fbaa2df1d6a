package config

import (
	"strings"
	"testing"
	"time"
)

func TestAlertmanagerConfigs(t *testing.T) {
	c, err := Parse("/etc/sentinel/sentinel.yaml", []byte(`
alerting:
  alertmanagers:
    - url: http://am-old:9093/prefix
    - url: http://am-prefixed:9093
      path_prefix: /alertmanager
    - scheme: https
      path_prefix: am
      timeout: 5s
      api_version: v2
      static_configs: [{targets: ["alertmanager-main-0.monitoring:9093", "alertmanager-main-1.monitoring:9093"]}]
      tls_config: {ca_file: ca.crt, server_name: alertmanager}
      basic_auth: {username: sentinel, password_file: /etc/sentinel/am-password}
    - url: https://am-token:9093
      authorization: {credentials_file: token}
      proxy_url: http://proxy:3128
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://am-old:9093/prefix", "http://am-prefixed:9093/alertmanager",
		"https://alertmanager-main-0.monitoring:9093/am", "https://alertmanager-main-1.monitoring:9093/am", "https://am-token:9093"}
	if strings.Join(c.Alertmanagers, " ") != strings.Join(want, " ") {
		t.Errorf("URLs %v\nwant %v", c.Alertmanagers, want)
	}
	if len(c.AlertmanagerConfigs) != 4 {
		t.Fatalf("%d entries", len(c.AlertmanagerConfigs))
	}
	tls := c.AlertmanagerConfigs[2]
	if tls.Timeout != 5*time.Second || tls.HTTPClientConfig.TLSConfig.CAFile != "/etc/sentinel/ca.crt" ||
		tls.HTTPClientConfig.BasicAuth.Username != "sentinel" || tls.HTTPClientConfig.BasicAuth.PasswordFile != "/etc/sentinel/am-password" {
		t.Errorf("entry 3: %+v", tls)
	}
	tok := c.AlertmanagerConfigs[3].HTTPClientConfig
	if tok.Authorization.CredentialsFile != "/etc/sentinel/token" || tok.Authorization.Type != "Bearer" || tok.ProxyURL.String() != "http://proxy:3128" {
		t.Errorf("entry 4: %+v", tok)
	}
	if !c.AlertmanagerConfigs[0].HTTPClientConfig.FollowRedirects {
		t.Error("an entry without HTTP settings must have Prometheus's defaults")
	}
}

func TestAlertmanagerConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"url and static", "alerting:\n  alertmanagers:\n    - url: http://a:1\n      static_configs: [{targets: [\"a:1\"]}]\n", "s.yaml:3:7: alertmanager has both url and static_configs"},
		{"scheme with url", "alerting:\n  alertmanagers:\n    - {url: \"http://a:1\", scheme: https}\n", "s.yaml:3:35: scheme is part of url"},
		{"neither", "alerting:\n  alertmanagers:\n    - {timeout: 1s}\n", "s.yaml:3:7: alertmanager has no url or static_configs"},
		{"unknown tls field", "alerting:\n  alertmanagers:\n    - {url: \"http://a:1\", tls_config: {ca: x, key_fil: y}}\n", `s.yaml:3:47: unknown field "key_fil" in tls_config`},
		{"two auths", "alerting:\n  alertmanagers:\n    - {url: \"http://a:1\", basic_auth: {username: u}, authorization: {credentials: t}}\n", "s.yaml:3:7: at most one of basic_auth, oauth2 & authorization"},
		{"api v1", "alerting:\n  alertmanagers:\n    - {url: \"http://a:1\", api_version: v1}\n", `s.yaml:3:40: api_version "v1" is not supported`},
		{"target with scheme", "alerting:\n  alertmanagers:\n    - static_configs: [{targets: [\"http://a:1\"]}]\n", `s.yaml:3:35: target "http://a:1": must be host:port`},
		{"unknown field", "alerting:\n  alertmanagers:\n    - {url: \"http://a:1\", relabel_configs: []}\n", `s.yaml:3:27: unknown field "relabel_configs" in alertmanager`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}
