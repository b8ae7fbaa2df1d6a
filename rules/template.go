package rules

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Template is an annotation template, a Go text/template in which
// $labels, $value (seconds) and $threshold (seconds) are defined, as in
// Prometheus's alerting rules.
type Template struct {
	Text string
	tmpl *template.Template
}

// TemplateData is what a template sees.
type TemplateData struct {
	Labels         map[string]string
	ExternalLabels map[string]string
	Value          float64
	Threshold      float64
}

const templatePrelude = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}" +
	"{{$value := .Value}}{{$threshold := .Threshold}}"

var templateFuncs = template.FuncMap{
	"humanize":           humanize,
	"humanizeDuration":   HumanizeDuration,
	"humanizePercentage": func(v float64) string { return strconv.FormatFloat(v*100, 'g', 4, 64) + "%" },
	"toUpper":            strings.ToUpper,
	"toLower":            strings.ToLower,
}

// ParseTemplate parses an annotation template.
func ParseTemplate(name, text string) (*Template, error) {
	t, err := template.New(name).Option("missingkey=zero").Funcs(templateFuncs).Parse(templatePrelude + text)
	if err != nil {
		return nil, fmt.Errorf("template %q: %w", name, trimTemplateErr(name, err))
	}
	return &Template{Text: text, tmpl: t}, nil
}

// templateErr is a template's error with its position in the rule's text
// rather than in the prelude-prefixed text that was parsed.
type templateErr struct {
	msg string
	err error
}

func (e *templateErr) Error() string { return e.msg }
func (e *templateErr) Unwrap() error { return e.err }

// trimTemplateErr takes the prelude that defines $labels and friends out
// of an error's column: "summary:1:130" becomes "summary:1:17", the column
// in the annotation as written. Other lines' columns are already right.
func trimTemplateErr(name string, err error) error {
	re := regexp.MustCompile(regexp.QuoteMeta(name) + `:1:(\d+)`)
	msg := err.Error()
	m := re.FindStringSubmatchIndex(msg)
	if m == nil {
		return err
	}
	col, convErr := strconv.Atoi(msg[m[2]:m[3]])
	if convErr != nil || col < len(templatePrelude) {
		return err
	}
	return &templateErr{msg: msg[:m[2]] + strconv.Itoa(col-len(templatePrelude)) + msg[m[3]:], err: err}
}

// Execute renders the template.
func (t *Template) Execute(data TemplateData) (string, error) {
	var b strings.Builder
	if err := t.tmpl.Execute(&b, data); err != nil {
		return "", trimTemplateErr(t.tmpl.Name(), err)
	}
	return b.String(), nil
}

// humanize renders a number with an SI prefix, as Prometheus's humanize
// does: 1234567 → "1.235M", 0.00123 → "1.23m".
func humanize(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	prefix := ""
	if abs := math.Abs(v); abs >= 1 {
		for _, p := range []string{"k", "M", "G", "T", "P", "E", "Z", "Y"} {
			if math.Abs(v) < 1000 {
				break
			}
			prefix = p
			v /= 1000
		}
	} else {
		for _, p := range []string{"m", "u", "n", "p", "f", "a", "z", "y"} {
			if math.Abs(v) >= 1 {
				break
			}
			prefix = p
			v *= 1000
		}
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + prefix
}

// HumanizeDuration renders seconds as a short duration ("1.375s",
// "250ms", "2m30s"), with four significant digits below a minute.
func HumanizeDuration(seconds float64) string {
	if math.IsNaN(seconds) || math.IsInf(seconds, 0) {
		return strconv.FormatFloat(seconds, 'g', -1, 64)
	}
	switch abs := math.Abs(seconds); {
	case abs == 0:
		return "0s"
	case abs < 1e-3:
		return strconv.FormatFloat(seconds*1e6, 'g', 4, 64) + "us"
	case abs < 1:
		return strconv.FormatFloat(seconds*1e3, 'g', 4, 64) + "ms"
	case abs < 60:
		return strconv.FormatFloat(seconds, 'g', 4, 64) + "s"
	}
	return time.Duration(math.Round(seconds) * float64(time.Second)).String()
}

// TraceURLData is what a trace_url_template (alerting.trace_url_template)
// sees: an exemplar's IDs in lowercase hex.
type TraceURLData struct{ TraceID, SpanID string }

// ParseTraceURLTemplate parses a trace_url_template and executes it once
// with a sample trace, so that a misspelt field ({{ .TraceId }}) is an
// error when the config is read, not a silent loss of every link later.
func ParseTraceURLTemplate(text string) (*template.Template, error) {
	t, err := template.New("trace_url_template").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("trace_url_template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, TraceURLData{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7"}); err != nil {
		return nil, fmt.Errorf("trace_url_template: %w", err)
	}
	return t, nil
}
