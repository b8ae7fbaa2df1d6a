package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/kube-sentinel/sentinel/internal/tlsreload"
	"github.com/kube-sentinel/sentinel/internal/yamlpos"
	"github.com/kube-sentinel/sentinel/rules"
)

// Config is sentinel.yaml.
type Config struct {
	File                string // where it was read from; rule_files are relative to its directory
	EvaluationInterval  time.Duration
	ExternalLabels      map[string]string
	RuleFiles           []string // as written
	OTLPGRPCAddress     string
	OTLPHTTPAddress     string
	OTLPMaxRequestBytes int64
	OTLPLimits          OTLPLimits
	ScrapeConfigs       []ScrapeConfig
	// Alertmanagers are every Alertmanager's URL, of every
	// AlertmanagerConfigs entry.
	Alertmanagers []string
	// AlertmanagerConfigs are the alerting.alertmanagers entries, each
	// with its HTTP client settings.
	AlertmanagerConfigs []AlertmanagerConfig
	ResendDelay         time.Duration
	ResolveTimeout      time.Duration // endsAt horizon of firing alerts; 0 is the engine's default (15m)
	TraceURLTemplate    string
	StoragePath         string
	SnapshotInterval    time.Duration
	MaxSnapshotBytes    int64

	// OTLPGRPCTLS and OTLPHTTPTLS are otlp.grpc.tls and otlp.http.tls,
	// nil when the transport is plain; file names are resolved against
	// the config file's directory.
	OTLPGRPCTLS, OTLPHTTPTLS *tlsreload.Files
}

// Defaults are what an empty file means. Each default lives in one place:
// the evaluation interval is the rules package's; a zero ResendDelay or
// MaxSnapshotBytes takes the engine's (engine.DefaultResendDelay,
// engine.DefaultMaxSnapshotBytes), which this package does not import.
func Defaults() *Config {
	return &Config{
		EvaluationInterval:  rules.DefaultEvaluationInterval,
		OTLPGRPCAddress:     ":4317",
		OTLPHTTPAddress:     ":4318",
		OTLPMaxRequestBytes: 8 << 20,
		StoragePath:         "data/",
		SnapshotInterval:    time.Minute,
	}
}

// RulePatterns returns rule_files resolved against the config file's directory.
func (c *Config) RulePatterns() []string {
	out := make([]string, len(c.RuleFiles))
	for i, p := range c.RuleFiles {
		if filepath.IsAbs(p) || c.File == "" {
			out[i] = p
		} else {
			out[i] = filepath.Join(filepath.Dir(c.File), p)
		}
	}
	return out
}

// Load reads and parses a config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a config file's content; file names it in errors.
func Parse(file string, data []byte) (*Config, error) {
	c := Defaults()
	c.File = file
	d := &yamlpos.Decoder{File: file}
	root := d.Parse(data)
	top := d.Mapping(root, "config", "global", "rule_files", "otlp", "scrape_configs", "alerting", "storage")

	g := d.Mapping(top["global"].Value, "global", "evaluation_interval", "external_labels")
	if n := g["evaluation_interval"].Value; n != nil {
		before := len(d.Errs)
		c.EvaluationInterval = d.Duration(n, "evaluation_interval")
		if c.EvaluationInterval <= 0 && len(d.Errs) == before {
			d.Errorf(n, "evaluation_interval must be positive")
		}
	}
	c.ExternalLabels = d.StringMap(g["external_labels"].Value, "external_labels")
	checkLabelNames(d, g["external_labels"].Value)

	c.RuleFiles = d.Strings(top["rule_files"].Value, "rule_files")
	for i, p := range c.RuleFiles {
		if _, err := filepath.Match(p, ""); err != nil {
			d.Errorf(top["rule_files"].Value.Content[i], "rule_files: bad pattern %q: %v", p, err)
		}
	}

	o := d.Mapping(top["otlp"].Value, "otlp", "grpc", "http", "limits")
	og := d.Mapping(o["grpc"].Value, "otlp.grpc", "listen_address", "tls", "max_concurrent_streams", "max_connections")
	if n := og["listen_address"].Value; n != nil {
		c.OTLPGRPCAddress = d.String(n, "listen_address")
	}
	c.OTLPGRPCTLS = parseServerTLS(d, og["tls"].Value, "otlp.grpc.tls")
	oh := d.Mapping(o["http"].Value, "otlp.http", "listen_address", "max_request_bytes", "tls", "read_header_timeout", "read_timeout", "idle_timeout", "max_header_bytes", "max_connections")
	c.OTLPHTTPTLS = parseServerTLS(d, oh["tls"].Value, "otlp.http.tls")
	if n := oh["listen_address"].Value; n != nil {
		c.OTLPHTTPAddress = d.String(n, "listen_address")
	}
	if n := oh["max_request_bytes"].Value; n != nil {
		before := len(d.Errs)
		c.OTLPMaxRequestBytes = d.Int(n, "max_request_bytes")
		if c.OTLPMaxRequestBytes <= 0 && len(d.Errs) == before {
			d.Errorf(n, "max_request_bytes must be positive")
		}
	}

	c.OTLPLimits = parseOTLPLimits(d, o["limits"].Value, og, oh)

	c.ScrapeConfigs = ParseScrapeConfigs(d, top["scrape_configs"].Value, 0)

	a := d.Mapping(top["alerting"].Value, "alerting", "alertmanagers", "resend_delay", "resolve_timeout", "trace_url_template")
	c.AlertmanagerConfigs = parseAlertmanagers(d, a["alertmanagers"].Value, filepath.Dir(file))
	for _, ac := range c.AlertmanagerConfigs {
		c.Alertmanagers = append(c.Alertmanagers, ac.URLs...)
	}
	if n := a["resend_delay"].Value; n != nil {
		before := len(d.Errs)
		c.ResendDelay = d.Duration(n, "resend_delay")
		if c.ResendDelay <= 0 && len(d.Errs) == before {
			d.Errorf(n, "resend_delay must be positive")
		}
	}
	if n := a["resolve_timeout"].Value; n != nil {
		before := len(d.Errs)
		c.ResolveTimeout = d.Duration(n, "resolve_timeout")
		if c.ResolveTimeout <= 0 && len(d.Errs) == before {
			d.Errorf(n, "resolve_timeout must be positive")
		}
	}
	if n := a["trace_url_template"].Value; n != nil {
		c.TraceURLTemplate = d.String(n, "trace_url_template")
		// Executed with a sample trace, not only parsed: {{ .TraceId }}
		// parses, then fails on every alert.
		if _, err := rules.ParseTraceURLTemplate(c.TraceURLTemplate); err != nil {
			d.Errorf(n, "%v", err)
		}
	}

	s := d.Mapping(top["storage"].Value, "storage", "path", "snapshot_interval", "max_snapshot_bytes")
	if n := s["path"].Value; n != nil {
		c.StoragePath = d.String(n, "storage.path")
	}
	if n := s["snapshot_interval"].Value; n != nil {
		c.SnapshotInterval = d.Duration(n, "snapshot_interval")
	}
	if n := s["max_snapshot_bytes"].Value; n != nil {
		before := len(d.Errs)
		c.MaxSnapshotBytes = d.Int(n, "max_snapshot_bytes")
		if c.MaxSnapshotBytes <= 0 && len(d.Errs) == before {
			d.Errorf(n, "max_snapshot_bytes must be positive")
		}
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// parseServerTLS reads a receiver's tls settings (nil: none), with the
// Collector's names, and loads the files once so that a missing or
// mismatched one is an error at check time rather than at the first
// handshake.
func parseServerTLS(d *yamlpos.Decoder, n *yaml.Node, what string) *tlsreload.Files {
	if n == nil {
		return nil
	}
	f := d.Mapping(n, what, "cert_file", "key_file", "client_ca_file", "min_version")
	before := len(d.Errs)
	files := &tlsreload.Files{
		CertFile:     d.String(f["cert_file"].Value, what+".cert_file"),
		KeyFile:      d.String(f["key_file"].Value, what+".key_file"),
		ClientCAFile: d.String(f["client_ca_file"].Value, what+".client_ca_file"),
	}
	if v := f["min_version"].Value; v != nil {
		s := d.String(v, what+".min_version")
		if files.MinVersion = tlsreload.Versions[s]; files.MinVersion == 0 {
			d.Errorf(v, "%s.min_version must be \"1.2\" or \"1.3\", not %q", what, s)
		}
	}
	for key, p := range map[string]*string{"cert_file": &files.CertFile, "key_file": &files.KeyFile, "client_ca_file": &files.ClientCAFile} {
		if *p == "" {
			continue
		}
		if d.File != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(filepath.Dir(d.File), *p)
		}
		if _, err := os.Stat(*p); err != nil {
			d.Errorf(f[key].Value, "%s.%s: %v", what, key, err)
		}
	}
	if len(d.Errs) > before {
		return nil
	}
	if err := files.Check(); err != nil {
		d.Errorf(n, "%s: %v", what, err)
		return nil
	}
	return files
}

func checkLabelNames(d *yamlpos.Decoder, n *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if name := n.Content[i].Value; !model.LegacyValidation.IsValidLabelName(name) {
			d.Errorf(n.Content[i], "label name %q is not valid", name)
		}
	}
}

// CheckAlertmanagerURL accepts http(s)://host[:port][/prefix].
func CheckAlertmanagerURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("alertmanager url %q: %w", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("alertmanager url %q: scheme must be http or https", raw)
	case u.Host == "":
		return fmt.Errorf("alertmanager url %q has no host", raw)
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("alertmanager url " + raw + ": no query or fragment allowed")
	}
	return nil
}

// RulePatternsOf reads only rule_files from a config file that may be
// invalid otherwise, resolved against its directory, so that
// `sentinel check config` can report the rule files' errors too.
func RulePatternsOf(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var lenient struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	if yaml.Unmarshal(data, &lenient) != nil {
		return nil
	}
	c := &Config{File: path, RuleFiles: lenient.RuleFiles}
	return c.RulePatterns()
}
