package otlp

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func newTestReceiver(t testing.TB, opts Options) (*Receiver, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	if opts.Observer == nil {
		opts.Observer = &countingObserver{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, reg
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func post(h http.Handler, method, contentType, contentEncoding string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, TracesPath, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if contentEncoding != "" {
		req.Header.Set("Content-Encoding", contentEncoding)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// decodeStatus reads a google.rpc.Status error body and returns its
// ErrorInfo reason.
func decodeStatus(t *testing.T, rec *httptest.ResponseRecorder) (*spb.Status, string) {
	t.Helper()
	st := &spb.Status{}
	var err error
	switch ct := rec.Header().Get("Content-Type"); ct {
	case protobufContentType:
		err = proto.Unmarshal(rec.Body.Bytes(), st)
	case jsonContentType:
		err = protojson.Unmarshal(rec.Body.Bytes(), st)
	default:
		t.Fatalf("error body has content type %q, want an OTLP one", ct)
	}
	if err != nil {
		t.Fatalf("error body %q is not a google.rpc.Status: %v", rec.Body.Bytes(), err)
	}
	for _, d := range st.GetDetails() {
		info := &errdetails.ErrorInfo{}
		if d.MessageIs(info) {
			if err := d.UnmarshalTo(info); err != nil {
				t.Fatal(err)
			}
			return st, info.GetReason()
		}
	}
	t.Fatalf("status %v carries no ErrorInfo", st)
	return nil, ""
}

func TestHTTPSuccess(t *testing.T) {
	td := apiserverTraces(rand.New(rand.NewPCG(3, 4)), 40)
	// One span that must be rejected: it ends before it starts.
	bad := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty()
	bad.SetStartTimestamp(10)
	bad.SetEndTimestamp(5)

	tests := []struct {
		name, contentType, encoding string
		json, gzip                  bool
	}{
		{"protobuf", "application/x-protobuf", "", false, false},
		{"json", "application/json", "", true, false},
		{"json with charset", "application/json; charset=utf-8", "", true, false},
		{"protobuf gzip", "application/x-protobuf", "gzip", false, true},
		{"json gzip", "application/json", "gzip", true, true},
		{"protobuf identity", "application/x-protobuf", "identity", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &recordingObserver{names: []string{"service.name", "verb"}}
			r, reg := newTestReceiver(t, Options{Observer: o})
			body := marshalTraces(t, td, tt.json)
			if tt.gzip {
				body = gzipped(t, body)
			}
			rec := post(r.HTTPHandler(), http.MethodPost, tt.contentType, tt.encoding, body)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, body %q", rec.Code, rec.Body.Bytes())
			}
			wantCT := protobufContentType
			if tt.json {
				wantCT = jsonContentType
			}
			if ct := rec.Header().Get("Content-Type"); ct != wantCT {
				t.Errorf("response content type %q, want %q", ct, wantCT)
			}
			resp := ptraceotlp.NewExportResponse()
			var err error
			if tt.json {
				err = resp.UnmarshalJSON(rec.Body.Bytes())
			} else {
				err = resp.UnmarshalProto(rec.Body.Bytes())
			}
			if err != nil {
				t.Fatalf("response: %v", err)
			}
			if got := resp.PartialSuccess().RejectedSpans(); got != 1 {
				t.Errorf("partial success rejected %d spans, want 1 (%q)", got, resp.PartialSuccess().ErrorMessage())
			}
			if got := len(o.all()); got != 40 {
				t.Errorf("observed %d spans, want 40", got)
			}
			if got := testutil.ToFloat64(r.metrics.received.WithLabelValues("http")); got != 41 {
				t.Errorf("spans received %v, want 41", got)
			}
			if got := testutil.ToFloat64(r.metrics.rejected.WithLabelValues("http", reasonInvalidTime)); got != 1 {
				t.Errorf("spans rejected %v, want 1", got)
			}
			if got := testutil.ToFloat64(r.metrics.requests.WithLabelValues("http", "200")); got != 1 {
				t.Errorf("requests{code=200} %v, want 1", got)
			}
			if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
				t.Errorf("gathered %d metrics, err %v", n, err)
			}
		})
	}
}

func TestHTTPErrors(t *testing.T) {
	const limit = 16 << 10
	good := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(5, 6)), 8), false)
	goodJSON := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(5, 6)), 8), true)
	big := apiserverTraces(rand.New(rand.NewPCG(7, 8)), 400)
	bigProto := marshalTraces(t, big, false)
	if len(bigProto) <= limit {
		t.Fatalf("big payload is only %d bytes", len(bigProto))
	}
	// Compresses to under the limit, but is over it once decompressed.
	bomb := gzipped(t, bytes.Repeat([]byte{0}, 4*limit))
	if len(bomb) >= limit {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	badGzip := gzipped(t, good)
	badGzip[len(badGzip)-5] ^= 0xff // corrupt the CRC-32

	tests := []struct {
		name, method, contentType, encoding string
		body                                []byte
		wantStatus                          int
		wantReason                          string
		wantCode                            codes.Code
	}{
		{"GET", http.MethodGet, "", "", nil, http.StatusMethodNotAllowed, reasonMethodNotAllowed, codes.Unimplemented},
		{"GET with protobuf content type", http.MethodGet, protobufContentType, "", nil, http.StatusMethodNotAllowed, reasonMethodNotAllowed, codes.Unimplemented},
		{"PUT", http.MethodPut, jsonContentType, "", goodJSON, http.StatusMethodNotAllowed, reasonMethodNotAllowed, codes.Unimplemented},
		{"text/plain", http.MethodPost, "text/plain", "", good, http.StatusUnsupportedMediaType, reasonUnsupportedMediaType, codes.InvalidArgument},
		{"no content type", http.MethodPost, "", "", good, http.StatusUnsupportedMediaType, reasonUnsupportedMediaType, codes.InvalidArgument},
		{"malformed content type", http.MethodPost, "application/x-protobuf/json", "", good, http.StatusUnsupportedMediaType, reasonUnsupportedMediaType, codes.InvalidArgument},
		{"unsupported encoding", http.MethodPost, protobufContentType, "br", good, http.StatusUnsupportedMediaType, reasonUnsupportedEncoding, codes.InvalidArgument},
		{"garbage protobuf", http.MethodPost, protobufContentType, "", []byte("this is not a protobuf message"), http.StatusBadRequest, reasonInvalidProtobuf, codes.InvalidArgument},
		{"truncated protobuf", http.MethodPost, protobufContentType, "", good[:len(good)/2], http.StatusBadRequest, reasonInvalidProtobuf, codes.InvalidArgument},
		{"invalid JSON", http.MethodPost, jsonContentType, "", []byte(`{"resourceSpans": [{"resource": `), http.StatusBadRequest, reasonInvalidJSON, codes.InvalidArgument},
		{"not JSON at all", http.MethodPost, jsonContentType, "", []byte("\x00\x01garbage"), http.StatusBadRequest, reasonInvalidJSON, codes.InvalidArgument},
		{"JSON sent as protobuf", http.MethodPost, protobufContentType, "", goodJSON, http.StatusBadRequest, reasonInvalidProtobuf, codes.InvalidArgument},
		{"oversized protobuf", http.MethodPost, protobufContentType, "", bigProto, http.StatusRequestEntityTooLarge, reasonTooLarge, codes.InvalidArgument},
		{"oversized JSON", http.MethodPost, jsonContentType, "", marshalTraces(t, big, true), http.StatusRequestEntityTooLarge, reasonTooLarge, codes.InvalidArgument},
		{"oversized after decompression", http.MethodPost, protobufContentType, "gzip", bomb, http.StatusRequestEntityTooLarge, reasonTooLarge, codes.InvalidArgument},
		{"gzip header but plain body", http.MethodPost, protobufContentType, "gzip", good, http.StatusBadRequest, reasonBadGzip, codes.InvalidArgument},
		{"gzip with bad checksum", http.MethodPost, protobufContentType, "gzip", badGzip, http.StatusBadRequest, reasonBadGzip, codes.InvalidArgument},
		{"truncated gzip", http.MethodPost, jsonContentType, "gzip", gzipped(t, goodJSON)[:20], http.StatusBadRequest, reasonBadGzip, codes.InvalidArgument},
	}
	o := &countingObserver{}
	r, _ := newTestReceiver(t, Options{Observer: o, MaxRequestBytes: limit})
	h := r.HTTPHandler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(h, tt.method, tt.contentType, tt.encoding, tt.body)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %q", rec.Code, tt.wantStatus, rec.Body.Bytes())
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != http.MethodPost {
				t.Errorf("Allow header %q, want POST", rec.Header().Get("Allow"))
			}
			// Every refusal is a google.rpc.Status carrying its reason (JSON
			// when the request's encoding is unknown).
			st, reason := decodeStatus(t, rec)
			if reason != tt.wantReason || codes.Code(st.GetCode()) != tt.wantCode {
				t.Errorf("status code %v reason %q, want %v %q (message %q)", codes.Code(st.GetCode()), reason, tt.wantCode, tt.wantReason, st.GetMessage())
			}
			if !strings.HasPrefix(st.GetMessage(), tt.wantReason+": ") {
				t.Errorf("message %q does not start with the reason", st.GetMessage())
			}

			// The receiver keeps serving: a good request succeeds next.
			before := o.n.Load()
			if rec := post(h, http.MethodPost, protobufContentType, "", good); rec.Code != http.StatusOK {
				t.Fatalf("good request after %s: status %d, body %q", tt.name, rec.Code, rec.Body.Bytes())
			}
			if got := o.n.Load() - before; got != 8 {
				t.Errorf("good request after %s: observed %d spans, want 8", tt.name, got)
			}
		})
	}
	if got := len(r.inFlight); got != 0 {
		t.Errorf("%d request slots still held", got)
	}
}

func TestHTTPUnknownPath(t *testing.T) {
	r, _ := newTestReceiver(t, Options{})
	req := httptest.NewRequest(http.MethodPost, "/v1/metrics", strings.NewReader(""))
	req.Header.Set("Content-Type", protobufContentType)
	rec := httptest.NewRecorder()
	r.HTTPHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("status %d, want 404", rec.Code)
	}
}

// An empty protobuf body is a valid, empty export request.
func TestHTTPEmptyRequest(t *testing.T) {
	r, _ := newTestReceiver(t, Options{})
	rec := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %q", rec.Code, rec.Body.Bytes())
	}
	rec = post(r.HTTPHandler(), http.MethodPost, jsonContentType, "", []byte("{}"))
	if rec.Code != http.StatusOK {
		t.Fatalf("JSON status %d, body %q", rec.Code, rec.Body.Bytes())
	}
	body, _ := io.ReadAll(rec.Body)
	resp := ptraceotlp.NewExportResponse()
	if err := resp.UnmarshalJSON(body); err != nil || resp.PartialSuccess().RejectedSpans() != 0 {
		t.Errorf("response %q: %v", body, err)
	}
}

// Bodies of unknown length (chunked) are cut off by reading, not by the
// Content-Length check: before decompression and after.
func TestHTTPOversizedStreaming(t *testing.T) {
	const limit = 16 << 10
	noise := make([]byte, 2*limit) // incompressible: over the limit compressed too
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	bigProto := marshalTraces(t, apiserverTraces(rng, 400), false)
	tests := []struct {
		name, encoding string
		body           []byte
	}{
		{"plain", "", bigProto},
		{"gzip, over the limit compressed", "gzip", gzipped(t, noise)},
		{"gzip, over the limit decompressed", "gzip", gzipped(t, bigProto)},
	}
	r, _ := newTestReceiver(t, Options{MaxRequestBytes: limit})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, TracesPath, io.MultiReader(bytes.NewReader(tt.body)))
			req.ContentLength = -1
			req.Header.Set("Content-Type", protobufContentType)
			req.Header.Set("Content-Encoding", tt.encoding)
			rec := httptest.NewRecorder()
			r.HTTPHandler().ServeHTTP(rec, req)
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413; body %q", rec.Code, rec.Body.Bytes())
			}
			if _, reason := decodeStatus(t, rec); reason != reasonTooLarge {
				t.Errorf("reason %q", reason)
			}
		})
	}
}

// A body of declared length is read into a buffer about its size, not
// twice it (bytes.Buffer.ReadFrom grows a full buffer to find the end):
// the budget holds the body at that size while the request waits.
func TestBodyBufferIsAboutTheBodysSize(t *testing.T) {
	r, _ := newTestReceiver(t, Options{Observer: &countingObserver{}})
	for _, size := range []int{1000, 50_000, 300_000, 700_000} {
		body := bytes.Repeat([]byte{0x0a}, size)
		req := httptest.NewRequest(http.MethodPost, TracesPath, bytes.NewReader(body))
		var buf bytes.Buffer
		if size == 700_000 {
			// A pooled buffer smaller than the body: growing it would
			// double it.
			buf.Grow(600 << 10)
		}
		res, ok := r.budget.reserve(int64(size) + bytes.MinRead)
		if !ok {
			t.Fatal("cannot reserve the body")
		}
		status, reason, msg := r.readBody(httptest.NewRecorder(), req, compressionNone, &buf, &res)
		res.release()
		if status != 0 {
			t.Fatalf("%d bytes: %d %s %s", size, status, reason, msg)
		}
		if buf.Len() != size {
			t.Fatalf("read %d bytes of %d", buf.Len(), size)
		}
		if limit := size + bytes.MinRead + 8<<10; buf.Cap() > limit { // a page of rounding
			t.Errorf("a %d-byte body took a %d-byte buffer, want at most %d", size, buf.Cap(), limit)
		}
	}
}
