package engine

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestApplyChangesRunningSettings: what a reload hands the engine is what
// the next evaluation uses: resend delay, resolve timeout, trace URL
// template, external URL, and the default interval of groups without their
// own at the next Load.
func TestApplyChangesRunningSettings(t *testing.T) {
	noInterval := strings.Replace(strings.Replace(namespacesRule, "    interval: 15s\n", "", 1), "for: 30s", "for: 0s", 1)
	e, clock, rec := newTestEngine(t, noInterval, Options{ResendDelay: time.Hour,
		TraceURLTemplate: "https://old.example/{{ .TraceID }}", ExternalURL: "http://old:9464"})
	if got := e.Status()[0].Interval; got != 15*time.Second {
		t.Fatalf("interval %v, want the 15s default", got)
	}
	feed(e, apiserverSpan("GET", "/api/v1/namespaces/a"), 0, 60*time.Second, time.Second, constant(2*time.Second))
	clock.t = t0.Add(time.Minute)
	e.Evaluate(context.Background(), clock.t)
	if a := rec.take(); len(a) != 1 || !strings.HasPrefix(a[0].Annotations["exemplar_trace_urls"], "https://old.example/") {
		t.Fatalf("first send: %+v", a)
	}

	if err := e.Apply(Settings{ResendDelay: time.Second, ResolveTimeout: 2 * time.Minute, TraceURLTemplate: "https://new.example/{{ .TraceID }}",
		ExternalURL: "http://new:9464", DefaultInterval: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	feed(e, apiserverSpan("GET", "/api/v1/namespaces/a"), 60*time.Second, 62*time.Second, time.Second, constant(2*time.Second))
	clock.t = t0.Add(62 * time.Second)
	e.Evaluate(context.Background(), clock.t)
	a := rec.take()
	if len(a) != 1 {
		t.Fatalf("with resend delay 1s, 2s later: %d alerts sent, want 1 (the old 1h delay held?)", len(a))
	}
	if !strings.HasPrefix(a[0].Annotations["exemplar_trace_urls"], "https://new.example/") || !strings.HasPrefix(a[0].GeneratorURL, "http://new:9464/") {
		t.Fatalf("after Apply: urls %q generator %q", a[0].Annotations["exemplar_trace_urls"], a[0].GeneratorURL)
	}
	if want := clock.t.Add(2 * time.Minute); !a[0].EndsAt.Equal(want) { // the new resolve_timeout
		t.Errorf("endsAt %v, want %v", a[0].EndsAt, want)
	}
	e.Load(loadRules(t, noInterval))
	if got := e.Status()[0].Interval; got != 5*time.Second {
		t.Fatalf("after Apply and Load: interval %v, want 5s", got)
	}
	if err := e.Apply(Settings{TraceURLTemplate: "{{ .TraceId }}"}); err == nil {
		t.Fatal("a template that cannot execute was applied")
	}
	if got := e.Settings().TraceURLTemplate; got != "https://new.example/{{ .TraceID }}" {
		t.Fatalf("a refused Apply changed the settings: %q", got)
	}
}

// TestTemplateErrorsAreLoggedAndCounted: an annotation that cannot be
// expanded is logged with its rule and counted, and the alert still goes.
func TestTemplateErrorsAreLoggedAndCounted(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	rule := strings.Replace(strings.Replace(namespacesRule, "for: 30s", "for: 0s", 1),
		`summary: "p99 of {{ $labels.verb }} is {{ $value | humanizeDuration }} over {{ $threshold }}s"`,
		`summary: "{{ if $labels.verb }}{{ humanize $labels.verb }}{{ end }}"`, 1)
	e, clock, rec := newTestEngine(t, rule, Options{Registerer: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	feed(e, apiserverSpan("GET", "/api/v1/namespaces/a"), 0, 60*time.Second, time.Second, constant(2*time.Second))
	clock.t = t0.Add(time.Minute)
	e.Evaluate(context.Background(), clock.t)
	if a := rec.take(); len(a) != 1 {
		t.Fatalf("sent %d alerts, want 1", len(a))
	}
	if !strings.Contains(logs.String(), "template expansion failed") || !strings.Contains(logs.String(), "rule=NamespacesP99") {
		t.Errorf("no log line naming the rule:\n%s", logs.String())
	}
	if n := testutil.ToFloat64(e.metrics.templateErr.WithLabelValues("apiserver", "NamespacesP99")); n != 1 {
		t.Errorf("sentinel_rule_template_errors_total = %v, want 1", n)
	}
}
