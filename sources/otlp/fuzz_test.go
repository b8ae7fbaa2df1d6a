package otlp

import (
	"math/rand/v2"
	"net/http"
	"testing"
)

// FuzzHTTPDecode feeds arbitrary bodies to the HTTP handler in both OTLP
// encodings: it must never panic, and must answer 200, 400 or 413.
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

	r, _ := newTestReceiver(f, Options{Observer: &countingObserver{names: benchLabelNames}, MaxRequestBytes: 64 << 10})
	h := r.HTTPHandler()
	f.Fuzz(func(t *testing.T, body []byte, json bool) {
		ct := protobufContentType
		if json {
			ct = jsonContentType
		}
		rec := post(h, http.MethodPost, ct, "", body)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for a %d-byte %s body: %q", rec.Code, len(body), ct, rec.Body.Bytes())
		}
	})
}
