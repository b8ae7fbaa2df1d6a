package otlp

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

const benchSpans = 500

// BenchmarkOTLPHTTP is the whole HTTP path: a 500-span apiserver-shaped
// protobuf export POSTed to the handler, decoded, converted and observed
// by an observer that reads a few labels of every span.
func BenchmarkOTLPHTTP(b *testing.B) {
	for _, enc := range []struct {
		name string
		json bool
	}{{"protobuf", false}, {"json", true}} {
		b.Run(enc.name, func(b *testing.B) {
			body := marshalTraces(b, apiserverTraces(rand.New(rand.NewPCG(1, 2)), benchSpans), enc.json)
			ct := protobufContentType
			if enc.json {
				ct = jsonContentType
			}
			o := &countingObserver{names: benchLabelNames}
			r, _ := newTestReceiver(b, Options{Observer: o})
			postLoop(b, r.HTTPHandler(), body, ct)
			if o.n.Load() != int64(b.N*benchSpans) {
				b.Fatalf("observed %d spans, want %d", o.n.Load(), b.N*benchSpans)
			}
		})
	}
}

// BenchmarkUnmarshalProto is the floor under BenchmarkOTLPHTTP: pdata's
// decoding of the same payload, and nothing else.
func BenchmarkUnmarshalProto(b *testing.B) {
	body := marshalTraces(b, apiserverTraces(rand.New(rand.NewPCG(1, 2)), benchSpans), false)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSpans), "ns/span")
}

// BenchmarkConvert is conversion alone, from decoded spans to observations
// whose labels the observer reads.
func BenchmarkConvert(b *testing.B) {
	td := apiserverTraces(rand.New(rand.NewPCG(1, 2)), benchSpans)
	o := &countingObserver{names: benchLabelNames}
	c := newPDataConverter(DefaultLimits().MaxAttributeValueBytes, nil)
	b.ReportAllocs()
	for b.Loop() {
		c.convert(td, o)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSpans), "ns/span")
}

// postLoop POSTs body to h b.N times and reports the time per span.
func postLoop(b *testing.B, h http.Handler, body []byte, contentType string) {
	b.Helper()
	rd := bytes.NewReader(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		req := httptest.NewRequest(http.MethodPost, TracesPath, rd)
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSpans), "ns/span")
}
