package scrape

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/engine"
)

// FuzzParseExposition reads body, then next after gapSeconds, then body
// again 15s later, as three successful scrapes of one target with the
// default staleness bound: nothing may panic, and every observation must be
// well formed (a counter's is failed exactly when its code is 5xx).
func FuzzParseExposition(f *testing.F) {
	f.Add([]byte(typeLine+histText("req_seconds", `verb="GET"`, bounds4, []float64{1, 2, 3, 4})),
		[]byte(typeLine+histText("req_seconds", `verb="GET"`, bounds4, []float64{2, 3, 5, 9})), false, uint16(15))
	f.Add([]byte("x_bucket{le=\"1\"} 1\nx_bucket{le=\"+Inf\"} 2\nx_count 2\n"), []byte("x_bucket{le=\"1\"} 3\nx_bucket{le=\"+Inf\"} 2\nx_count 2\n"), false, uint16(60))
	f.Add([]byte("# TYPE r histogram\nr_bucket{le=\"1.0\"} 1 # {trace_id=\"0af7651916cd43dd8448eb211c80319c\"} 0.5 1.0\nr_bucket{le=\"+Inf\"} 2\nr_count 2\n# EOF\n"),
		[]byte("# TYPE r histogram\nr_bucket{le=\"1.0\"} 4 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.7 2.0\nr_bucket{le=\"+Inf\"} 5\nr_count 5\n# EOF\n"), true, uint16(15))
	f.Add([]byte("# TYPE r histogram\nr_bucket{le=\"NaN\"} 1\nr_bucket{le=\"1\"} -1\nr_bucket{le=\"1\"} 3\n# EOF\n"), []byte("# EOF\n"), true, uint16(15))
	f.Add([]byte(reqTotal(map[string]float64{"200": 10, "503": 1})), []byte(reqTotal(map[string]float64{"200": 25, "503": 4})), false, uint16(400))
	f.Add([]byte("# TYPE a counter\na_total{code=\"500\"} 1.5\na_created{code=\"500\"} 1\n# TYPE g_total gauge\ng_total{code=\"500\"} 1\n# EOF\n"),
		[]byte("# TYPE a counter\na_total{code=\"500\"} 9.25 # {trace_id=\"00f067aa0ba902b7\"} 1\n# TYPE g_total gauge\ng_total{code=\"500\"} 7\n# EOF\n"), true, uint16(15))
	f.Add([]byte("c_total{code=\"5\",grpc_code=\"x\"} 1\nc_total{code=\"5\",grpc_code=\"x\"} 2\nd_total{grpc_code=\"OK\"} 1\n"),
		[]byte("c_total{code=\"5\",grpc_code=\"x\"} 1e300\nd_total{grpc_code=\"OK\"} 9\n"), false, uint16(15))
	f.Fuzz(func(t *testing.T, body, next []byte, openMetrics bool, gapSeconds uint16) {
		ct := "text/plain; version=0.0.4"
		if openMetrics {
			ct = "application/openmetrics-text; version=1.0.0"
		}
		h := newHistograms(staleAfter)
		tl := newTargetLabels(map[string]string{"job": "j", "instance": "i:1"})
		obs := observerFunc(func(o *engine.Observation) {
			if o.Count == 0 || o.Labels == nil || o.Source != engine.SourceMetrics {
				t.Fatalf("bad observation %+v", o)
			}
			if _, ok := o.Labels.Get("__name__"); !ok {
				t.Fatalf("no __name__: %+v", o)
			}
			if o.Bounds == nil { // a counter's
				code, _ := o.Labels.Get("code")
				if !math.IsInf(o.UpperBound, 1) || code == "" || o.Failed != strings.HasPrefix(code, "5") {
					t.Fatalf("bad counter observation %+v (code %q)", o, code)
				}
			} else if o.Failed {
				t.Fatalf("a histogram observation is failed: %+v", o)
			}
		})
		t0 := time.Unix(1_700_000_000, 0)
		for _, sc := range []struct {
			body []byte
			at   time.Time
		}{{body, t0}, {next, t0.Add(time.Duration(gapSeconds) * time.Second)}, {body, t0.Add(time.Duration(gapSeconds)*time.Second + 15*time.Second)}} {
			if _, err := h.parse(sc.body, ct); err != nil {
				continue // discarded whole; the history is kept
			}
			h.apply(sc.at, tl, obs)
		}
	})
}
