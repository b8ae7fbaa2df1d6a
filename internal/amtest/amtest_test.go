package amtest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/testkit"
)

func TestStart(t *testing.T) {
	for _, prefix := range []string{"", "/alertmanager"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			am := StartWithOptions(t, Options{RoutePrefix: prefix})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			alerts, err := am.Alerts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(alerts) != 0 {
				t.Errorf("fresh Alertmanager has %d alerts, want 0", len(alerts))
			}
			am.Stop()
			am.Stop() // idempotent
			if resp, err := http.Get(am.URL + "/-/ready"); err == nil {
				_ = resp.Body.Close()
				t.Errorf("Alertmanager still answers after Stop")
			}
		})
	}
}

// TestCluster: two members gossip, and an alert posted to one notifies
// the webhook once.
func TestCluster(t *testing.T) {
	wh := NewWebhook(t)
	cfg := wh.ConfigFile(t, Route{GroupWait: 100 * time.Millisecond, GroupInterval: time.Second, RepeatInterval: time.Hour})
	members := StartCluster(t, 2, Options{ConfigFile: cfg})
	for _, m := range members {
		if m.ClusterAddress == "" {
			t.Fatalf("%s does not gossip", m.URL)
		}
	}
	body := `[{"labels":{"alertname":"ClusterTest"}}]`
	for _, m := range members {
		resp, err := http.Post(m.URL+"/api/v2/alerts", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post to %s: %s", m.URL, resp.Status)
		}
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		if n := wh.Count()["firing"]; n != 1 {
			return fmt.Errorf("%d firing notifications, want 1", n)
		}
		return nil
	})
	// The second member waits PeerTimeout before it would send: past it,
	// a duplicate would have arrived.
	time.Sleep(PeerTimeout + 3*time.Second)
	got, err := wh.Notifications()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1 (the cluster deduplicates): %+v", len(got), got)
	}
}
