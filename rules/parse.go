package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/alertmanager/matcher/parse"
	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"
	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/kube-sentinel/sentinel/internal/yamlpos"
)

// Options are the settings a rule file is validated against.
type Options struct {
	// DefaultInterval is the evaluation interval of groups that give none
	// (the config's global.evaluation_interval). Default DefaultEvaluationInterval.
	DefaultInterval time.Duration
	// TargetLabels are the labels scrape targets add to every series
	// besides job and instance (static_configs labels, discovery's node,
	// namespace, service), for proving that a metrics rule's group_by can
	// have a value.
	TargetLabels []string
}

// DefaultEvaluationInterval evaluates the groups that give no interval
// when the config gives no global.evaluation_interval. The config, the
// engine and the status page all take it from here.
const DefaultEvaluationInterval = 15 * time.Second

func (o Options) defaultInterval() time.Duration {
	if o.DefaultInterval > 0 {
		return o.DefaultInterval
	}
	return DefaultEvaluationInterval
}

// LoadFiles expands the globs, parses every file and returns the set, or
// every error of every file at once.
func LoadFiles(patterns []string, opts Options) (*Set, error) {
	var files []string
	var errs []error
	for _, p := range patterns {
		matches, err := filepath.Glob(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule file pattern %q: %w", p, err))
			continue
		}
		if matches == nil && !hasMeta(p) {
			matches = []string{p} // a plain name that does not exist: let ReadFile say so
		}
		files = append(files, matches...)
	}
	set := &Set{}
	for _, f := range files {
		groups, err := ParseFile(f, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set.Files = append(set.Files, f)
		set.Groups = append(set.Groups, groups...)
	}
	errs = append(errs, checkUniqueGroups(set.Groups)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

func checkUniqueGroups(groups []*Group) []error {
	var errs []error
	seen := map[string]*Group{}
	for _, g := range groups {
		if prev, ok := seen[g.Name]; ok {
			errs = append(errs, &yamlpos.Error{File: g.File, Line: g.Pos.Line, Col: g.Pos.Col,
				Msg: fmt.Sprintf("group %q is already defined at %s:%d", g.Name, prev.File, prev.Pos.Line)})
			continue
		}
		seen[g.Name] = g
	}
	return errs
}

// ParseFile reads and parses one rule file.
func ParseFile(path string, opts Options) ([]*Group, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(path, data, opts)
}

// Parse parses a rule file's content; file names it in errors.
func Parse(file string, data []byte, opts Options) ([]*Group, error) {
	d := &yamlpos.Decoder{File: file}
	root := d.Parse(data)
	if root == nil {
		if err := d.Err(); err != nil {
			return nil, err
		}
		return nil, nil // an empty file holds no groups, as in Prometheus
	}
	var groups []*Group
	top := d.Mapping(root, "rule file", "groups")
	names := map[string]bool{}
	for _, gn := range d.Sequence(top["groups"].Value, "groups") {
		g := parseGroup(d, gn, opts)
		if g == nil {
			continue
		}
		if names[g.Name] {
			d.Errorf(gn, "group %q is defined twice in this file", g.Name)
			continue
		}
		names[g.Name] = true
		groups = append(groups, g)
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return groups, nil
}

func parseGroup(d *yamlpos.Decoder, n *yaml.Node, opts Options) *Group {
	f := d.Mapping(n, "group", "name", "interval", "rules", "mute")
	g := &Group{File: d.File, Pos: Position{File: d.File, Line: n.Line, Col: n.Column}}
	g.Name = d.String(f["name"].Value, "group name")
	if g.Name == "" {
		d.Errorf(n, "group has no name")
	}
	interval := opts.defaultInterval()
	if iv := f["interval"].Value; iv != nil {
		s, err := ParseSchedule(d.String(iv, "interval"))
		if err != nil {
			d.Errorf(iv, "%v", err)
		} else {
			g.Interval = s
			interval = s.Period(time.Unix(0, 0).UTC())
		}
	}
	g.Mute = parseMutes(d, f["mute"].Value)
	ruleNames := map[string]bool{}
	for _, rn := range d.Sequence(f["rules"].Value, "rules") {
		r, ok := parseRule(d, rn, g, interval, opts)
		if r.Name != "" && ruleNames[r.Name] {
			d.Errorf(rn, "rule %q is defined twice in group %q", r.Name, g.Name)
			continue
		}
		ruleNames[r.Name] = true
		if ok {
			g.Rules = append(g.Rules, r)
		}
	}
	return g
}

var (
	alertFields = []string{"alert", "source", "metric", "matchers", "group_by", "objective",
		"window", "for", "keep_firing_for", "min_observations", "no_data_timeout", "explain_by", "labels", "annotations", "mute"}
	sloFields = []string{"slo", "source", "metric", "matchers", "group_by", "objective",
		"period", "burn_rate_alerts", "min_observations", "no_data_timeout", "explain_by", "labels", "annotations", "mute"}
)

// parseRule parses one rule; it reports false when the rule has errors
// (the rule still carries its name, for duplicate checks).
func parseRule(d *yamlpos.Decoder, n *yaml.Node, g *Group, interval time.Duration, opts Options) (*Rule, bool) {
	before := len(d.Errs)
	r := &Rule{Kind: KindAlerting, Pos: Position{File: d.File, Line: n.Line, Col: n.Column}}
	fields, nameField := alertFields, "alert"
	if isSLO(n) {
		r.Kind, fields, nameField = KindSLO, sloFields, "slo"
	}
	f := d.Mapping(n, "rule", fields...)
	r.Name = d.String(f[nameField].Value, nameField)
	if r.Name == "" {
		d.Errorf(n, "rule has no %s name", nameField)
	} else if !model.LabelValue(r.Name).IsValid() {
		d.Errorf(f[nameField].Value, "%s name %q is not valid UTF-8", nameField, r.Name)
	}

	r.Source = SourceSpans
	if s, ok := f["source"]; ok {
		switch src := Source(d.String(s.Value, "source")); src {
		case SourceSpans, SourceMetrics:
			r.Source = src
		default:
			d.Errorf(s.Value, "source %q must be spans or metrics", src)
		}
	}
	r.Metric = d.String(f["metric"].Value, "metric")
	switch {
	case r.Source == SourceMetrics && r.Metric == "":
		d.Errorf(n, "a metrics rule needs metric: (the histogram's base name)")
	case r.Source == SourceMetrics && !model.LegacyValidation.IsValidMetricName(r.Metric):
		d.Errorf(f["metric"].Value, "metric %q is not a valid metric name", r.Metric)
	case r.Source == SourceSpans && r.Metric != "":
		d.Errorf(f["metric"].Key, "metric: only applies to source: metrics")
	}

	for _, mn := range d.Sequence(f["matchers"].Value, "matchers") {
		text := d.String(mn, "matcher")
		m, err := parse.Matcher(text)
		if err != nil {
			d.Errorf(mn, "bad matcher %q: %v", text, err)
			continue
		}
		if m.Name == "span.kind" && (m.Type == labels.MatchEqual || m.Type == labels.MatchNotEqual) && !slices.Contains(spanKinds, m.Value) {
			d.Errorf(mn, "matcher %s can never match: span.kind is one of %s (lower case)", m, strings.Join(spanKinds, ", "))
		}
		r.Matchers = append(r.Matchers, m)
	}

	r.GroupBy = d.Strings(f["group_by"].Value, "group_by")
	seen := map[string]bool{}
	for i, name := range r.GroupBy {
		at := f["group_by"].Value.Content[i]
		switch {
		case name == "":
			d.Errorf(at, "group_by has an empty name")
		case seen[SanitizeLabelName(name)]:
			d.Errorf(at, "group_by names %q twice (after turning dots into underscores)", name)
		}
		seen[SanitizeLabelName(name)] = true
		for _, m := range r.Matchers {
			if m.Name == name && m.Type == labels.MatchEqual && m.Value == "" {
				d.Errorf(at, "group_by %q can never have a value: matcher %s requires it to be absent", name, m)
			}
		}
		if r.Source == SourceMetrics {
			if known, ok := KnownMetricLabels(r.Metric); ok && !slices.Contains(known, name) && !slices.Contains(opts.TargetLabels, name) &&
				name != "job" && name != "instance" {
				d.Errorf(at, "group_by %q can never have a value: %s has no such label (it has %s; targets add job, instance%s)",
					name, r.Metric, strings.Join(known, ", "), prefixed(", ", opts.TargetLabels))
			}
		}
	}

	if r.Kind == KindSLO {
		r.SLO = parseSLO(d, n, f, interval)
		// From metrics, an availability SLO (no latency) reads a request
		// counter (apiserver_request_total: a 5xx code is failed), a
		// latency SLO a histogram. The wrong kind would burn 0x forever
		// (histogram buckets are never failed) or page at once (a
		// counter's increases have no latency, every one would be slow).
		if _, histogram := KnownMetricLabels(r.Metric); r.Source == SourceMetrics && r.SLO.Latency == 0 && histogram {
			d.Errorf(f["metric"].Value, "%s is a latency histogram, whose buckets carry no status code: an availability SLO (no latency) from metrics needs a request counter with a code label (apiserver_request_total); give a latency, or name a counter", r.Metric)
		} else if r.Source == SourceMetrics && r.SLO.Latency > 0 && strings.HasSuffix(r.Metric, "_total") {
			d.Errorf(f["objective"].Value, "%s is a counter, whose increases carry no latency: a latency SLO from metrics needs a histogram (apiserver_request_duration_seconds); drop latency for an availability SLO (5xx codes are failed), or name a histogram", r.Metric)
		}
	} else {
		parseLatencyObjective(d, n, f, r, interval, before)
	}
	parseNoData(d, f, r)
	parseExplainBy(d, f, r)
	r.Mute = parseMutes(d, f["mute"].Value)

	r.Labels = d.StringMap(f["labels"].Value, "labels")
	if ln := f["labels"].Value; ln != nil && ln.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(ln.Content); i += 2 {
			if name := ln.Content[i].Value; !model.LegacyValidation.IsValidLabelName(name) {
				d.Errorf(ln.Content[i], "label name %q is not valid", name)
			}
		}
	}

	if an := f["annotations"].Value; an != nil {
		texts := d.StringMap(an, "annotations")
		r.Annotations = make(map[string]*Template, len(texts))
		for i := 0; an.Kind == yaml.MappingNode && i+1 < len(an.Content); i += 2 {
			name := an.Content[i].Value
			t, err := ParseTemplate(name, texts[name])
			if err == nil {
				_, err = t.Execute(TemplateData{Labels: map[string]string{}, ExternalLabels: map[string]string{}})
			}
			if err != nil {
				d.Errorf(an.Content[i+1], "annotation %q: %v", name, err)
				continue
			}
			r.Annotations[name] = t
		}
	}
	if len(d.Errs) > before {
		return r, false
	}
	r.Fingerprint = fingerprint(r, g)
	return r, true
}

// fingerprint hashes everything that decides how a rule evaluates.
func fingerprint(r *Rule, g *Group) string {
	h := sha256.New()
	w := func(parts ...string) {
		for _, p := range parts {
			fmt.Fprintf(h, "%d:%s", len(p), p)
		}
	}
	w(g.Interval.Spec, r.Name, string(r.Source), r.Metric)
	for _, m := range r.Matchers {
		w(m.String())
	}
	w("|")
	w(r.GroupBy...)
	w(string(r.Kind), fmt.Sprint(r.Objective.Quantile, r.Objective.Threshold, r.Window, r.For, r.KeepFiringFor))
	w(fmt.Sprint(r.MinObservations, r.NoDataTimeout))
	if r.ExplainBySet { // only then: rules without it keep their fingerprint (and snapshots)
		w("explain_by")
		w(r.ExplainBy...)
	}
	if r.SLO != nil {
		w(fmt.Sprint(r.SLO.Target, r.SLO.Latency, r.SLO.Period))
		for _, b := range r.SLO.BurnRateAlerts {
			w(fmt.Sprint(b))
		}
	}
	for _, k := range sortedKeys(r.Labels) {
		w(k, r.Labels[k])
	}
	w("|")
	names := make([]string, 0, len(r.Annotations))
	for k := range r.Annotations {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		w(k, r.Annotations[k].Text)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SanitizeLabelName turns an attribute name into a Prometheus label name:
// every character outside [a-zA-Z0-9_] becomes '_' (k8s.node.name →
// k8s_node_name), and a leading digit gets a '_' prefix.
func SanitizeLabelName(name string) string {
	b := []byte(name)
	for i, c := range b {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}

// FormatDuration writes a duration the way a user writes one: Prometheus's
// notation (5m, 1h30m, 28d) for whole seconds, Go's (1.2s, 250ms) below.
func FormatDuration(d time.Duration) string {
	if d%time.Second != 0 {
		return d.String()
	}
	return model.Duration(d).String()
}

// spanKinds are the values span.kind takes, as sources/otlp writes them.
var spanKinds = []string{"server", "client", "internal", "producer", "consumer", "unspecified"}

// knownMetricLabels are the labels of the control plane's latency
// histograms, from the apiserver's and etcd's source (see
// shared/fixtures/README.md); older releases' names are included.
var knownMetricLabels = map[string][]string{
	"apiserver_request_duration_seconds":     {"verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"},
	"apiserver_request_sli_duration_seconds": {"verb", "group", "version", "resource", "subresource", "scope", "component"},
	"apiserver_request_slo_duration_seconds": {"verb", "group", "version", "resource", "subresource", "scope", "component"},
	"etcd_request_duration_seconds":          {"operation", "group", "resource", "type"},
}

// KnownMetricLabels returns the labels a known control-plane histogram
// carries (before target labels), and whether the metric is known.
func KnownMetricLabels(metric string) ([]string, bool) {
	l, ok := knownMetricLabels[metric]
	return l, ok
}

func prefixed(sep string, list []string) string {
	if len(list) == 0 {
		return ""
	}
	return sep + strings.Join(list, sep)
}

func isSLO(n *yaml.Node) bool {
	if n == nil || n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "slo" {
			return true
		}
	}
	return false
}

func parseLatencyObjective(d *yamlpos.Decoder, n *yaml.Node, f map[string]yamlpos.Field, r *Rule, interval time.Duration, before int) {
	if obj, ok := f["objective"]; ok {
		of := d.Mapping(obj.Value, "objective", "quantile", "threshold")
		r.Objective.Quantile = d.Float(of["quantile"].Value, "quantile")
		if q := r.Objective.Quantile; of["quantile"].Value == nil {
			d.Errorf(obj.Value, "objective has no quantile")
		} else if q <= 0 || q >= 1 {
			d.Errorf(of["quantile"].Value, "quantile %v must be between 0 and 1 (exclusive)", q)
		}
		r.Objective.Threshold = d.Duration(of["threshold"].Value, "threshold")
		if of["threshold"].Value == nil {
			d.Errorf(obj.Value, "objective has no threshold")
		} else if r.Objective.Threshold <= 0 && len(d.Errs) == before {
			d.Errorf(of["threshold"].Value, "threshold must be positive")
		}
	} else {
		d.Errorf(n, "rule %q has no objective", r.Name)
	}

	r.Window = d.Duration(f["window"].Value, "window")
	switch w := f["window"].Value; {
	case w == nil:
		d.Errorf(n, "rule %q has no window", r.Name)
	case r.Window <= 0 && len(d.Errs) == before:
		d.Errorf(w, "window must be positive")
	case r.Window > 0 && r.Window < interval:
		d.Errorf(w, "window %s is shorter than the group's evaluation interval %s", FormatDuration(r.Window), FormatDuration(interval))
	}
	r.For = d.Duration(f["for"].Value, "for")
	r.KeepFiringFor = d.Duration(f["keep_firing_for"].Value, "keep_firing_for")
}

func parseSLO(d *yamlpos.Decoder, n *yaml.Node, f map[string]yamlpos.Field, interval time.Duration) *SLO {
	slo := &SLO{Period: 28 * 24 * time.Hour}
	obj, ok := f["objective"]
	if !ok {
		d.Errorf(n, "slo has no objective (objective: {target: 99.0, latency: 1s})")
	} else {
		of := d.Mapping(obj.Value, "slo objective", "target", "latency")
		slo.Target = d.Float(of["target"].Value, "target")
		if tn := of["target"].Value; tn == nil {
			d.Errorf(obj.Value, "slo objective has no target (a percentage such as 99.9)")
		} else if slo.Target <= 0 || slo.Target >= 100 {
			d.Errorf(tn, "target %v must be a percentage between 0 and 100 (exclusive)", slo.Target)
		}
		slo.Latency = d.Duration(of["latency"].Value, "latency")
	}
	if p := f["period"].Value; p != nil {
		slo.Period = d.Duration(p, "period")
		if slo.Period <= 0 {
			d.Errorf(p, "period must be positive")
		}
	}
	brn := f["burn_rate_alerts"].Value
	switch {
	case brn == nil || (brn.Kind == yaml.ScalarNode && brn.Value == "default"):
		slo.BurnRateAlerts = DefaultBurnRateAlerts(slo.Period)
	case brn.Kind == yaml.ScalarNode:
		d.Errorf(brn, "burn_rate_alerts must be \"default\" or a list of {severity, long_window, short_window, factor or budget_percent, for}")
	default:
		for _, an := range d.Sequence(brn, "burn_rate_alerts") {
			af := d.Mapping(an, "burn rate alert", "severity", "long_window", "short_window", "factor", "budget_percent", "for")
			b := BurnRateAlert{
				Severity:    d.String(af["severity"].Value, "severity"),
				LongWindow:  d.Duration(af["long_window"].Value, "long_window"),
				ShortWindow: d.Duration(af["short_window"].Value, "short_window"),
				Factor:      d.Float(af["factor"].Value, "factor"),
				For:         d.Duration(af["for"].Value, "for"),
			}
			if pn := af["budget_percent"].Value; pn != nil {
				pct := d.Float(pn, "budget_percent")
				switch {
				case af["factor"].Value != nil:
					d.Errorf(pn, "burn rate alert gives both factor and budget_percent; give one")
				case pct <= 0 || pct > 100:
					d.Errorf(pn, "budget_percent %v must be a percentage above 0 and at most 100", pct)
				case b.LongWindow > 0 && slo.Period > 0:
					b.Factor = BurnRateFactor(pct, slo.Period, b.LongWindow)
				}
			}
			switch {
			case b.Severity != "page" && b.Severity != "ticket":
				d.Errorf(an, "burn rate alert severity %q must be page or ticket", b.Severity)
			case slices.Contains(slo.BurnRateAlerts, b):
				d.Errorf(an, "burn rate alert %s %s/%s ×%g is given twice", b.Severity, FormatDuration(b.LongWindow), FormatDuration(b.ShortWindow), b.Factor)
			case b.LongWindow <= 0 || b.ShortWindow <= 0:
				d.Errorf(an, "burn rate alert needs long_window and short_window")
			case b.ShortWindow >= b.LongWindow:
				d.Errorf(af["short_window"].Value, "short_window %s must be shorter than long_window %s", FormatDuration(b.ShortWindow), FormatDuration(b.LongWindow))
			case b.Factor <= 0:
				d.Errorf(an, "burn rate alert needs a positive factor")
			}
			slo.BurnRateAlerts = append(slo.BurnRateAlerts, b)
		}
		if len(slo.BurnRateAlerts) == 0 {
			d.Errorf(brn, "burn_rate_alerts is empty")
		}
	}
	for _, b := range slo.BurnRateAlerts {
		if b.ShortWindow > 0 && b.ShortWindow < interval {
			d.Errorf(n, "short_window %s is shorter than the group's evaluation interval %s", FormatDuration(b.ShortWindow), FormatDuration(interval))
		}
		if b.LongWindow > slo.Period {
			d.Errorf(n, "long_window %s is longer than the period %s", FormatDuration(b.LongWindow), FormatDuration(slo.Period))
		}
	}
	return slo
}

// maxMinObservations bounds min_observations: a window that needs more
// requests than this is a typo, not a design.
const maxMinObservations = 1_000_000_000

// maxNoDataTimeout bounds no_data_timeout: an alert kept firing for longer
// on no data is an alert nobody can trust.
const maxNoDataTimeout = 30 * 24 * time.Hour

// parseNoData reads min_observations and no_data_timeout, which decide
// when a series is no_data and how long a firing alert outlives its data.
func parseNoData(d *yamlpos.Decoder, f map[string]yamlpos.Field, r *Rule) {
	r.MinObservations = DefaultMinObservations
	if n := f["min_observations"].Value; n != nil {
		before := len(d.Errs)
		v := d.Int(n, "min_observations")
		switch {
		case len(d.Errs) > before:
		case v < 1:
			d.Errorf(n, "min_observations %d must be at least 1 (a window with no observations is always no_data)", v)
		case v > maxMinObservations:
			d.Errorf(n, "min_observations %d is over the limit of %d", v, maxMinObservations)
		default:
			r.MinObservations = uint64(v)
		}
	}
	r.NoDataTimeout = DefaultNoDataTimeout
	if n := f["no_data_timeout"].Value; n != nil {
		before := len(d.Errs)
		v := d.Duration(n, "no_data_timeout")
		switch {
		case len(d.Errs) > before:
		case v < 0:
			d.Errorf(n, "no_data_timeout must not be negative")
		case v > maxNoDataTimeout:
			d.Errorf(n, "no_data_timeout %s is over the limit of %s", FormatDuration(v), FormatDuration(maxNoDataTimeout))
		default:
			r.NoDataTimeout = v
		}
	}
}

var muteParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func parseMutes(d *yamlpos.Decoder, n *yaml.Node) []Mute {
	var out []Mute
	for _, mn := range d.Sequence(n, "mute") {
		mf := d.Mapping(mn, "mute", "schedule", "duration")
		spec := d.String(mf["schedule"].Value, "schedule")
		m := Mute{Spec: spec, Duration: d.Duration(mf["duration"].Value, "duration")}
		if spec == "" {
			d.Errorf(mn, "mute has no schedule (a cron spec such as \"0 2 * * SUN\")")
		} else if sched, err := muteParser.Parse(spec); err != nil {
			d.Errorf(mf["schedule"].Value, "mute schedule %q: %v", spec, err)
		} else {
			m.schedule = sched
		}
		if m.Duration <= 0 {
			d.Errorf(mn, "mute needs a positive duration")
		}
		out = append(out, m)
	}
	return out
}

// maxExplainByName bounds an explain_by attribute name.
const maxExplainByName = 256

// parseExplainBy reads explain_by: the attributes slow_requests_by
// compares, at most MaxExplainBy, each named once.
func parseExplainBy(d *yamlpos.Decoder, f map[string]yamlpos.Field, r *Rule) {
	fld, ok := f["explain_by"]
	if !ok {
		return
	}
	r.ExplainBySet = true
	items := d.Sequence(fld.Value, "explain_by")
	r.ExplainBy = make([]string, 0, len(items))
	if len(items) > MaxExplainBy {
		d.Errorf(fld.Value, "explain_by names %d attributes, over the limit of %d", len(items), MaxExplainBy)
		return
	}
	if len(items) > 0 && r.Kind == KindSLO && r.SLO != nil && r.SLO.Latency <= 0 {
		d.Errorf(fld.Key, "explain_by needs a latency objective: it compares requests slower than the latency with all requests")
		return
	}
	for _, item := range items {
		name := d.String(item, "explain_by item")
		switch {
		case name == "":
			d.Errorf(item, "explain_by has an empty name")
		case len(name) > maxExplainByName:
			d.Errorf(item, "explain_by name is %d bytes, over the limit of %d", len(name), maxExplainByName)
		case !utf8.ValidString(name):
			d.Errorf(item, "explain_by name %q is not valid UTF-8", name)
		case slices.Contains(r.ExplainBy, name):
			d.Errorf(item, "explain_by names %q twice", name)
		case slices.Contains(r.GroupBy, name):
			d.Errorf(item, "explain_by %q is in group_by: each series has one value of it, which cannot stand out", name)
		default:
			r.ExplainBy = append(r.ExplainBy, name)
		}
	}
}
