package scrape

import (
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/engine"
)

func FuzzParseExposition(f *testing.F) {
	f.Add([]byte(typeLine+histText("req_seconds", `verb="GET"`, bounds4, []float64{1, 2, 3, 4})), false)
	f.Add([]byte("x_bucket{le=\"1\"} 1\nx_bucket{le=\"+Inf\"} 2\nx_count 2\n"), false)
	f.Add([]byte("# TYPE r histogram\nr_bucket{le=\"1.0\"} 1 # {trace_id=\"0af7651916cd43dd8448eb211c80319c\"} 0.5 1.0\nr_bucket{le=\"+Inf\"} 2\nr_count 2\n# EOF\n"), true)
	f.Add([]byte("# TYPE r histogram\nr_bucket{le=\"NaN\"} 1\nr_bucket{le=\"1\"} -1\nr_bucket{le=\"1\"} 3\n# EOF\n"), true)
	f.Fuzz(func(t *testing.T, body []byte, openMetrics bool) {
		ct := "text/plain; version=0.0.4"
		if openMetrics {
			ct = "application/openmetrics-text; version=1.0.0"
		}
		h := newHistograms()
		tl := newTargetLabels(map[string]string{"job": "j", "instance": "i:1"})
		obs := observerFunc(func(o *engine.Observation) {
			if o.Count == 0 || o.Labels == nil {
				t.Fatalf("bad observation %+v", o)
			}
			o.Labels.Get("__name__")
		})
		// Twice: a baseline, then deltas against itself.
		for i := 0; i < 2; i++ {
			if _, err := h.parse(body, ct); err != nil {
				return
			}
			h.apply(time.Unix(int64(i), 0), tl, obs)
		}
	})
}
