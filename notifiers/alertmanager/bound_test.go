package alertmanager

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/internal/amtest"
)

// Alerts with huge annotations reach a real Alertmanager truncated, in
// posts bounded in bytes, so that no post grows big enough to time out
// and stall the queue.
func TestHugeAlertsAreBoundedInBytes(t *testing.T) {
	t.Parallel()
	am := amtest.Start(t)
	proxy, rec := proxyTo(t, am.URL)
	n := start(t, Options{URLs: []string{proxy.URL}})
	now := time.Now().UTC()
	const count = 100
	var alerts []engine.Alert
	for i := range count {
		a := testAlert(fmt.Sprintf("A%03d", i), now)
		a.Annotations["summary"] = strings.Repeat("slow ", 100<<10/5) // 100 KiB
		alerts = append(alerts, a)
	}
	n.Send(alerts...)

	got := waitForAlerts(t, am, 30*time.Second, names3(0, count)...)
	for name, a := range got {
		if s := a.Annotations["summary"]; len(s) > DefaultMaxAlertBytes || !strings.HasSuffix(s, TruncationMarker) {
			t.Fatalf("%s: summary of %d bytes, want at most %d ending with the marker", name, len(s), DefaultMaxAlertBytes)
		}
		if ids := a.Annotations["exemplar_trace_ids"]; !strings.HasPrefix(ids, "4bf92f35") {
			t.Errorf("%s: the short annotation changed: %q", name, ids)
		}
	}
	rec.mu.Lock()
	bodies := append([]int(nil), rec.bodies...)
	rec.mu.Unlock()
	for i, b := range bodies {
		if b > DefaultMaxBatchBytes+DefaultMaxAlertBytes {
			t.Errorf("post %d has %d bytes, over the batch bound of %d", i, b, DefaultMaxBatchBytes)
		}
	}
	if len(bodies) < 2 {
		t.Errorf("%d posts for %d alerts of ~64 KiB, want them split by bytes", len(bodies), count)
	}
	if got := testutil.ToFloat64(n.metrics.truncated); got != count {
		t.Errorf("truncated = %v, want %d", got, count)
	}
}

func names3(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("A%03d", i))
	}
	return out
}

func TestBoundAlert(t *testing.T) {
	small := &models.PostableAlert{Alert: models.Alert{Labels: models.LabelSet{"alertname": "A"}},
		Annotations: models.LabelSet{"summary": "short"}}
	if _, cut := boundAlert(small, 1024); cut {
		t.Errorf("a small alert was cut")
	}
	big := &models.PostableAlert{Alert: models.Alert{Labels: models.LabelSet{"alertname": "A"}},
		Annotations: models.LabelSet{"summary": strings.Repeat("é", 4000), "value": "1.5"}}
	size, cut := boundAlert(big, 1024)
	if !cut || size > 1024 {
		t.Errorf("cut %v, size %d, want at most 1024", cut, size)
	}
	if v := big.Annotations["value"]; v != "1.5" {
		t.Errorf("a short annotation changed: %q", v)
	}
	if s := big.Annotations["summary"]; !strings.HasSuffix(s, TruncationMarker) || !strings.HasPrefix(s, "é") || !utf8Valid(s) {
		t.Errorf("summary %q", s)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "?") == s }

func TestPeekBoundsBytes(t *testing.T) {
	q := newBoundedQueue(100, 250)
	for i := range 5 {
		q.push([]pendingAlert{{key: fmt.Sprint(i), alert: &models.PostableAlert{}, size: 100}})
	}
	if n := len(q.peek(10).alerts); n != 2 {
		t.Errorf("peeked %d alerts of 100 bytes under 250 bytes, want 2", n)
	}
	q = newBoundedQueue(100, 50)
	q.push([]pendingAlert{{key: "big", alert: &models.PostableAlert{}, size: 100}})
	if n := len(q.peek(10).alerts); n != 1 {
		t.Errorf("an alert over the batch bytes is still sent alone: peeked %d", n)
	}
}
