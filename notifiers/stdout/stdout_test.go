package stdout

import (
	"bytes"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/golden"

	"github.com/kube-sentinel/sentinel/engine"
)

func TestGolden(t *testing.T) {
	now := time.Date(2024, 5, 1, 10, 5, 0, 0, time.UTC)
	alerts := []engine.Alert{
		{
			Labels: map[string]string{
				"alertname": "KubeAPINamespacesLatencyP99",
				"verb":      "GET",
				"team":      "control-plane",
				"severity":  "page",
				"cluster":   "prod-eu1",
			},
			Annotations: map[string]string{
				"summary":            "p99 of GET namespaces requests is 3.2s (objective 1s)",
				"value":              "3.2",
				"threshold":          "1",
				"exemplar_trace_ids": "4bf92f3577b34da6a3ce929d0e0e4736,00f067aa0ba902b7a3ce929d0e0e4736,a3ce929d0e0e47364bf92f3577b34da6",
				"exemplar_trace_urls": "https://tracing.example/trace/4bf92f3577b34da6a3ce929d0e0e4736," +
					"https://tracing.example/trace/00f067aa0ba902b7a3ce929d0e0e4736," +
					"https://tracing.example/trace/a3ce929d0e0e47364bf92f3577b34da6",
				"description": "Slow requests to etcd.\nCheck the etcd dashboards.",
			},
			StartsAt:     time.Date(2024, 5, 1, 10, 1, 0, 0, time.UTC),
			EndsAt:       time.Date(2024, 5, 1, 10, 9, 0, 0, time.UTC),
			GeneratorURL: "http://sentinel.example:9464/#KubeAPINamespacesLatencyP99",
		},
		{
			Labels:      map[string]string{"alertname": "KubeAPINamespacesLatencyP99", "verb": "LIST", "severity": "page"},
			Annotations: map[string]string{"summary": "p99 of LIST namespaces requests is 1.4s (objective 1s)", "exemplar_trace_ids": ""},
			StartsAt:    time.Date(2024, 5, 1, 9, 58, 0, 0, time.UTC),
			EndsAt:      time.Date(2024, 5, 1, 10, 4, 30, 0, time.UTC),
		},
		{
			Labels: map[string]string{"severity": "ticket"},
		},
	}

	var out bytes.Buffer
	n := New(&out)
	n.now = func() time.Time { return now }
	n.Send(alerts...)

	golden.Check(t, filepath.Join("testdata", "alerts.golden"), out.String())
}

// Concurrent senders never interleave within an alert's block.
func TestConcurrentSendersDoNotInterleave(t *testing.T) {
	var out bytes.Buffer
	n := New(&out)
	alert := engine.Alert{
		Labels:      map[string]string{"alertname": "A", "x": "1", "y": "2"},
		Annotations: map[string]string{"exemplar_trace_ids": "1,2,3"},
		EndsAt:      time.Now().Add(time.Hour),
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				n.Send(alert)
			}
		})
	}
	wg.Wait()
	var one bytes.Buffer
	format(&one, &alert, time.Now())
	if got, want := out.String(), strings.Repeat(one.String(), 400); got != want {
		t.Errorf("output of 400 identical sends is not 400 identical blocks")
	}
}
