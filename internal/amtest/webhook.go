package amtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// Notification is one webhook notification from Alertmanager: what a
// pager would receive.
type Notification struct {
	Status   string // "firing" or "resolved"
	GroupKey string
	Alerts   []NotifiedAlert
	At       time.Time // when the receiver got it
}

// NotifiedAlert is one alert in a Notification.
type NotifiedAlert struct {
	Status   string            `json:"status"`
	Labels   map[string]string `json:"labels"`
	StartsAt time.Time         `json:"startsAt"`
	EndsAt   time.Time         `json:"endsAt"`
}

// Webhook is a webhook receiver on loopback that keeps every notification
// Alertmanager sends it.
type Webhook struct {
	URL string

	mu   sync.Mutex
	got  []Notification
	errs []error
}

// NewWebhook starts a receiver; t.Cleanup stops it.
func NewWebhook(t testing.TB) *Webhook {
	t.Helper()
	w := &Webhook{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var body struct {
			Status   string          `json:"status"`
			GroupKey string          `json:"groupKey"`
			Alerts   []NotifiedAlert `json:"alerts"`
		}
		err := json.NewDecoder(r.Body).Decode(&body)
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			w.errs = append(w.errs, fmt.Errorf("decode a notification: %w", err))
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.got = append(w.got, Notification{Status: body.Status, GroupKey: body.GroupKey, Alerts: body.Alerts, At: time.Now()})
	}))
	t.Cleanup(srv.Close)
	w.URL = srv.URL
	return w
}

// Notifications returns what was received so far, oldest first, and any
// notification that could not be read.
func (w *Webhook) Notifications() ([]Notification, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	if len(w.errs) > 0 {
		err = w.errs[0]
	}
	return append([]Notification(nil), w.got...), err
}

// Count returns how many notifications of each status ("firing",
// "resolved") were received.
func (w *Webhook) Count() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := map[string]int{}
	for _, g := range w.got {
		n[g.Status]++
	}
	return n
}

// Route is the timing of Alertmanager's one route, grouped by alertname.
type Route struct {
	GroupWait, GroupInterval, RepeatInterval time.Duration
}

// ConfigFile writes an Alertmanager configuration that sends every alert
// to this receiver, resolved ones included, and returns its path. Keep
// RepeatInterval longer than the test, so that a second page can only
// come from Alertmanager seeing the alert anew.
func (w *Webhook) ConfigFile(t testing.TB, r Route) string {
	t.Helper()
	cfg := fmt.Sprintf(`route:
  receiver: webhook
  group_by: [alertname]
  group_wait: %s
  group_interval: %s
  repeat_interval: %s
receivers:
  - name: webhook
    webhook_configs:
      - url: %q
        send_resolved: true
`, model.Duration(r.GroupWait), model.Duration(r.GroupInterval), model.Duration(r.RepeatInterval), w.URL+"/notify")
	path := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatalf("write Alertmanager config: %v", err)
	}
	return path
}
