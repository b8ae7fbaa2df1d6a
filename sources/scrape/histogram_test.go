package scrape

import (
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/engine"
)

// recorder is an engine.Observer that keeps copies of what it is given.
type recorder struct {
	mu  sync.Mutex
	obs []recObs
}

type recObs struct {
	Name, Labels  string // __name__, and "k=v,..." of the labels asked for
	Job, Instance string
	LE            float64
	Count         uint64
	Duration      time.Duration
	TraceID       string
	SpanID        string
	End           time.Time
	Failed        bool
}

var recordedLabels = []string{"verb", "resource", "code"}

func (r *recorder) Observe(o *engine.Observation) {
	if o.Source != engine.SourceMetrics {
		panic("not a metrics observation")
	}
	name, _ := o.Labels.Get("__name__")
	job, _ := o.Labels.Get("job")
	inst, _ := o.Labels.Get("instance")
	if _, ok := o.Labels.Get("le"); ok {
		panic("le must not be a label of an observation")
	}
	var ls []string
	for _, l := range recordedLabels {
		if v, ok := o.Labels.Get(l); ok {
			ls = append(ls, l+"="+v)
		}
	}
	ro := recObs{Name: name, Labels: strings.Join(ls, ","), Job: job, Instance: inst, LE: o.UpperBound,
		Count: o.Count, Duration: o.Duration, End: o.End, Failed: o.Failed}
	if o.TraceID != ([16]byte{}) {
		ro.TraceID = hex.EncodeToString(o.TraceID[:])
	}
	if o.SpanID != ([8]byte{}) {
		ro.SpanID = hex.EncodeToString(o.SpanID[:])
	}
	r.mu.Lock()
	r.obs = append(r.obs, ro)
	r.mu.Unlock()
}

func (r *recorder) take() []recObs {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.obs
	r.obs = nil
	return out
}

// histText renders a classic histogram series in the text format.
func histText(name, labels string, bounds []string, cum []float64) string {
	var b strings.Builder
	sep := ""
	if labels != "" {
		sep = ","
	}
	for i, le := range bounds {
		fmt.Fprintf(&b, "%s_bucket{%s%sle=%q} %g\n", name, labels, sep, le, cum[i])
	}
	fmt.Fprintf(&b, "%s_sum{%s} 1\n%s_count{%s} %g\n", name, labels, name, labels, cum[len(cum)-1])
	return b.String()
}

const typeLine = "# TYPE req_seconds histogram\n"

var bounds4 = []string{"0.1", "0.5", "1", "+Inf"}

// want is an expected observation: bucket, count, and, when not zero, the duration.
type want struct {
	le     float64
	count  uint64
	dur    time.Duration
	labels string
	trace  string
}

func TestHistogramDeltas(t *testing.T) {
	inf := math.Inf(1)
	s := func(cum ...float64) string { return typeLine + histText("req_seconds", `verb="GET"`, bounds4, cum) }
	two := func(a, b []float64) string {
		return typeLine + histText("req_seconds", `verb="GET"`, bounds4, a) + histText("req_seconds", `verb="LIST"`, bounds4, b)
	}
	tests := []struct {
		name    string
		scrapes []string
		want    [][]want // per scrape
	}{
		{
			name:    "first scrape is a baseline, then per-bucket increases",
			scrapes: []string{s(10, 20, 25, 30), s(15, 27, 33, 40), s(15, 27, 33, 40)},
			// Δcum 5,7,8,10 → per bucket 5,2,1,2; +Inf is observed at the last finite bound.
			want: [][]want{nil, {{0.1, 5, 100 * time.Millisecond, "verb=GET", ""}, {0.5, 2, 500 * time.Millisecond, "verb=GET", ""},
				{1, 1, time.Second, "verb=GET", ""}, {inf, 2, time.Second, "verb=GET", ""}}, nil},
		},
		{
			name:    "counter reset is a new baseline, not a burst",
			scrapes: []string{s(10, 20, 25, 30), s(1, 1, 2, 3), s(2, 3, 4, 6)},
			want:    [][]want{nil, nil, {{0.1, 1, 0, "verb=GET", ""}, {0.5, 1, 0, "verb=GET", ""}, {inf, 1, 0, "verb=GET", ""}}},
		},
		{
			name: "a reset seen only in _count is a reset",
			scrapes: []string{s(10, 20, 25, 30),
				typeLine + strings.Replace(histText("req_seconds", `verb="GET"`, bounds4, []float64{11, 21, 26, 31}), "_count{verb=\"GET\"} 31", "_count{verb=\"GET\"} 2", 1)},
			want: [][]want{nil, nil},
		},
		{
			name:    "a new series starts with a baseline",
			scrapes: []string{s(1, 1, 1, 1), two([]float64{2, 2, 2, 2}, []float64{100, 200, 300, 400}), two([]float64{2, 2, 2, 2}, []float64{101, 201, 301, 401})},
			want:    [][]want{nil, {{0.1, 1, 0, "verb=GET", ""}}, {{0.1, 1, 0, "verb=LIST", ""}}},
		},
		{
			name: "a series that vanishes is forgotten; when it returns it is a baseline",
			scrapes: []string{two([]float64{1, 1, 1, 1}, []float64{1, 1, 1, 1}), s(1, 1, 1, 1),
				two([]float64{1, 1, 1, 1}, []float64{50, 60, 70, 80}), two([]float64{1, 1, 1, 1}, []float64{50, 60, 70, 81})},
			want: [][]want{nil, nil, nil, {{inf, 1, 0, "verb=LIST", ""}}},
		},
		{
			name:    "only +Inf grows",
			scrapes: []string{s(1, 2, 3, 4), s(1, 2, 3, 9)},
			want:    [][]want{nil, {{inf, 5, time.Second, "verb=GET", ""}}},
		},
		{
			name: "non-monotonic increases are made monotonic as histogram_quantile does",
			// Δcum 5, 4, 6, 6 → 5, 0, 1, 0
			scrapes: []string{s(0, 0, 0, 0), s(5, 4, 6, 6)},
			want:    [][]want{nil, {{0.1, 5, 0, "verb=GET", ""}, {1, 1, 0, "verb=GET", ""}}},
		},
		{
			name:    "a changed bucket layout is a new baseline",
			scrapes: []string{s(1, 2, 3, 4), typeLine + histText("req_seconds", `verb="GET"`, []string{"0.1", "1", "+Inf"}, []float64{9, 9, 9}), typeLine + histText("req_seconds", `verb="GET"`, []string{"0.1", "1", "+Inf"}, []float64{9, 10, 10})},
			want:    [][]want{nil, nil, {{1, 1, 0, "verb=GET", ""}}},
		},
		{
			name: "buckets out of order in the exposition",
			scrapes: []string{typeLine + "req_seconds_bucket{le=\"+Inf\"} 3\nreq_seconds_bucket{le=\"1\"} 2\nreq_seconds_bucket{le=\"0.5\"} 1\n",
				typeLine + "req_seconds_bucket{le=\"+Inf\"} 6\nreq_seconds_bucket{le=\"1\"} 4\nreq_seconds_bucket{le=\"0.5\"} 2\n"},
			want: [][]want{nil, {{0.5, 1, 0, "", ""}, {1, 1, 0, "", ""}, {inf, 1, 0, "", ""}}},
		},
		{
			name: "untyped _bucket series with le count; summaries and counters do not",
			scrapes: []string{
				"x_bucket{le=\"1\"} 1\nx_bucket{le=\"+Inf\"} 1\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_count 1\n# TYPE c_bucket counter\nc_bucket{le=\"1\"} 1\n",
				"x_bucket{le=\"1\"} 2\nx_bucket{le=\"+Inf\"} 2\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_count 5\n# TYPE c_bucket counter\nc_bucket{le=\"1\"} 9\n",
			},
			want: [][]want{nil, {{1, 1, time.Second, "", ""}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistograms(0)
			rec := &recorder{}
			tl := newTargetLabels(map[string]string{"job": "j", "instance": "i:1"})
			start := time.Unix(1000, 0)
			for i, body := range tc.scrapes {
				if _, err := h.parse([]byte(body), "text/plain; version=0.0.4"); err != nil {
					t.Fatalf("scrape %d: %v", i, err)
				}
				now := start.Add(time.Duration(i) * 15 * time.Second)
				h.apply(now, tl, rec)
				checkObs(t, i, rec.take(), tc.want[i], now)
			}
		})
	}
}

func checkObs(t *testing.T, scrape int, got []recObs, want []want, now time.Time) {
	t.Helper()
	slices.SortFunc(got, func(a, b recObs) int {
		if a.Labels != b.Labels {
			return strings.Compare(a.Labels, b.Labels)
		}
		switch {
		case a.LE < b.LE:
			return -1
		case a.LE > b.LE:
			return 1
		}
		return 0
	})
	if len(got) != len(want) {
		t.Fatalf("scrape %d: got %d observations %+v, want %d %+v", scrape, len(got), got, len(want), want)
	}
	for i, w := range want {
		g := got[i]
		if g.LE != w.le || g.Count != w.count || g.Labels != w.labels || g.TraceID != w.trace || (w.dur != 0 && g.Duration != w.dur) {
			t.Errorf("scrape %d observation %d: got %+v, want %+v", scrape, i, g, w)
		}
		if g.Name != "req_seconds" && g.Name != "x" && g.Name != "apiserver_request_duration_seconds" {
			t.Errorf("scrape %d: __name__ %q is not the base name", scrape, g.Name)
		}
		if g.Job != "j" || g.Instance != "i:1" || !g.End.Equal(now) {
			t.Errorf("scrape %d: target labels or time wrong: %+v", scrape, g)
		}
	}
}

func TestHistogramOpenMetricsExemplars(t *testing.T) {
	const ct = "application/openmetrics-text; version=1.0.0; charset=utf-8"
	om := func(b1, b2, inf float64, ex1, ex2 string) string {
		return "# TYPE req_seconds histogram\n" +
			fmt.Sprintf("req_seconds_bucket{verb=\"GET\",le=\"0.5\"} %g%s\n", b1, ex1) +
			fmt.Sprintf("req_seconds_bucket{verb=\"GET\",le=\"1.0\"} %g%s\n", b2, ex2) +
			fmt.Sprintf("req_seconds_bucket{verb=\"GET\",le=\"+Inf\"} %g\n", inf) +
			fmt.Sprintf("req_seconds_count{verb=\"GET\"} %g\nreq_seconds_sum{verb=\"GET\"} 3.0\n", inf) +
			"# EOF\n"
	}
	exA := ` # {trace_id="0af7651916cd43dd8448eb211c80319c",span_id="b7ad6b7169203331"} 0.3 1700000000.000`
	exB := ` # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736",span_id="00f067aa0ba902b7"} 0.87 1700000015.000`
	exShort := ` # {trace_id="00f067aa0ba902b7"} 0.9 1700000030.000`
	scrapes := []string{
		om(1, 2, 2, exA, ""),
		om(2, 4, 4, exA, exB),    // 0.5 grew with the old exemplar; 1.0 grew with a new one
		om(2, 5, 5, exA, exB),    // 1.0 grew, its exemplar is the one seen before
		om(2, 6, 6, "", exShort), // a 64-bit trace ID is right-aligned
	}
	wants := [][]want{
		nil,
		{{0.5, 1, 500 * time.Millisecond, "verb=GET", ""}, {1, 1, 870 * time.Millisecond, "verb=GET", "4bf92f3577b34da6a3ce929d0e0e4736"}},
		{{1, 1, time.Second, "verb=GET", ""}},
		{{1, 1, 900 * time.Millisecond, "verb=GET", "000000000000000000f067aa0ba902b7"}},
	}
	h := newHistograms(0)
	rec := &recorder{}
	tl := newTargetLabels(map[string]string{"job": "j", "instance": "i:1"})
	for i, body := range scrapes {
		if _, err := h.parse([]byte(body), ct); err != nil {
			t.Fatalf("scrape %d: %v", i, err)
		}
		now := time.Unix(2000+int64(i)*15, 0)
		h.apply(now, tl, rec)
		got := rec.take()
		checkObs(t, i, got, wants[i], now)
		if i == 1 {
			for _, g := range got {
				if g.TraceID != "" && g.SpanID != "00f067aa0ba902b7" {
					t.Errorf("span ID %q", g.SpanID)
				}
			}
		}
	}
}

func TestLabelView(t *testing.T) {
	h := newHistograms(0)
	var got map[string]string
	obs := observerFunc(func(o *engine.Observation) {
		got = map[string]string{}
		for _, n := range []string{"__name__", "job", "instance", "node", "verb", "resource", "le", "missing"} {
			if v, ok := o.Labels.Get(n); ok {
				got[n] = v
			}
		}
	})
	tl := newTargetLabels(map[string]string{"job": "kubelet", "instance": "10.0.0.1:10250", "node": "n1"})
	for i, v := range []float64{1, 2} {
		body := "# TYPE apiserver_request_duration_seconds histogram\n" +
			fmt.Sprintf("apiserver_request_duration_seconds_bucket{verb=\"LIST\",resource=\"namespaces\",job=\"spoofed\",le=\"+Inf\"} %g\n", v)
		if _, err := h.parse([]byte(body), "text/plain"); err != nil {
			t.Fatal(err)
		}
		h.apply(time.Unix(int64(i), 0), tl, obs)
	}
	want := map[string]string{"__name__": "apiserver_request_duration_seconds", "job": "kubelet", "instance": "10.0.0.1:10250",
		"node": "n1", "verb": "LIST", "resource": "namespaces"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("labels %v, want %v", got, want)
	}
}

type observerFunc func(*engine.Observation)

func (f observerFunc) Observe(o *engine.Observation) { f(o) }

func TestParseErrors(t *testing.T) {
	for _, body := range []string{
		"req_seconds_bucket{le=\"1\" 3\n",
		"req_seconds_bucket{le=\"1\"} three\n",
		"# TYPE x histogram\nx_bucket{le=\"1\"} 1\n", // OpenMetrics without # EOF
	} {
		h := newHistograms(0)
		ct := "text/plain"
		if strings.HasPrefix(body, "# TYPE") {
			ct = "application/openmetrics-text; version=1.0.0"
		}
		if _, err := h.parse([]byte(body), ct); err == nil {
			t.Errorf("no error for %q", body)
		}
	}
}
