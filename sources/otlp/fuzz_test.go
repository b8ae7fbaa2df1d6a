package otlp

import (
	"math/rand/v2"
	"net/http"
	"testing"
)

// FuzzHTTPDecode feeds arbitrary bodies to the HTTP handler in both OTLP
// encodings, with small limits: it must never panic, must answer 200, 400
// or 413, and must never observe more spans than a request may hold.
func FuzzHTTPDecode(f *testing.F) {
	td := apiserverTraces(rand.New(rand.NewPCG(23, 24)), 4)
	pb, js := marshalTraces(f, td, false), marshalTraces(f, td, true)
	f.Add(pb, false)
	f.Add(js, true)
	f.Add(pb[:len(pb)/3], false)
	f.Add(js[:len(js)/3], true)
	f.Add([]byte{}, false)
	f.Add([]byte("{}"), true)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"9","endTimeUnixNano":"1"}]}]}]}`), true)
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, false)
	f.Add(emptyAttributeSpans(4<<10, 200), false)
	f.Add(emptyAttributeSpans(4<<10, 1), false)

	o := &countingObserver{names: benchLabelNames}
	const maxSpans = 64
	r, _ := newTestReceiver(f, Options{Observer: o, MaxRequestBytes: 64 << 10, Limits: Limits{
		MaxSpansPerRequest: maxSpans, MaxAttributesPerSpan: 16, MaxAttributeKeyBytes: 64, MaxAttributeDepth: 2,
		MemoryBudgetBytes: 1 << 20}})
	h := r.HTTPHandler()
	f.Fuzz(func(t *testing.T, body []byte, json bool) {
		ct := protobufContentType
		if json {
			ct = jsonContentType
		}
		before := o.n.Load()
		rec := post(h, http.MethodPost, ct, "", body)
		if n := o.n.Load() - before; n > maxSpans {
			t.Fatalf("observed %d spans of one request, over the limit of %d", n, maxSpans)
		}
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for a %d-byte %s body: %q", rec.Code, len(body), ct, rec.Body.Bytes())
		}
	})
}
