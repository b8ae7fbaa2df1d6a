package ruletest

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"gopkg.in/yaml.v3"

	"github.com/kube-sentinel/sentinel/internal/yamlpos"
)

// defaultEvaluationInterval is promtool's default evaluation_interval.
const defaultEvaluationInterval = time.Minute

// maxSimulated bounds a test's simulated time (inputs and eval_time), far
// below the year 2262 where nanosecond timestamps end.
const maxSimulated = 100 * 365 * 24 * time.Hour

// position is where something was written in a test file.
type position struct{ line, col int }

func at(n *yaml.Node) position {
	if n == nil {
		return position{1, 1}
	}
	return position{n.Line, n.Column}
}

// testFile is one parsed rule-test file.
type testFile struct {
	path               string
	ruleFiles          []ruleFileRef
	evaluationInterval time.Duration
	externalLabels     map[string]string
	tests              []*testCase
}

type ruleFileRef struct {
	pattern string
	pos     position
}

// testCase is one entry of tests[].
type testCase struct {
	name           string
	pos            position
	interval       time.Duration
	externalLabels map[string]string
	spans          []spanInput
	series         []seriesInput
	alertTests     []alertTest
}

// spanInput is one entry of input_spans[]: a kind of span and when it ends.
type spanInput struct {
	attributes []attribute
	resource   []attribute
	kind       ptrace.SpanKind
	status     ptrace.StatusCode
	name       string
	durations  []durationRun
	slots      int64 // length of the expanded list, skipped slots included
}

// attribute is a span or resource attribute with its YAML type kept: an
// integer stays an integer (http.status_code: 500), as an exporter sends it.
type attribute struct {
	key   string
	value any // string, int64, float64 or bool
}

type seriesInput struct {
	text   string
	metric string
	labels map[string]string
	values []seriesRun
	pos    position
}

type alertTest struct {
	evalTime  time.Duration
	alertname string
	expected  []expectedAlert
	pos       position
}

type expectedAlert struct {
	labels       map[string]string
	annotations  map[string]string
	exemplars    int
	hasExemplars bool
}

var (
	fileFields      = []string{"rule_files", "evaluation_interval", "external_labels", "tests"}
	testFields      = []string{"name", "interval", "external_labels", "input_spans", "input_series", "alert_rule_test"}
	spanFields      = []string{"attributes", "resource", "kind", "status", "name", "durations"}
	seriesFields    = []string{"series", "values"}
	alertTestFields = []string{"eval_time", "alertname", "exp_alerts"}
	expAlertFields  = []string{"exp_labels", "exp_annotations", "exp_exemplars"}
)

// parseFile parses a rule-test file's content; path names it in errors.
// Every problem is reported, each as a *yamlpos.Error with a line.
func parseFile(path string, data []byte) (*testFile, error) {
	p := &fileParser{d: &yamlpos.Decoder{File: path}, src: data}
	tf := p.file()
	if err := p.d.Err(); err != nil {
		return nil, err
	}
	return tf, nil
}

type fileParser struct {
	d   *yamlpos.Decoder
	src []byte
}

func (p *fileParser) file() *testFile {
	d := p.d
	tf := &testFile{path: d.File, evaluationInterval: defaultEvaluationInterval}
	root := d.Parse(p.src)
	if root == nil {
		if len(d.Errs) == 0 {
			d.Errs = append(d.Errs, &yamlpos.Error{File: d.File, Line: 1, Col: 1, Msg: "the test file is empty: it needs rule_files and tests"})
		}
		return nil
	}
	f := d.Mapping(root, "test file", fileFields...)
	if rf, ok := f["rule_files"]; ok {
		for _, n := range d.Sequence(rf.Value, "rule_files") {
			pattern := d.String(n, "rule_files item")
			if pattern == "" {
				d.Errorf(n, "rule_files has an empty name")
				continue
			}
			tf.ruleFiles = append(tf.ruleFiles, ruleFileRef{pattern: pattern, pos: at(n)})
		}
	} else {
		d.Errorf(root, "the test file has no rule_files")
	}
	if n := f["evaluation_interval"].Value; n != nil {
		tf.evaluationInterval = p.positiveDuration(n, "evaluation_interval")
	}
	tf.externalLabels = p.labels(f["external_labels"].Value, "external_labels")
	tests, ok := f["tests"]
	if !ok {
		d.Errorf(root, "the test file has no tests")
	}
	for _, n := range d.Sequence(tests.Value, "tests") {
		if tc := p.test(n, tf); tc != nil {
			tf.tests = append(tf.tests, tc)
		}
	}
	return tf
}

func (p *fileParser) positiveDuration(n *yaml.Node, what string) time.Duration {
	before := len(p.d.Errs)
	v := p.d.Duration(n, what)
	if len(p.d.Errs) == before && (v <= 0 || v > maxSimulated) {
		p.d.Errorf(n, "%s must be positive and at most 100y", what)
	}
	return v
}

func (p *fileParser) labels(n *yaml.Node, what string) map[string]string {
	m := p.d.StringMap(n, what)
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; !validLabelName(k.Value) {
				p.d.Errorf(k, "%s: %q is not a valid label name", what, k.Value)
			}
		}
	}
	return m
}

func validLabelName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i], i == 0, false) {
			return false
		}
	}
	return s != ""
}

func (p *fileParser) test(n *yaml.Node, tf *testFile) *testCase {
	d := p.d
	f := d.Mapping(n, "test", testFields...)
	tc := &testCase{pos: at(n), interval: tf.evaluationInterval}
	tc.name = d.String(f["name"].Value, "name")
	if iv := f["interval"].Value; iv != nil {
		tc.interval = p.positiveDuration(iv, "interval")
	}
	tc.externalLabels = p.labels(f["external_labels"].Value, "external_labels")
	for i, sn := range d.Sequence(f["input_spans"].Value, "input_spans") {
		if s, ok := p.spanInput(sn, i); ok {
			if tc.interval > 0 && s.slots > int64(maxSimulated/tc.interval) {
				d.Errorf(sn, "input_spans entry %d spans more than 100y at interval %s", i, tc.interval)
			}
			tc.spans = append(tc.spans, s)
		}
	}
	for _, sn := range d.Sequence(f["input_series"].Value, "input_series") {
		if s, ok := p.seriesInput(sn); ok {
			tc.series = append(tc.series, s)
		}
	}
	for _, an := range d.Sequence(f["alert_rule_test"].Value, "alert_rule_test") {
		if at, ok := p.alertTest(an); ok {
			tc.alertTests = append(tc.alertTests, at)
		}
	}
	return tc
}

func (p *fileParser) spanInput(n *yaml.Node, entry int) (spanInput, bool) {
	d := p.d
	before := len(d.Errs)
	f := d.Mapping(n, "input_spans entry", spanFields...)
	s := spanInput{kind: ptrace.SpanKindServer}
	s.attributes = p.attributes(f["attributes"].Value, "attributes")
	s.resource = p.attributes(f["resource"].Value, "resource")
	if kn := f["kind"].Value; kn != nil {
		switch k := strings.ToLower(d.String(kn, "kind")); k {
		case "server":
			s.kind = ptrace.SpanKindServer
		case "client":
			s.kind = ptrace.SpanKindClient
		case "internal":
			s.kind = ptrace.SpanKindInternal
		case "producer":
			s.kind = ptrace.SpanKindProducer
		case "consumer":
			s.kind = ptrace.SpanKindConsumer
		default:
			d.Errorf(kn, "kind %q must be server, client, internal, producer or consumer", k)
		}
	}
	if sn := f["status"].Value; sn != nil {
		switch st := strings.ToLower(d.String(sn, "status")); st {
		case "unset", "":
			s.status = ptrace.StatusCodeUnset
		case "ok":
			s.status = ptrace.StatusCodeOk
		case "error":
			s.status = ptrace.StatusCodeError
		default:
			d.Errorf(sn, "status %q must be unset, ok or error", st)
		}
	}
	s.name = d.String(f["name"].Value, "name")
	dn := f["durations"].Value
	if dn == nil {
		d.Errorf(n, "input_spans entry %d has no durations", entry)
	} else if text, ok := p.scalar(dn, "durations"); ok {
		runs, total, err := expandDurations(text)
		if err != nil {
			p.notationError(dn, "durations", err)
		}
		s.durations, s.slots = runs, total
	}
	return s, len(d.Errs) == before
}

// attributes reads a mapping of scalars into typed attributes, in file order.
func (p *fileParser) attributes(n *yaml.Node, what string) []attribute {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.d.Errorf(n, "%s must be a mapping of attribute names to values", what)
		return nil
	}
	var out []attribute
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		switch {
		case k.Value == "":
			p.d.Errorf(k, "%s: an attribute needs a name", what)
			continue
		case seen[k.Value]:
			p.d.Errorf(k, "%s: %q given twice", what, k.Value)
			continue
		case v.Kind != yaml.ScalarNode:
			p.d.Errorf(v, "%s[%s] must be a string, number or boolean", what, k.Value)
			continue
		}
		seen[k.Value] = true
		out = append(out, attribute{key: k.Value, value: scalarValue(v)})
	}
	return out
}

func scalarValue(v *yaml.Node) any {
	switch v.Tag {
	case "!!int":
		if i, err := strconv.ParseInt(v.Value, 0, 64); err == nil {
			return i
		}
	case "!!float":
		if f, err := strconv.ParseFloat(v.Value, 64); err == nil {
			return f
		}
	case "!!bool":
		if b, err := strconv.ParseBool(strings.ToLower(v.Value)); err == nil {
			return b
		}
	case "!!null":
		return ""
	}
	return v.Value
}

func (p *fileParser) seriesInput(n *yaml.Node) (seriesInput, bool) {
	d := p.d
	before := len(d.Errs)
	f := d.Mapping(n, "input_series entry", seriesFields...)
	s := seriesInput{pos: at(n)}
	if sn := f["series"].Value; sn == nil {
		d.Errorf(n, "input_series entry has no series")
	} else if text, ok := p.scalar(sn, "series"); ok {
		name, labels, err := parseSeries(text)
		if err != nil {
			p.notationError(sn, "series", err)
		}
		s.text, s.metric, s.labels = text, name, labels
	}
	if vn := f["values"].Value; vn == nil {
		d.Errorf(n, "input_series entry has no values")
	} else if text, ok := p.scalar(vn, "values"); ok {
		runs, _, err := expandSeries(text)
		if err != nil {
			p.notationError(vn, "values", err)
		}
		s.values = runs
	}
	return s, len(d.Errs) == before
}

func (p *fileParser) alertTest(n *yaml.Node) (alertTest, bool) {
	d := p.d
	before := len(d.Errs)
	f := d.Mapping(n, "alert_rule_test entry", alertTestFields...)
	a := alertTest{pos: at(n)}
	if en := f["eval_time"].Value; en != nil {
		b := len(d.Errs)
		a.evalTime = d.Duration(en, "eval_time")
		if len(d.Errs) == b && a.evalTime > maxSimulated {
			d.Errorf(en, "eval_time must be at most 100y")
		}
	}
	a.alertname = d.String(f["alertname"].Value, "alertname")
	if a.alertname == "" {
		d.Errorf(n, "alert_rule_test entry has no alertname")
	}
	for _, en := range d.Sequence(f["exp_alerts"].Value, "exp_alerts") {
		ef := d.Mapping(en, "exp_alerts entry", expAlertFields...)
		e := expectedAlert{
			labels:      p.labels(ef["exp_labels"].Value, "exp_labels"),
			annotations: d.StringMap(ef["exp_annotations"].Value, "exp_annotations"),
		}
		if v, ok := e.labels["alertname"]; ok {
			if v != a.alertname {
				d.Errorf(ef["exp_labels"].Value, "exp_labels has alertname %q but the test is for %q (alertname is implied; leave it out)", v, a.alertname)
			}
			delete(e.labels, "alertname")
		}
		if xn := ef["exp_exemplars"].Value; xn != nil {
			b := len(d.Errs)
			x := d.Int(xn, "exp_exemplars")
			if len(d.Errs) == b && (x < 0 || x > 1000) {
				d.Errorf(xn, "exp_exemplars %d must be a count from 0", x)
			}
			e.exemplars, e.hasExemplars = int(x), true
		}
		a.expected = append(a.expected, e)
	}
	return a, len(d.Errs) == before
}

// scalar reads a string, reporting whether it was one.
func (p *fileParser) scalar(n *yaml.Node, what string) (string, bool) {
	before := len(p.d.Errs)
	v := p.d.String(n, what)
	return v, len(p.d.Errs) == before
}

// notationError reports an expansion error at the column it concerns when
// the scalar sits on one line of the source as written, else at the scalar.
func (p *fileParser) notationError(n *yaml.Node, what string, err error) {
	var ne *notationError
	if !errors.As(err, &ne) {
		p.d.Errorf(n, "%s: %v", what, err)
		return
	}
	line, col := n.Line, n.Column
	if c, ok := p.columnOf(n, ne.Offset); ok {
		col = c
	}
	p.d.Errs = append(p.d.Errs, &yamlpos.Error{File: p.d.File, Line: line, Col: col,
		Msg: what + ": " + ne.Msg})
}

// columnOf maps an offset in a scalar's value to a column of the source,
// when the scalar is written verbatim on its line (plain, or quoted
// without escapes).
func (p *fileParser) columnOf(n *yaml.Node, off int) (int, bool) {
	lines := bytes.Split(p.src, []byte("\n"))
	if n.Line < 1 || n.Line > len(lines) || n.Column < 1 {
		return 0, false
	}
	text := lines[n.Line-1]
	start := n.Column - 1 // byte offset; yaml.v3 counts columns in runes
	if start > len(text) || bytes.IndexFunc(text[:start], func(r rune) bool { return r > 127 }) >= 0 {
		return 0, false
	}
	switch n.Style {
	case 0:
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		start++
	default:
		return 0, false
	}
	if start+len(n.Value) > len(text) || string(text[start:start+len(n.Value)]) != n.Value {
		return 0, false
	}
	if off < 0 || off > len(n.Value) {
		return 0, false
	}
	return start + off + 1, true
}
