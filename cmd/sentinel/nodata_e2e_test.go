package main

import (
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"

	"github.com/kube-sentinel/sentinel/internal/amtest"
	"github.com/kube-sentinel/sentinel/internal/testkit"
)

// TestStalledInputDoesNotResolve is issue 9's false resolve, with real
// parts: an alert fires at a real Alertmanager, then the spans stop. The
// alert must stay active there (never an endsAt in the past), gain the
// no_data annotation, and SentinelNoData must arrive for the rule.
func TestStalledInputDoesNotResolve(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	am := amtest.Start(t)
	d := startSentinel(t, e2eRules, am.URL)
	s := newSpanSender(t, d)
	s.phase(t, 5*time.Second, 2*time.Second) // slow namespaces GETs
	testkit.WaitFor(t, "the alert at Alertmanager", 30*time.Second, func() (bool, bool) {
		for _, a := range amAlerts(t, am) {
			if a.Labels["alertname"] == "NamespacesGETLatency" {
				return true, true
			}
		}
		return false, false
	})

	// The spans stop here. The 8s window empties; before, an empty window
	// was no breach and Alertmanager got a resolve about 8s later. Watch for
	// four windows and then some: every look must find the alert active
	// with endsAt ahead, until it is annotated no_data and SentinelNoData
	// has arrived.
	stopped := time.Now()
	var sawNoData, sawBlind bool
	testkit.WaitFor(t, "no_data and SentinelNoData at Alertmanager", 90*time.Second, func() (bool, bool) {
		var firing bool
		now := strfmt.DateTime(time.Now())
		for _, a := range amAlerts(t, am) {
			switch a.Labels["alertname"] {
			case "NamespacesGETLatency":
				firing = true
				if a.EndsAt == nil || !time.Time(*a.EndsAt).After(time.Time(now)) {
					t.Fatalf("Alertmanager has endsAt %v, not after now %v: a resolve", a.EndsAt, now)
				}
				if strings.HasPrefix(a.Annotations["no_data"], "since ") {
					sawNoData = true
				}
			case "SentinelNoData":
				if a.Labels["rule"] == "NamespacesGETLatency" && a.Labels["rule_group"] == "e2e" &&
					a.Labels["severity"] == "ticket" && a.Labels["cluster"] == "e2e" {
					sawBlind = true
				}
			}
		}
		if !firing {
			t.Fatalf("%s after the spans stopped, the alert is no longer active at Alertmanager: resolved", time.Since(stopped).Round(time.Millisecond))
		}
		return true, sawNoData && sawBlind && time.Since(stopped) > 4*8*time.Second
	})

	// The API says why.
	for _, r := range fetchRules(t, "http://"+d.webLn.Addr().String()) {
		if r.Name != "NamespacesGETLatency" {
			continue
		}
		if r.State != "firing" || !r.NoData || len(r.Series) != 1 || !r.Series[0].NoData || r.Series[0].NoDataSince == "" {
			t.Errorf("/api/v1/rules: %+v", r)
		}
	}
}
