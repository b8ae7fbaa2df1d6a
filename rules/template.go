package rules

import (
	"fmt"
	"math"
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
	"humanizePercentage": func(v float64) string { return humanize(v*100) + "%" },
	"toUpper":            strings.ToUpper,
	"toLower":            strings.ToLower,
}

// ParseTemplate parses an annotation template.
func ParseTemplate(name, text string) (*Template, error) {
	t, err := template.New(name).Option("missingkey=zero").Funcs(templateFuncs).Parse(templatePrelude + text)
	if err != nil {
		return nil, fmt.Errorf("template %q: %w", name, trimTemplateErr(err))
	}
	return &Template{Text: text, tmpl: t}, nil
}

func trimTemplateErr(err error) error {
	return err
}

// Execute renders the template.
func (t *Template) Execute(data TemplateData) (string, error) {
	var b strings.Builder
	if err := t.tmpl.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

func humanize(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
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
