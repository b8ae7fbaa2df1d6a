package otlp

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func zstdCompressed(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

// Content-Encoding: zstd, as the Collector accepts it: decoded into the
// pooled buffer, bounded like gzip (a body that decompresses past the
// request limit is 413, not read to its end), garbage is 400.
func TestZstdBodies(t *testing.T) {
	o := &countingObserver{names: benchLabelNames}
	const limit = 1 << 20
	r, _ := newTestReceiver(t, Options{Observer: o, MaxRequestBytes: limit})
	body := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(7, 8)), 40), false)
	for i := range 3 { // the second and third reuse the pooled decoder
		rec := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "zstd", zstdCompressed(t, body))
		if rec.Code != http.StatusOK {
			t.Fatalf("request %d: status %d: %s", i, rec.Code, rec.Body.Bytes())
		}
	}
	if n := o.n.Load(); n != 120 {
		t.Errorf("observed %d spans, want 120", n)
	}

	bomb := zstdCompressed(t, bytes.Repeat([]byte{0}, 64<<20))
	rec := post(r.HTTPHandler(), http.MethodPost, protobufContentType, "zstd", bomb)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a %d-byte zstd body of 64 MiB: status %d, want 413", len(bomb), rec.Code)
	}
	rec = post(r.HTTPHandler(), http.MethodPost, protobufContentType, "ZSTD", []byte("not zstd at all"))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("garbage zstd body: status %d, want 400", rec.Code)
	}
	if _, reason := decodeStatus(t, rec); reason != reasonBadZstd {
		t.Errorf("garbage zstd body: reason %q, want %s", reason, reasonBadZstd)
	}
	if n := o.n.Load(); n != 120 {
		t.Errorf("observed %d spans after the refused bodies, want 120", n)
	}
}
