package amtest

import (
	"context"
	"net/http"
	"testing"
	"time"
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
