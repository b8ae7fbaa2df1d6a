package rules

import (
	"strings"
	"testing"
)

func TestHumanize(t *testing.T) {
	cases := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{1, "1"},
		{999, "999"},
		{1234, "1.234k"},
		{1234567, "1.235M"},
		{-2.5e9, "-2.5G"},
		{0.5, "500m"},
		{0.00123, "1.23m"},
		{2e-7, "200n"},
	}
	for _, c := range cases {
		if got := humanize(c.in); got != c.want {
			t.Errorf("humanize(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestHumanizePercentage: a ratio as a percentage, without SI prefixes.
func TestHumanizePercentage(t *testing.T) {
	tmpl, err := ParseTemplate("p", "{{ humanizePercentage 0.0123 }} {{ humanizePercentage 0.001 }} {{ humanizePercentage 12.5 }}")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tmpl.Execute(TemplateData{}); err != nil || got != "1.23% 0.1% 1250%" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// TestTemplateErrorColumns: an error's column is where it is in the
// annotation as written, not in the text with the prelude that defines
// $labels, $value and $threshold.
func TestTemplateErrorColumns(t *testing.T) {
	tmpl, err := ParseTemplate("summary", "ab {{ humanize $labels.verb }}")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Execute(TemplateData{Labels: map[string]string{"verb": "GET"}})
	if err == nil || !strings.HasPrefix(err.Error(), `template: summary:1:22: executing "summary" at <$labels.verb>`) {
		t.Fatalf("error %v, want it at summary:1:22 (the byte offset of .verb in $labels.verb, as text/template counts)", err)
	}
	_, err = ParseTemplate("summary", "ab {{ .Foo | nofunc }}")
	if err == nil || !strings.Contains(err.Error(), `function "nofunc" not defined`) {
		t.Fatalf("parse error %v", err)
	}
}
