package traces

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"
)

// request is one apiserver request as the control plane exports it: the
// SERVER root, its INTERNAL span, the CLIENT call to etcd (three spans of
// the apiserver's resource) and etcd's SERVER span (etcd's resource), each
// offered every attribute its exporter sets, allowlisted or not.
func request() ([]Span, []*Resource) {
	var apiserver, etcdRes Resource
	apiserver.Set(apis, []Attribute{
		{Key: "service.name", Value: apis},
		{Key: "service.instance.id", Value: "kube-apiserver-cp-2"},
		{Key: "k8s.node.name", Value: "cp-2"},
		{Key: "cloud.availability_zone", Value: "eu-west-1b"},
		{Key: "telemetry.sdk.language", Value: "go"},
	})
	etcdRes.Set(etcd, []Attribute{
		{Key: "service.name", Value: etcd},
		{Key: "service.instance.id", Value: "etcd-cp-2"},
		{Key: "host.name", Value: "cp-2"},
	})
	spans := build(1,
		s{1, 0, apis, get, KindServer, 0, 12, []Attribute{
			{Key: "http.method", Value: "GET"},
			{Key: "http.target", Value: "/api/v1/namespaces/default"},
			{Key: "http.status_code", Int: 200, IsInt: true},
			{Key: "http.user_agent", Value: "kubectl/v1.30.2 (linux/amd64) kubernetes/39683505"},
			{Key: "http.scheme", Value: "https"},
			{Key: "http.flavor", Value: "2"},
			{Key: "net.peer.ip", Value: "10.0.0.5"},
			{Key: "audit-id", Value: "3f2c9a4e-1b7d-4c1e-9f0a-6d2b8e5c7a13"},
		}},
		s{2, 1, apis, inner, KindInternal, 1, 11, []Attribute{
			{Key: "verb", Value: "get"},
			{Key: "resource", Value: "namespaces"},
			{Key: "scope", Value: "resource"},
			{Key: "url", Value: "/api/v1/namespaces/default"},
			{Key: "protocol", Value: "HTTP/2.0"},
			{Key: "accept", Value: "application/json"},
		}},
		s{3, 2, apis, rng, KindClient, 2, 10, []Attribute{
			{Key: "rpc.system", Value: "grpc"},
			{Key: "rpc.service", Value: "etcdserverpb.KV"},
			{Key: "rpc.method", Value: "Range"},
			{Key: "rpc.grpc.status_code", Int: 0, IsInt: true},
		}},
		s{4, 3, etcd, rng, KindServer, 3, 9, []Attribute{
			{Key: "rpc.system", Value: "grpc"},
			{Key: "rpc.service", Value: "etcdserverpb.KV"},
			{Key: "rpc.method", Value: "Range"},
		}},
	)
	return spans, []*Resource{&apiserver, &apiserver, &apiserver, &etcdRes}
}

// interleave is the request and the span of it that the n-th span added
// belongs to: 256 requests in flight at once, their spans interleaved as
// exporters' batches interleave them, so that consecutive spans are of
// different traces.
func interleave(n uint64) (request uint64, span int) {
	return n/1024*256 + n%256, int(n / 256 % 4)
}

// BenchmarkAdd measures Add in steady state: the buffer is full, so every
// span evicts the oldest. One op is one span. It also reports the bytes a
// span of this traffic takes and how long the default buffer keeps spans at
// 50k spans/s.
func BenchmarkAdd(b *testing.B) {
	for _, size := range []int64{4 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("buffer=%dMiB", size>>20), func(b *testing.B) { benchmarkAdd(b, size) })
	}
}

func benchmarkAdd(b *testing.B, size int64) {
	buf, _, c := newBuffer(b, Options{MaxBytes: size})
	req, res := request()
	now := c.Now()
	n := uint64(0)
	add := func() {
		r, k := interleave(n)
		sp := &req[k]
		binary.BigEndian.PutUint64(sp.TraceID[8:], r+1)
		buf.Add(res[k], sp, now)
		n++
	}
	for buf.sum(func(sh *shard) uint64 { return sh.evicted[evictSpace] }) == 0 {
		add()
	}
	for range 100_000 {
		add()
	}
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	cpu := threadCPU()
	for range b.N {
		add()
	}
	reportCPU(b, cpu)
	b.StopTimer()
	reportMemory(b, buf)
}

func BenchmarkAddParallel(b *testing.B) {
	buf, _, c := newBuffer(b, Options{MaxBytes: 64 << 20})
	now := c.Now()
	var goroutines atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := goroutines.Add(1) << 40
		req, res := request() // a receiver's own
		n := uint64(0)
		for pb.Next() {
			r, k := interleave(n)
			sp := &req[k]
			binary.BigEndian.PutUint64(sp.TraceID[8:], g+r+1)
			buf.Add(res[k], sp, now)
			n++
		}
	})
}

// reportMemory reports the bytes per span of the traffic buffered and the
// retention of a default-sized buffer at 50k spans/s.
func reportMemory(b *testing.B, buf *Buffer) {
	var spans, arena uint64
	for i := range buf.shards {
		sh := &buf.shards[i]
		spans += sh.head - sh.tail
		arena += sh.aHead - sh.aTail
	}
	perRecord := float64(unsafe.Sizeof(record{}) + unsafe.Sizeof(uint32(0))) // and its tag
	perSpan := perRecord + float64(arena)/float64(spans)
	b.ReportMetric(perSpan, "B/span")
	// A default buffer: as many spans as records, or as arena for these strings.
	def, _, _ := newBuffer(b, Options{MaxBytes: DefaultMaxBytes})
	d := &def.shards[0]
	held := min(float64(len(d.recs)), float64(len(d.arena))/(float64(arena)/float64(spans))) * float64(len(def.shards))
	b.ReportMetric(held/50_000, "s-retained@50k/s")
}

// trace200 is a 200-span trace: the root, 10 sequential INTERNAL spans,
// each with 9 CLIENT calls to etcd and etcd's SERVER spans, and 9 spans
// that overlap them.
func trace200() []Span {
	ss := []s{{1, 0, apis, "LIST", KindServer, 0, 1000, nil}}
	id := uint64(2)
	for i := range int64(10) {
		in := id
		ss = append(ss, s{in, 1, apis, inner, KindInternal, i*100 + 1, i*100 + 99, nil})
		id++
		for j := range int64(9) {
			st := i*100 + 2 + j*10
			ss = append(ss, s{id, in, apis, rng, KindClient, st, st + 9, nil}, s{id + 1, id, etcd, rng, KindServer, st + 1, st + 8, nil})
			id += 2
		}
	}
	for i := range int64(9) {
		ss = append(ss, s{id, 1, "cache", "lookup", KindInternal, i*100 + 50, i*100 + 150, nil})
		id++
	}
	return build(1, ss...)
}

func BenchmarkCriticalPath200(b *testing.B) {
	spans := trace200()
	if len(spans) != 200 {
		b.Fatalf("%d spans", len(spans))
	}
	tr := Assemble(spans)
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	cpu := threadCPU()
	for range b.N {
		CriticalPath(tr)
	}
	reportCPU(b, cpu)
}

// BenchmarkTraceAndPath200 reads a 200-span trace out of the buffer,
// assembles it and computes its path: what explaining one exemplar costs.
func BenchmarkTraceAndPath200(b *testing.B) {
	buf, _, c := newBuffer(b, Options{MaxBytes: 16 << 20})
	spans := trace200()
	add(buf, c.Now(), spans...)
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	cpu := threadCPU()
	for range b.N {
		tr, ok := buf.Trace(traceID(1))
		if !ok || len(tr.Spans) != 200 {
			b.Fatal("trace missing")
		}
		CriticalPath(tr)
	}
	reportCPU(b, cpu)
}

// reportCPU reports the thread's CPU time per op since cpu (with the
// benchmark's goroutine locked to its thread; a parallel GC's work on
// other threads is not in it).
func reportCPU(b *testing.B, cpu int64) {
	if cpu >= 0 {
		b.ReportMetric(float64(threadCPU()-cpu)/float64(b.N), "cpu-ns/op")
	}
}
