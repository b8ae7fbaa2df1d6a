package engine

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSourceLastSeenMetric: each tracked service.name has its last-seen
// time on /metrics, so Prometheus can alert on a silent component; it
// stops moving when the source goes silent.
func TestSourceLastSeenMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newNoDataRun(t, namespacesRule, Options{Registerer: reg, NoDataSources: NoDataSourceOptions{Timeout: 5 * time.Minute}})
	etcd := mapLabels{"service.name": "etcd", "span.kind": "server"}
	ms := func(time.Duration) time.Duration { return time.Millisecond }
	lastSeen := func() map[string]float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "sentinel_source_last_seen_timestamp_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	r.until(10*time.Minute, ms, etcd)
	r.until(20*time.Minute, none, etcd)
	got := lastSeen()
	// Stamped with the evaluation before the spans: within an interval of 10m.
	want := float64(t0.Add(10 * time.Minute).Unix())
	if len(got) != 1 || got["etcd"] < want-15 || got["etcd"] > want {
		t.Errorf("last seen %v, want etcd at %v (to within 15s before)", got, want)
	}
}
