package engine

import (
	"strings"
	"testing"
	"time"
)

// TestSevenDayPeriodPagesAtItsShare: with period 7d the default page (2% of
// the budget within an hour) fires at a burn rate of 3.36, not 30 days'
// 14.4: an hour at 5× spends 3% of a week's budget and must page; an hour
// at 3× (1.8%) must not.
func TestSevenDayPeriodPagesAtItsShare(t *testing.T) {
	weekly := strings.Replace(budgetRule, "period: 28d", "period: 7d", 1)
	cases := []struct {
		name   string
		bad    float64 // share of bad requests; the budget is 1%
		firing []string
	}{
		{"5x for an hour pages", 0.05, []string{"page/1h/5m"}},
		{"3x for an hour does not", 0.03, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, clock, _ := newTestEngine(t, weekly, Options{})
			sloTraffic(e, clock, 0, 24*time.Hour, 100, 0)
			evalEvery(e, clock, 0, 24*time.Hour)
			sloTraffic(e, clock, 24*time.Hour, 25*time.Hour, 100, c.bad)
			got := evalEvery(e, clock, 24*time.Hour, 25*time.Hour)
			if strings.Join(got, ",") != strings.Join(c.firing, ",") {
				t.Fatalf("firing %v, want %v", got, c.firing)
			}
			if c.firing == nil {
				return
			}
			for _, a := range e.Alerts() {
				if a.Labels["severity"] == "page" && a.Labels["long_window"] == "1h" {
					if got := a.Annotations["threshold"]; got != "3.36x" {
						t.Errorf("threshold annotation %q, want 3.36x", got)
					}
				}
			}
		})
	}
}
