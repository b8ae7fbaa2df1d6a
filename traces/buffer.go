package traces

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of [Options].
const (
	DefaultMaxBytes         = 256 << 20
	DefaultMaxAge           = 2 * time.Minute
	DefaultMaxPinnedTraces  = 1000
	DefaultMaxPinnedBytes   = 64 << 20
	DefaultMaxSpansPerTrace = 1000
	DefaultPinGrace         = 30 * time.Second
	DefaultMaxValueBytes    = 128

	// MinPinGrace is the shortest grace period a pin gets: exporters batch
	// for 5 s by default, and a trace's etcd or webhook spans may come a
	// batch later than its root.
	MinPinGrace = 10 * time.Second
	// MinMaxBytes is the smallest buffer New accepts.
	MinMaxBytes = 1 << 20
)

// Options configure a [Buffer]. Zero values take the defaults.
type Options struct {
	Logger     *slog.Logger          // default slog.Default()
	Registerer prometheus.Registerer // may be nil
	// Now is the clock of pins and of what Trace still returns (Add takes
	// the receive time from its caller). Default time.Now.
	Now func() time.Time

	// MaxBytes caps the span buffer: fixed-size records, their index and a
	// string arena, allocated once by New (untouched pages cost nothing
	// until spans fill them; rounding each part down to a power of two may
	// leave some of MaxBytes unused: Stats says what was allocated). When
	// it is full the oldest spans are evicted. A control-plane span takes
	// about 240 B, so the default holds about a million spans: 20 s of
	// 50k spans/s. Size it for the rate × (evaluation interval + PinGrace).
	MaxBytes int64
	// MaxAge is how long an unpinned span stays visible after it arrived.
	MaxAge time.Duration
	// MaxPinnedTraces and MaxPinnedBytes cap the pinned store.
	MaxPinnedTraces int
	MaxPinnedBytes  int64
	// MaxSpansPerTrace caps the spans kept of one trace, buffered or
	// pinned (at most 65535).
	MaxSpansPerTrace int
	// PinGrace is the least time a pin lasts, whatever its until, so that
	// spans exported a batch later still join the trace. At least MinPinGrace.
	PinGrace time.Duration
	// MaxValueBytes caps the service name, span name and each attribute
	// value (UTF-8 safe truncation). At most 255.
	MaxValueBytes int
}

func (o *Options) setDefaults() error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.MaxBytes, DefaultMaxBytes)
	def((*int64)(&o.MaxAge), int64(DefaultMaxAge))
	def(&o.MaxPinnedBytes, DefaultMaxPinnedBytes)
	def((*int64)(&o.PinGrace), int64(DefaultPinGrace))
	if o.MaxPinnedTraces == 0 {
		o.MaxPinnedTraces = DefaultMaxPinnedTraces
	}
	if o.MaxSpansPerTrace == 0 {
		o.MaxSpansPerTrace = DefaultMaxSpansPerTrace
	}
	if o.MaxValueBytes == 0 {
		o.MaxValueBytes = DefaultMaxValueBytes
	}
	var errs []error
	if o.MaxBytes < MinMaxBytes {
		errs = append(errs, fmt.Errorf("trace buffer: max bytes %d is under the minimum %d", o.MaxBytes, MinMaxBytes))
	}
	if o.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("trace buffer: negative max age %v", o.MaxAge))
	}
	if o.PinGrace < MinPinGrace {
		errs = append(errs, fmt.Errorf("trace buffer: pin grace %v is under the minimum %v", o.PinGrace, MinPinGrace))
	}
	if o.MaxPinnedTraces < 0 || o.MaxPinnedBytes < 0 {
		errs = append(errs, errors.New("trace buffer: negative pinned-store cap"))
	}
	if o.MaxSpansPerTrace < 1 || o.MaxSpansPerTrace > 65535 {
		errs = append(errs, fmt.Errorf("trace buffer: max spans per trace %d is not in [1, 65535]", o.MaxSpansPerTrace))
	}
	if o.MaxValueBytes < 1 || o.MaxValueBytes > 255 {
		errs = append(errs, fmt.Errorf("trace buffer: max value bytes %d is not in [1, 255]", o.MaxValueBytes))
	}
	return errors.Join(errs...)
}

// shardBits: spans are spread over 1<<shardBits shards by trace ID, each
// with its own lock, ring, index and arena, so that receivers on several
// cores rarely wait for one another, and a trace lives in one shard.
const shardBits = 3

// spanBudget is the average bytes per span the buffer is sized for: a
// record (80 B), its two index slots (32 B) and the rest for the arena
// (128 B at the default size, after rounding to powers of two). Spans with
// longer strings fill the arena first, shorter ones the records; either
// way the oldest spans make room.
const spanBudget = 256

// Buffer holds recent spans by trace ID, and the pinned traces.
// It is safe for concurrent use.
type Buffer struct {
	opts  Options
	log   *slog.Logger
	seed  maphash.Seed
	keys  []string
	attrs *attrTable
	// maxAttrBytes bounds the encoding of one attribute list, maxSpanBytes
	// that of a span (service, name and two lists).
	maxAttrBytes, maxSpanBytes int
	noResource                 Resource // for spans added without one
	shards                     [1 << shardBits]shard
	m                          metrics

	pinnedTraces atomic.Int64
	pinnedBytes  atomic.Int64
	lastSweep    atomic.Int64 // unix nanoseconds
}

// record is a buffered span: fixed size, its strings in the shard's arena
// at off: the resource block (resLen bytes: the service name, then the
// resource attributes), the span name (nameLen bytes), then the span
// attributes, each entry a key index, a length and the value.
type record struct {
	traceID    TraceID
	spanID     SpanID
	parentID   SpanID
	start, end int64
	recv       int64
	prev       uint64 // seq of the trace's previous span, 0 for none
	off        uint64 // absolute arena position
	size       uint16 // arena bytes
	resLen     uint16
	nameLen    uint8
	kind       Kind
	status     Status
	flags      uint8
}

const (
	// superseded: a newer span of the trace is buffered, so evicting this
	// one leaves the trace's index entry alone (and touches no index
	// memory, which is most of what eviction would cost).
	superseded = 1 << iota
	// detached: its trace was pinned; no index entry refers to it.
	detached
)

// slot is an index entry: open addressing with linear probing, keyed by
// the trace ID of the record at head (the trace's newest span).
type slot struct {
	head    uint64 // 0: empty
	tag     uint32 // low bits of the trace ID's hash: its home slot
	count   uint16 // spans of the trace added since the entry was made (evictions do not count down)
	dropped uint16 // spans refused over MaxSpansPerTrace (saturating)
}

type shard struct {
	mu sync.Mutex
	// recs is a ring: the span numbered seq is recs[seq&rmask]; live
	// spans are tail ≤ seq < head (seqs start at 1, so 0 means none).
	recs       []record
	rmask      uint64
	head, tail uint64
	// arena is a byte ring: live strings are at aTail ≤ pos < aHead,
	// positions counting on over its wraps (arena[pos&amask]).
	arena        []byte
	amask        uint64
	aHead, aTail uint64
	index        []slot
	mask         uint32
	removals     uint64 // index entries removed: entries may have moved
	scratch      []byte // encodes spans of pinned traces
	prefetched   uint64 // what Prefetch read, so that its reads are kept
	// Counters of every span are the shard's, so that cores adding to
	// different shards do not share their cache line.
	buffered atomic.Uint64
	evicted  [numEvictReasons]atomic.Uint64
	pinned   map[TraceID]*pinnedTrace
	_        [64]byte // keep shards' locks on separate cache lines
}

type pinnedTrace struct {
	until   int64
	spans   []Span
	bytes   int64
	dropped int
}

// New returns an empty buffer.
func New(opts Options) (*Buffer, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	b := &Buffer{opts: opts, log: opts.Logger, seed: maphash.MakeSeed(), keys: attrKeys()}
	b.attrs = newAttrTable(b.keys)
	b.maxAttrBytes = MaxAttributes * (2 + max(opts.MaxValueBytes, 20))
	b.maxSpanBytes = 2 + 2*opts.MaxValueBytes + 2*b.maxAttrBytes
	// Ring and arena sizes are powers of two, so that positions wrap
	// with a mask, not a division; what rounding down leaves over is not
	// allocated.
	perShard := opts.MaxBytes >> shardBits
	nrec := pow2Floor(perShard / spanBudget)
	nslot := 2 * nrec // load ≤ ½
	arena := pow2Floor(perShard - nrec*int64(unsafe.Sizeof(record{})) - nslot*int64(unsafe.Sizeof(slot{})))
	if arena < 4*int64(b.maxSpanBytes) {
		return nil, fmt.Errorf("trace buffer: max bytes %d leaves no room for strings", opts.MaxBytes)
	}
	for i := range b.shards {
		sh := &b.shards[i]
		sh.recs = make([]record, nrec)
		sh.rmask = uint64(nrec - 1)
		sh.head, sh.tail = 1, 1
		sh.arena = make([]byte, arena)
		sh.amask = uint64(arena - 1)
		sh.index = make([]slot, nslot)
		sh.mask = uint32(nslot - 1)
		sh.pinned = make(map[TraceID]*pinnedTrace)
	}
	b.encodeResource(&b.noResource)
	b.m.register(opts.Registerer, b)
	return b, nil
}

// pow2Floor is the largest power of two ≤ n (n ≥ 1).
func pow2Floor(n int64) int64 { return 1 << (bits.Len64(uint64(n)) - 1) }

// Kept is the key's place in the allowlist for Attribute.Kept, zero when
// Add does not keep an attribute with this key. A receiver that filters
// attributes with it spares Add a second lookup of each key.
func (b *Buffer) Kept(key string) KeptKey { return KeptKey(b.attrs.lookup(key) + 1) }

func (b *Buffer) hash(id *TraceID) (*shard, uint32) {
	h := maphash.Bytes(b.seed, id[:])
	return &b.shards[h>>(64-shardBits)], uint32(h)
}

// Resource is what the spans of one OTLP ResourceSpans share: service.name
// and the resource attributes. A receiver sets one per ResourceSpans and
// passes it with each of its spans: Add filters and encodes the resource's
// attributes once, and copies the encoding into each span's record, so
// that they cost one copy per span, not a lookup each. Set reuses the
// Resource's memory for the next resource. A Resource is not for
// concurrent use.
type Resource struct {
	service string
	attrs   []Attribute
	enc     []byte  // service and kept attributes, encoded for encBy
	encBy   *Buffer // nil: enc is stale
}

// Set makes r describe a resource (the attributes may include
// service.name; the service argument is what counts).
func (r *Resource) Set(service string, attrs []Attribute) {
	r.service, r.attrs, r.encBy = service, attrs, nil
}

// serviceKey marks the service name in a record's resource block.
const serviceKey = 0xff

func (b *Buffer) encodeResource(r *Resource) {
	need := 2 + b.opts.MaxValueBytes + b.maxAttrBytes
	if cap(r.enc) < need {
		r.enc = make([]byte, need)
	}
	w := r.enc[:need]
	svc, cut := truncate(r.service, b.opts.MaxValueBytes)
	w[0], w[1] = serviceKey, uint8(len(svc))
	n := 2 + copy(w[2:], svc)
	m, truncated := b.encodeAttrs(w[n:], r.attrs)
	if cut {
		truncated++
	}
	r.enc, r.encBy = w[:n+m], b
	if truncated > 0 {
		b.m.truncated.Add(uint64(truncated))
	}
}

// encodeAttrs writes the allowlisted attributes, at most MaxAttributes,
// each as a key index, a length and the value (cut to MaxValueBytes;
// integers formatted), into w, which has room for b.maxAttrBytes. It
// returns the bytes written and the fields truncated or dropped.
func (b *Buffer) encodeAttrs(w []byte, attrs []Attribute) (n, truncated int) {
	kept := 0
	tab, maxv := b.attrs, b.opts.MaxValueBytes
	for i := range attrs {
		a := &attrs[i]
		k := int(a.Kept) - 1
		if a.Kept == 0 || k >= len(b.keys) {
			if k = tab.lookup(a.Key); k < 0 {
				continue
			}
		}
		if kept == MaxAttributes {
			truncated++
			continue
		}
		kept++
		w[n] = uint8(k)
		if a.IsInt {
			l := len(strconv.AppendInt(w[n+2:n+2], a.Int, 10))
			w[n+1] = uint8(l)
			n += 2 + l
			continue
		}
		v, cut := truncate(a.Value, maxv)
		if cut {
			truncated++
		}
		w[n+1] = uint8(len(v))
		n += 2 + copy(w[n+2:], v)
	}
	return n, truncated
}

// Add buffers a span of res received at received, or adds it to its
// pinned trace; service.name and the resource attributes come from res
// (sp.Service is not read; a nil res is a resource without service or
// attributes). Strings are copied: the caller may reuse its
// memory (a decode buffer) at once. Spans with all-zero IDs or no valid
// time are refused and counted. The receive time, which retention counts
// from, is the caller's, so that a receiver reads the clock once per
// export request, not once per span.
func (b *Buffer) Add(res *Resource, sp *Span, received time.Time) {
	switch {
	case sp.TraceID.IsZero():
		b.m.drop(dropZeroTraceID)
		return
	case sp.SpanID.IsZero():
		b.m.drop(dropZeroSpanID)
		return
	case sp.Start <= 0 || sp.End < sp.Start:
		b.m.drop(dropBadTime)
		return
	}
	if res == nil {
		res = &b.noResource
	} else if res.encBy != b {
		b.encodeResource(res)
	}
	sh, tag := b.hash(&sp.TraceID)
	now := received.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.pinned) > 0 {
		if p, ok := sh.pinned[sp.TraceID]; ok {
			if now <= p.until {
				b.addPinned(sh, p, res, sp)
				return
			}
			b.unpin(sh, sp.TraceID, p)
		}
	}
	sh.expire(b, now-int64(b.opts.MaxAge))

	i := sh.find(&sp.TraceID, tag)
	if s := &sh.index[i]; s.head != 0 && int(s.count) >= b.opts.MaxSpansPerTrace {
		if s.dropped < 65535 {
			s.dropped++
		}
		b.m.drop(dropTraceFull)
		return
	}
	name, cut := truncate(sp.Name, b.opts.MaxValueBytes)
	removals := sh.removals
	// Room for the most the span can take: it is written in one pass.
	pos := sh.makeRoom(b, len(res.enc)+len(name)+b.maxAttrBytes)
	if sh.removals != removals {
		i = sh.find(&sp.TraceID, tag) // making room moved or removed entries
	}
	w := sh.arena[pos&sh.amask:]
	n := copy(w, res.enc)
	n += copy(w[n:], name)
	m, truncated := b.encodeAttrs(w[n:], sp.Attributes)
	if cut {
		truncated++
	}

	seq := sh.head
	r := &sh.recs[seq&sh.rmask]
	*r = record{
		traceID: sp.TraceID, spanID: sp.SpanID, parentID: sp.ParentSpanID,
		start: sp.Start, end: sp.End, recv: now,
		off: pos, size: uint16(n + m), resLen: uint16(len(res.enc)), nameLen: uint8(len(name)),
		kind: sp.Kind, status: sp.Status,
	}
	sh.head++
	sh.aHead = pos + uint64(n+m)
	if s := &sh.index[i]; s.head != 0 {
		sh.recs[s.head&sh.rmask].flags |= superseded
		r.prev = s.head
		s.head = seq
		s.count++
	} else {
		*s = slot{head: seq, tag: tag, count: 1}
	}
	sh.buffered.Add(1)
	if truncated > 0 {
		b.m.truncated.Add(uint64(truncated))
	}
}

// Prefetch readies the buffer for adding spans of these traces, as a
// receiver knows them before it adds a request's spans one by one: it
// reads, shard by shard under the shard's lock, the index slot each trace
// hashes to and the slots of the traces the oldest spans belong to, which
// adding will evict. Those reads are cache misses (the index is far larger
// than the caches and read at random); made back to back they overlap,
// where Add, one span at a time, would wait for each in turn. It changes
// nothing the buffer holds.
func (b *Buffer) Prefetch(ids []TraceID) {
	const chunk = 256
	var tags [chunk]uint32
	var shards [chunk]uint8
	for len(ids) > 0 {
		n := min(len(ids), chunk)
		var perShard [len(b.shards)]int
		for i := range n {
			h := maphash.Bytes(b.seed, ids[i][:])
			tags[i], shards[i] = uint32(h), uint8(h>>(64-shardBits))
			perShard[shards[i]]++
		}
		for si := range b.shards {
			if perShard[si] == 0 {
				continue
			}
			sh := &b.shards[si]
			sum := uint64(0)
			sh.mu.Lock()
			for i := range n {
				if int(shards[i]) == si {
					sum += sh.index[tags[i]&sh.mask].head
				}
			}
			// The oldest spans, which these will evict once the buffer is
			// full: the index slots of those that are their trace's newest.
			for seq, k := sh.tail, 0; seq < sh.head && k < perShard[si]; seq, k = seq+1, k+1 {
				if r := &sh.recs[seq&sh.rmask]; r.flags == 0 {
					h := maphash.Bytes(b.seed, r.traceID[:])
					sum += sh.index[uint32(h)&sh.mask].head
				}
			}
			sh.prefetched += sum // keeps the reads
			sh.mu.Unlock()
		}
		ids = ids[n:]
	}
}

// find returns the index slot of the trace, or the empty slot where it
// would go.
func (sh *shard) find(id *TraceID, tag uint32) uint32 {
	i := tag & sh.mask
	for {
		s := &sh.index[i]
		if s.head == 0 {
			return i
		}
		if s.tag == tag && sh.recs[s.head&sh.rmask].traceID == *id {
			return i
		}
		i = (i + 1) & sh.mask
	}
}

// remove empties slot i, shifting later entries of its probe run back so
// that lookups need no tombstones.
func (sh *shard) remove(i uint32) {
	sh.removals++
	j := i
	for {
		j = (j + 1) & sh.mask
		s := sh.index[j]
		if s.head == 0 {
			break
		}
		home := s.tag & sh.mask
		// Leave s where it is if its home lies cyclically in (i, j].
		if i <= j {
			if i < home && home <= j {
				continue
			}
		} else if i < home || home <= j {
			continue
		}
		sh.index[i] = s
		i = j
	}
	sh.index[i] = slot{}
}

// expire evicts the spans that arrived before cutoff.
func (sh *shard) expire(b *Buffer, cutoff int64) {
	for sh.tail < sh.head && sh.recs[sh.tail&sh.rmask].recv < cutoff {
		sh.evictOldest(b, evictAge)
	}
}

// makeRoom evicts the oldest spans until a record and size contiguous
// arena bytes are free, and returns the arena position for them.
func (sh *shard) makeRoom(b *Buffer, size int) uint64 {
	a := uint64(len(sh.arena))
	for {
		pos := sh.aHead
		if off := pos & sh.amask; off+uint64(size) > a {
			pos += a - off // never split a span's strings over the arena's end
		}
		if sh.head-sh.tail < uint64(len(sh.recs)) && pos+uint64(size)-sh.aTail <= a {
			return pos
		}
		sh.evictOldest(b, evictSpace)
	}
}

func (sh *shard) evictOldest(b *Buffer, why evictReason) {
	r := &sh.recs[sh.tail&sh.rmask]
	if r.flags == 0 { // its trace's newest span: the trace is gone
		_, tag := b.hash(&r.traceID)
		if i := sh.find(&r.traceID, tag); sh.index[i].head == sh.tail {
			sh.remove(i)
		}
	}
	sh.tail++
	if sh.tail < sh.head {
		sh.aTail = sh.recs[sh.tail&sh.rmask].off
	} else {
		sh.aTail = sh.aHead
	}
	sh.evicted[why].Add(1)
}

// chain calls f for each live span of the trace in the ring, newest first.
func (sh *shard) chain(head uint64, f func(r *record)) {
	for seq := head; seq != 0 && seq >= sh.tail; {
		r := &sh.recs[seq&sh.rmask]
		f(r)
		if r.prev >= seq {
			return // cannot happen: a chain only goes back in time
		}
		seq = r.prev
	}
}

// bytes are a record's strings.
func (sh *shard) bytes(r *record) []byte {
	off := r.off & sh.amask
	return sh.arena[off : off+uint64(r.size)]
}

// decode copies a record out of w, its strings.
func (b *Buffer) decode(w []byte, r *record) Span {
	sp := Span{
		TraceID: r.traceID, SpanID: r.spanID, ParentSpanID: r.parentID,
		Kind: r.kind, Status: r.status, Start: r.start, End: r.end,
	}
	res, spanAttrs := w[:r.resLen], w[int(r.resLen)+int(r.nameLen):]
	sp.Service = string(res[2 : 2+int(res[1])])
	sp.Name = string(w[r.resLen : int(r.resLen)+int(r.nameLen)])
	res = res[2+int(res[1]):]
	count := 0
	for _, p := range [2][]byte{res, spanAttrs} {
		for n := 0; n < len(p); n += 2 + int(p[n+1]) {
			count++
		}
	}
	if count > 0 {
		sp.Attributes = make([]Attribute, 0, count)
		for _, p := range [2][]byte{res, spanAttrs} {
			for n := 0; n < len(p); n += 2 + int(p[n+1]) {
				v := p[n+2 : n+2+int(p[n+1])]
				sp.Attributes = append(sp.Attributes, Attribute{Key: b.keys[p[n]], Value: string(v)})
			}
		}
	}
	return sp
}

// addPinned adds a copy of the span to a pinned trace: encoded as for the
// ring, into the shard's scratch, and decoded from it, so that it keeps
// exactly what a buffered span would.
func (b *Buffer) addPinned(sh *shard, p *pinnedTrace, res *Resource, sp *Span) {
	if len(p.spans) >= b.opts.MaxSpansPerTrace {
		p.dropped++
		b.m.drop(dropPinnedFull)
		return
	}
	if sh.scratch == nil {
		sh.scratch = make([]byte, b.maxSpanBytes)
	}
	name, cut := truncate(sp.Name, b.opts.MaxValueBytes)
	n := copy(sh.scratch, res.enc)
	n += copy(sh.scratch[n:], name)
	m, truncated := b.encodeAttrs(sh.scratch[n:], sp.Attributes)
	if cut {
		truncated++
	}
	if truncated > 0 {
		b.m.truncated.Add(uint64(truncated))
	}
	o := b.decode(sh.scratch[:n+m], &record{
		traceID: sp.TraceID, spanID: sp.SpanID, parentID: sp.ParentSpanID,
		start: sp.Start, end: sp.End, size: uint16(n + m), resLen: uint16(len(res.enc)),
		nameLen: uint8(len(name)), kind: sp.Kind, status: sp.Status,
	})
	size := spanSize(&o)
	if b.pinnedBytes.Add(size) > b.opts.MaxPinnedBytes {
		b.pinnedBytes.Add(-size)
		p.dropped++
		b.m.drop(dropPinnedBytes)
		return
	}
	p.spans = append(p.spans, o)
	p.bytes += size
	b.m.pinned.Add(1)
}

func (b *Buffer) unpin(sh *shard, id TraceID, p *pinnedTrace) {
	delete(sh.pinned, id)
	b.pinnedTraces.Add(-1)
	b.pinnedBytes.Add(-p.bytes)
}

// Pin keeps the trace until until, and at least PinGrace from now: the
// spans already buffered move to the pinned store, and spans of the trace
// that arrive while it is pinned join them there. Pinning again extends
// the pin; it never shortens it. Pin reports false when it refused (an
// all-zero ID, or MaxPinnedTraces reached), which is counted.
func (b *Buffer) Pin(id TraceID, until time.Time) bool {
	if id.IsZero() {
		b.m.refused[pinZeroTraceID].Add(1)
		return false
	}
	sh, tag := b.hash(&id)
	now := b.opts.Now().UnixNano()
	deadline := max(until.UnixNano(), now+int64(b.opts.PinGrace))
	// Expired pins go when one is needed, and at most once a second
	// otherwise, so that their memory does not wait for their trace's
	// next span.
	if last := b.lastSweep.Load(); b.pinnedTraces.Load() >= int64(b.opts.MaxPinnedTraces) ||
		now-last > int64(time.Second) && b.lastSweep.CompareAndSwap(last, now) {
		b.sweep(now)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if p, ok := sh.pinned[id]; ok && now <= p.until {
		p.until = max(p.until, deadline)
		return true
	} else if ok {
		b.unpin(sh, id, p)
	}
	if b.pinnedTraces.Add(1) > int64(b.opts.MaxPinnedTraces) {
		b.pinnedTraces.Add(-1)
		b.m.refused[pinTooMany].Add(1)
		b.log.Debug("trace pin refused: pinned store full", "trace_id", id, "max_pinned_traces", b.opts.MaxPinnedTraces)
		return false
	}
	p := &pinnedTrace{until: deadline}
	sh.pinned[id] = p
	sh.expire(b, now-int64(b.opts.MaxAge))
	i := sh.find(&id, tag)
	if s := sh.index[i]; s.head != 0 {
		p.dropped = int(s.dropped)
		var spans []Span
		sh.chain(s.head, func(r *record) {
			spans = append(spans, b.decode(sh.bytes(r), r))
			r.flags |= detached
		})
		sh.remove(i)
		for j := len(spans) - 1; j >= 0; j-- { // oldest first, as they arrived
			size := spanSize(&spans[j])
			if b.pinnedBytes.Add(size) > b.opts.MaxPinnedBytes {
				b.pinnedBytes.Add(-size)
				p.dropped++
				b.m.drop(dropPinnedBytes)
				continue
			}
			p.spans = append(p.spans, spans[j])
			p.bytes += size
		}
	}
	return true
}

// sweep drops the expired pins of every shard (one lock at a time).
func (b *Buffer) sweep(now int64) {
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		for id, p := range sh.pinned {
			if now > p.until {
				b.unpin(sh, id, p)
			}
		}
		sh.mu.Unlock()
	}
}

func spanSize(sp *Span) int64 {
	n := int64(unsafe.Sizeof(Span{})) + int64(len(sp.Service)+len(sp.Name))
	for _, a := range sp.Attributes {
		n += int64(unsafe.Sizeof(Attribute{})) + int64(len(a.Value))
	}
	return n
}

// Pinned reports whether the trace is pinned now.
func (b *Buffer) Pinned(id TraceID) bool {
	sh, _ := b.hash(&id)
	now := b.opts.Now().UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p, ok := sh.pinned[id]
	return ok && now <= p.until
}

// Trace assembles the trace from what the buffer holds: its pinned spans
// if it is pinned, else those still buffered. It reports false for a trace
// it holds no span of (unknown, expired or evicted).
func (b *Buffer) Trace(id TraceID) (Trace, bool) {
	if id.IsZero() {
		return Trace{}, false
	}
	sh, tag := b.hash(&id)
	now := b.opts.Now().UnixNano()
	var spans []Span
	dropped := 0
	sh.mu.Lock()
	if p, ok := sh.pinned[id]; ok && now <= p.until {
		spans = append([]Span(nil), p.spans...)
		dropped = p.dropped
	} else {
		if ok {
			b.unpin(sh, id, p)
		}
		cutoff := now - int64(b.opts.MaxAge)
		if s := sh.index[sh.find(&id, tag)]; s.head != 0 {
			dropped = int(s.dropped)
			sh.chain(s.head, func(r *record) {
				if r.recv >= cutoff {
					spans = append(spans, b.decode(sh.bytes(r), r))
				}
			})
			slices.Reverse(spans) // as they arrived
		}
	}
	sh.mu.Unlock()
	if len(spans) == 0 {
		return Trace{}, false
	}
	t := Assemble(spans)
	if dropped > 0 {
		t.Dropped += dropped
		t.Complete = false
	}
	return t, true
}

// Stats is what the buffer holds now.
type Stats struct {
	Spans         int   // in the ring
	CapacityBytes int64 // records, index and arena, as allocated
	PinnedTraces  int
	PinnedBytes   int64
	// EvictedForSpace counts the spans evicted to make room: once it is
	// above zero the buffer is full and every span it takes evicts.
	EvictedForSpace uint64
}

// Stats counts what the buffer holds.
func (b *Buffer) Stats() Stats {
	st := Stats{PinnedTraces: int(b.pinnedTraces.Load()), PinnedBytes: b.pinnedBytes.Load()}
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		st.Spans += int(sh.head - sh.tail)
		st.EvictedForSpace += sh.evicted[evictSpace].Load()
		st.CapacityBytes += int64(len(sh.recs))*int64(unsafe.Sizeof(record{})) +
			int64(len(sh.index))*int64(unsafe.Sizeof(slot{})) + int64(len(sh.arena))
		sh.mu.Unlock()
	}
	return st
}
