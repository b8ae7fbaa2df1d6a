package scrape

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/kube-sentinel/sentinel/engine"
)

// apiserverMetricsBody is an apiserver-sized /metrics: histogram series
// of apiserver_request_duration_seconds (23 buckets, +Inf, _sum, _count:
// 26 samples each) over verbs × resources, until it has series samples,
// with grow added to every bucket so that two bodies differ.
func apiserverMetricsBody(series int, grow int, openMetrics bool) []byte {
	var b bytes.Buffer
	b.WriteString("# HELP apiserver_request_duration_seconds [STABLE] Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n")
	b.WriteString("# TYPE apiserver_request_duration_seconds histogram\n")
	verbs := []string{"GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "DELETE", "APPLY"}
	n := 0
	for r := 0; n < series; r++ {
		for _, verb := range verbs {
			if n >= series {
				break
			}
			labels := fmt.Sprintf(`component="apiserver",dry_run="",group="group%d.example.io",resource="resource%d",scope="namespace",subresource="",verb=%q,version="v1"`, r%40, r, verb)
			var cum int
			for j, le := range apiserverBuckets {
				cum += 1000 + j*7 + grow*(j%4)
				les := strconv.FormatFloat(le, 'g', -1, 64)
				if openMetrics && !bytes.Contains([]byte(les), []byte(".")) {
					les += ".0"
				}
				fmt.Fprintf(&b, "apiserver_request_duration_seconds_bucket{%s,le=%q} %d\n", labels, les, cum)
			}
			cum += grow
			fmt.Fprintf(&b, "apiserver_request_duration_seconds_bucket{%s,le=\"+Inf\"} %d\n", labels, cum)
			fmt.Fprintf(&b, "apiserver_request_duration_seconds_sum{%s} %d.5\n", labels, cum*3)
			fmt.Fprintf(&b, "apiserver_request_duration_seconds_count{%s} %d\n", labels, cum)
			n += 26
		}
	}
	writeCounters(&b, grow, openMetrics)
	if openMetrics {
		b.WriteString("# EOF\n")
	}
	return b.Bytes()
}

// Counter series appended to the body, as a real apiserver /metrics has
// them beside its histograms: apiserver_request_total with a code label
// (what an availability SLO reads) and counters without one.
const (
	benchCodeCounters  = 2500
	benchOtherCounters = 1500
)

// writeCounters appends benchCodeCounters series of apiserver_request_total
// (verbs × resources × codes) and benchOtherCounters of
// apiserver_watch_events_total, each grown by grow.
func writeCounters(b *bytes.Buffer, grow int, openMetrics bool) {
	family := func(name string) string {
		if openMetrics {
			return strings.TrimSuffix(name, "_total")
		}
		return name
	}
	fmt.Fprintf(b, "# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n")
	fmt.Fprintf(b, "# TYPE %s counter\n", family("apiserver_request_total"))
	verbs := []string{"GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "DELETE", "APPLY"}
	codes := []string{"200", "201", "404", "409", "500"}
	for n := 0; n < benchCodeCounters; n++ {
		verb, code, r := verbs[n%len(verbs)], codes[(n/len(verbs))%len(codes)], n/(len(verbs)*len(codes))
		fmt.Fprintf(b, "apiserver_request_total{code=%q,component=\"apiserver\",dry_run=\"\",group=\"group%d.example.io\",resource=\"resource%d\",scope=\"namespace\",subresource=\"\",verb=%q,version=\"v1\"} %d\n",
			code, r%40, r, verb, 100000+n+grow*(n%3))
	}
	fmt.Fprintf(b, "# HELP apiserver_watch_events_total [ALPHA] Number of events sent in watch clients\n")
	fmt.Fprintf(b, "# TYPE %s counter\n", family("apiserver_watch_events_total"))
	for n := 0; n < benchOtherCounters; n++ {
		fmt.Fprintf(b, "apiserver_watch_events_total{group=\"group%d.example.io\",kind=\"Kind%d\",version=\"v1\"} %d\n", n%40, n, 5000+n+grow*(n%2))
	}
}

const benchSeries = 50_000

// BenchmarkParseAPIServerMetrics is the whole per-scrape path: parse, and
// compare with the previous scrape, emitting the bucket increases.
func BenchmarkParseAPIServerMetrics(b *testing.B) {
	bodies := [2][]byte{apiserverMetricsBody(benchSeries, 0, false), apiserverMetricsBody(benchSeries, 1, false)}
	h := newHistograms(0)
	tl := newTargetLabels(map[string]string{"job": "apiserver", "instance": "10.0.0.1:6443"})
	var n int
	obs := observerFunc(func(*engine.Observation) { n++ })
	// Reach the steady state: a baseline, then deltas.
	for i := 0; i < 2; i++ {
		if _, err := h.parse(bodies[i], "text/plain; version=0.0.4"); err != nil {
			b.Fatal(err)
		}
		h.apply(time.Unix(int64(i), 0), tl, obs)
	}
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate bodies: every other one is a reset, the others emit.
		if _, err := h.parse(bodies[i%2], "text/plain; version=0.0.4"); err != nil {
			b.Fatal(err)
		}
		h.apply(time.Unix(int64(i+2), 0), tl, obs)
	}
	b.ReportMetric(float64(len(bodies[0]))/1e6, "body_MB")
}

// BenchmarkTextparseOnly is Prometheus's parser alone on the same body:
// every entry, and the labels of every series, as a Prometheus scrape does.
func BenchmarkTextparseOnly(b *testing.B) {
	body := apiserverMetricsBody(benchSeries, 0, false)
	st := labels.NewSymbolTable()
	var lset labels.Labels
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := textparse.New(body, "text/plain; version=0.0.4", st, textparse.ParserOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			e, err := p.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if e == textparse.EntrySeries {
				p.Series()
				p.Labels(&lset)
			}
		}
	}
}

// BenchmarkParseOpenMetrics is the whole path on the OpenMetrics rendering.
func BenchmarkParseOpenMetrics(b *testing.B) {
	body := apiserverMetricsBody(benchSeries, 0, true)
	h := newHistograms(0)
	tl := newTargetLabels(map[string]string{"job": "apiserver", "instance": "10.0.0.1:6443"})
	obs := observerFunc(func(*engine.Observation) {})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := h.parse(body, "application/openmetrics-text; version=1.0.0"); err != nil {
			b.Fatal(err)
		}
		h.apply(time.Unix(int64(i), 0), tl, obs)
	}
}

// BenchmarkExpfmtOpenMetrics is prometheus/common's OpenMetrics decoder
// (v0.73, the alternative to textparse) on a 1/10 of the body: it reads
// exemplars too, but through an ABNF parse of every line.
func BenchmarkExpfmtOpenMetrics(b *testing.B) {
	body := apiserverMetricsBody(benchSeries/10, 0, true)
	format, err := expfmt.NewOpenMetricsFormat(expfmt.OpenMetricsVersion_1_0_0)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := expfmt.NewDecoder(bytes.NewReader(body), format)
		for {
			var mf dto.MetricFamily
			if err := d.Decode(&mf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkExpfmtText is prometheus/common's text decoder on the full body.
func BenchmarkExpfmtText(b *testing.B) {
	body := apiserverMetricsBody(benchSeries, 0, false)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := expfmt.NewDecoder(bytes.NewReader(body), expfmt.NewFormat(expfmt.TypeTextPlain))
		for {
			var mf dto.MetricFamily
			if err := d.Decode(&mf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
