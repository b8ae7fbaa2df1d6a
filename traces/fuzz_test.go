package traces

import (
	"testing"
	"time"
)

// FuzzAssemble feeds the assembler and the critical path arbitrary span
// lists (IDs drawn from a small space so that duplicates, loops, orphans
// and several roots are common; times in any order), then the buffer.
func FuzzAssemble(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 100, 2, 2, 1, 1, 10, 50, 3, 3, 2, 2, 20, 30, 2})
	f.Add([]byte{1, 2, 0, 0, 10, 1, 2, 1, 1, 0, 10, 1})
	f.Add([]byte{1, 0, 0, 50, 10, 2, 2, 1, 1, 0, 200, 2, 2, 1, 0, 0, 0, 0})
	b, err := New(Options{MaxBytes: MinMaxBytes, MaxSpansPerTrace: 64})
	if err != nil {
		f.Fatal(err)
	}
	services := []string{"apiserver", "etcd", "", "webhook"}
	keys := []string{"k8s.node.name", "http.target", "", "x", "verb", "http.status_code"}
	f.Fuzz(func(t *testing.T, data []byte) {
		var spans []Span
		for len(data) >= 6 {
			tid := traceID(1)
			if data[5]&0x80 != 0 {
				tid = traceID(2)
			}
			spans = append(spans, Span{
				TraceID: tid, SpanID: spanID(uint64(data[0] % 16)), ParentSpanID: spanID(uint64(data[1] % 16)),
				Service: services[data[2]%4], Name: string(data[2:4]), Kind: Kind(data[5] % 6),
				Start: ms(int64(data[3])), End: ms(int64(data[3]) + int64(int8(data[4]))),
				Attributes: []Attribute{
					{Key: keys[int(data[4])%len(keys)], Value: string(data[:int(data[5])%7])},
					{Key: keys[int(data[1])%len(keys)], Int: int64(int8(data[3])) << 56, IsInt: data[0]&1 == 0},
				},
			})
			data = data[6:]
		}
		tr := Assemble(spans)
		if n := len(tr.Spans) + tr.Duplicates + tr.Dropped; n != len(spans) {
			t.Fatalf("%d spans in, %d accounted for", len(spans), n)
		}
		if tr.Complete && (tr.Root < 0 || tr.Orphans+tr.Cycles > 0) {
			t.Fatalf("complete with root=%d orphans=%d cycles=%d", tr.Root, tr.Orphans, tr.Cycles)
		}
		p := CriticalPath(tr)
		checkPath(t, tr, p)
		var bd Breakdown
		bd.Add(p)
		FormatShares(bd.Services())

		var res Resource
		for i := range spans {
			res.Set(spans[i].Service, spans[i].Attributes[:1])
			b.Add(&res, &spans[i], time.Now())
			b.Add(nil, &spans[i], time.Now())
		}
		b.Pin(traceID(1), time.Now().Add(time.Second))
		if tr, ok := b.Trace(traceID(1)); ok {
			checkPath(t, tr, CriticalPath(tr))
		}
	})
}
