package traces

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"math/rand/v2"
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
	DefaultMaxBytes         = 64 << 20
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

	// MaxBytes caps the span buffer: fixed-size records, their trace
	// tags and a string arena, allocated once by New (untouched pages cost
	// nothing until spans fill them; rounding each part down to a power of
	// two may leave some of MaxBytes unused: Stats says what was
	// allocated). When it is full the oldest spans are evicted. A
	// control-plane span takes about 175 B; the default holds 262,144
	// spans: 52 s of 5k spans/s, 5 s of 50k. Size it for the rate ×
	// (evaluation interval + PinGrace): exemplars are pinned when a
	// series is evaluated.
	MaxBytes int64
	// MaxAge is how long an unpinned span stays visible after it arrived.
	MaxAge time.Duration
	// MaxPinnedTraces and MaxPinnedBytes cap the pinned store.
	MaxPinnedTraces int
	MaxPinnedBytes  int64
	// MaxSpansPerTrace caps the spans of one trace that a read (Trace)
	// or a pin takes from the ring, the oldest first, and those a pinned
	// trace holds; the rest are counted (at most 65535; a read decodes
	// at most this many spans a shard, however many it finds). The ring
	// itself is bounded by MaxBytes, whatever the traces.
	MaxSpansPerTrace int
	// PinGrace is the least time a pin lasts, whatever its until, so that
	// spans exported a batch later still join the trace. At least MinPinGrace.
	PinGrace time.Duration
	// MaxValueBytes caps the service name, span name and each attribute
	// value (UTF-8 safe truncation); integers are kept whole (up to 20
	// bytes formatted). At most 255.
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

// shardBits: the buffer has 1<<shardBits shards, each with its own lock,
// ring and arena. A writer takes a free shard for a whole request, so that
// receivers on several cores rarely wait for one another and a request's
// spans are written one after another; a trace's spans may be in any
// shard.
const shardBits = 3

// spanBudget is the average bytes per span the buffer is sized for: a
// record (80 B) and its tag (4 B), the rest for the arena (about 120 B at
// the default size, after rounding to powers of two), where a span's name
// and attributes go, and its resource's once for the spans that follow it
// in the shard. Spans with longer strings fill the arena first, shorter
// ones the records; either way the oldest spans make room.
const spanBudget = 256

// Buffer holds recent spans by trace ID, and the pinned traces.
// It is safe for concurrent use.
//
// Adding a span only appends: to its shard's ring of records and to the
// ring's string arena, both written in order, so that a span costs no
// random memory access however large the buffer is, and evicting the
// oldest span costs nothing but moving the tail. There is no index by
// trace: finding a trace (Pin, Trace: once per exemplar or page view, not
// per span) scans the shard's dense array of 4-byte trace tags.
type Buffer struct {
	opts Options
	log  *slog.Logger
	seed [2]uint64
	// maxAttrBytes bounds the encoding of one attribute list, maxSpanBytes
	// that of a span (service, name and two lists).
	maxAttrBytes, maxSpanBytes int
	noResource                 Resource // for spans added without one
	shards                     [1 << shardBits]shard
	m                          metrics

	next   atomic.Uint64 // where the next writer starts looking for a free shard
	resIDs atomic.Uint64 // the last resource encoding's ID

	// The pinned store: pins is a copy-on-write snapshot of the pinned
	// traces, read without a lock for every span added; pinMu guards
	// making a new snapshot and every pinnedTrace's fields.
	pins         atomic.Pointer[map[TraceID]*pinnedTrace]
	pinMu        sync.Mutex
	scratch      []byte // encodes spans of pinned traces, under pinMu
	earliest     int64  // when the first pin of the snapshot expires, under pinMu
	pinnedTraces atomic.Int64
	pinnedBytes  atomic.Int64
	lastSweep    atomic.Int64 // unix nanoseconds
}

// record is a buffered span: fixed size, its strings in the shard's arena:
// at off the span name (nameLen bytes) then the span attributes (size
// bytes in all), each entry a key index, a length and the value; resBack
// bytes before off its resource's block (resLen bytes: the service name,
// then the resource attributes), which the spans of a resource that follow
// one another in the shard share.
type record struct {
	traceID    TraceID
	spanID     SpanID
	parentID   SpanID
	start, end int64
	recv       int64
	off        uint64 // absolute arena position
	resBack    uint32 // off minus the resource block's position
	size       uint16 // arena bytes at off
	resLen     uint16
	nameLen    uint8
	kind       Kind
	status     Status
	flags      uint8
}

// detached: the span's trace was pinned, and the span copied to the pinned
// store; the ring's copy is no longer the trace's.
const detached = 1

type shard struct {
	mu sync.Mutex
	// recs is a ring: the span numbered seq is recs[seq&rmask], and
	// tags[seq&rmask] its trace's tag (the low bits of its hash), which
	// scans for a trace read; live spans are tail ≤ seq < head.
	recs       []record
	tags       []uint32
	rmask      uint64
	head, tail uint64
	// arena is a byte ring: live strings are at aTail ≤ pos < aHead,
	// positions counting on over its wraps (arena[pos&amask]). aTail is
	// the oldest span's resource block: blocks are written in order, each
	// before the spans that share it.
	arena        []byte
	amask        uint64
	aHead, aTail uint64
	// The resource block written last, at resPos: the next span of the
	// same resource (its encoding's ID: the same Resource, not Set since)
	// refers to it.
	resID  uint64
	resPos uint64
	// scratch takes the attributes of a span that does not go to the
	// ring (pinned or refused).
	scratch []byte

	// Counters of every span are the shard's, under its lock, so that
	// cores adding to different shards do not share their cache line.
	buffered uint64
	evicted  [numEvictReasons]uint64
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
	b := &Buffer{opts: opts, log: opts.Logger, seed: [2]uint64{rand.Uint64(), rand.Uint64()}}
	b.maxAttrBytes = MaxAttributes * (2 + max(opts.MaxValueBytes, 20))
	b.maxSpanBytes = 2 + 2*opts.MaxValueBytes + 2*b.maxAttrBytes
	// Ring and arena sizes are powers of two, so that positions wrap
	// with a mask, not a division; what rounding down leaves over is not
	// allocated.
	perShard := opts.MaxBytes >> shardBits
	nrec := pow2Floor(perShard / spanBudget)
	arena := pow2Floor(perShard - nrec*int64(unsafe.Sizeof(record{})+4))
	if arena < 4*int64(b.maxSpanBytes) {
		return nil, fmt.Errorf("trace buffer: max bytes %d leaves no room for strings", opts.MaxBytes)
	}
	for i := range b.shards {
		sh := &b.shards[i]
		sh.recs = make([]record, nrec)
		sh.tags = make([]uint32, nrec)
		sh.rmask = uint64(nrec - 1)
		sh.head, sh.tail = 1, 1
		sh.arena = make([]byte, arena)
		sh.amask = uint64(arena - 1)
	}
	b.encodeResource(&b.noResource)
	b.m.register(opts.Registerer, b)
	return b, nil
}

// pow2Floor is the largest power of two ≤ n (n ≥ 1).
func pow2Floor(n int64) int64 { return 1 << (bits.Len64(uint64(n)) - 1) }

// tag is a trace's tag, what scans compare first. It is keyed with the
// buffer's random seed, so that whoever chooses trace IDs cannot make
// their tags collide (a collision only costs a scan a record read): one
// 128-bit multiply of the ID's halves, each mixed with the seed, folded
// (the mixing step of wyhash).
func (b *Buffer) tag(id *TraceID) uint32 {
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(id[:8])^b.seed[0], binary.LittleEndian.Uint64(id[8:])^b.seed[1])
	return uint32(hi ^ lo)
}

// Resource is what the spans of one OTLP ResourceSpans share: service.name
// and the resource attributes. A receiver sets one per ResourceSpans and
// passes it with each of its spans: the buffer filters and encodes the
// resource's attributes once, and writes the encoding once for the spans
// of it that follow one another in a shard. Set reuses the Resource's
// memory for the next resource. A Resource is not for concurrent use.
type Resource struct {
	service string
	attrs   []Attribute
	enc     []byte  // service and kept attributes, encoded for encBy
	encBy   *Buffer // nil: enc is stale
	id      uint64  // the encoding's, unique in encBy: a shard's block of the resource is of one
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
	aw := attrWriter{w: w[n:], maxValue: b.opts.MaxValueBytes}
	b.encodeAttrs(&aw, r.attrs)
	m, truncated := aw.n, aw.truncated
	if cut {
		truncated++
	}
	r.enc, r.encBy = w[:n+m], b
	r.id = b.resIDs.Add(1)
	if truncated > 0 {
		b.m.truncated.Add(uint64(truncated))
	}
}

// attrWriter encodes attributes as a record keeps them, each a key
// index, a length and the value (cut to maxValue; integers formatted),
// at most MaxAttributes, into w, which has room for Buffer.maxAttrBytes.
type attrWriter struct {
	w         []byte
	n, kept   int
	truncated int // values cut, and attributes over MaxAttributes
	maxValue  int
}

func (a *attrWriter) full() bool {
	if a.kept == MaxAttributes {
		a.truncated++
		return true
	}
	a.kept++
	return false
}

func (a *attrWriter) str(k int, v string) {
	if a.full() {
		return
	}
	v, cut := truncate(v, a.maxValue)
	if cut {
		a.truncated++
	}
	a.w[a.n], a.w[a.n+1] = uint8(k), uint8(len(v))
	a.n += 2 + copy(a.w[a.n+2:], v)
}

func (a *attrWriter) int(k int, v int64) {
	if a.full() {
		return
	}
	l := len(strconv.AppendInt(a.w[a.n+2:a.n+2], v, 10))
	a.w[a.n], a.w[a.n+1] = uint8(k), uint8(l)
	a.n += 2 + l
}

// encodeAttrs writes the allowlisted attributes of attrs with aw.
func (b *Buffer) encodeAttrs(aw *attrWriter, attrs []Attribute) {
	tab := allowlist
	for i := range attrs {
		a := &attrs[i]
		k := int(a.Kept) - 1
		if a.Kept == 0 || k >= len(tab.names) {
			if k = tab.lookup(a.Key); k < 0 {
				continue
			}
		}
		if a.IsInt {
			aw.int(k, a.Int)
		} else {
			aw.str(k, a.Value)
		}
	}
}

// Attributes are a span's attributes as the buffer keeps them, encoded by
// a receiver as it reads them straight into the buffer's memory: no
// Attribute list to build, nothing copied twice. Writer.Begin returns
// them for the span it begins; they are valid until Commit.
type Attributes struct {
	aw attrWriter
}

// String adds an attribute whose key k is kept (Kept), and a string
// value; a zero k adds nothing.
func (a *Attributes) String(k KeptKey, v string) {
	if k != 0 && int(k) <= len(allowlist.names) {
		a.aw.str(int(k)-1, v)
	}
}

// Int adds an attribute whose key k is kept, and an integer value.
func (a *Attributes) Int(k KeptKey, v int64) {
	if k != 0 && int(k) <= len(allowlist.names) {
		a.aw.int(int(k)-1, v)
	}
}

// Add buffers a span of res received at received, or adds it to its
// pinned trace; service.name and the resource attributes come from res
// (sp.Service is not read; a nil res is a resource without service or
// attributes). Strings are copied: the caller may reuse its
// memory (a decode buffer) at once. Spans with all-zero IDs or no valid
// time are refused and counted. The receive time, which retention counts
// from, is the caller's, so that a receiver reads the clock once per
// export request, not once per span. A receiver adding a request's spans
// takes a Writer instead, which locks a shard once for all of them.
func (b *Buffer) Add(res *Resource, sp *Span, received time.Time) {
	w := b.Writer()
	w.Add(res, sp, received)
	w.Close()
}

// A Writer adds spans to one shard of the buffer, holding its lock from
// Writer to Close: a receiver takes one per export request. A Writer is
// not for concurrent use, and must be closed.
type Writer struct {
	b  *Buffer
	sh *shard

	// The span begun and not yet committed.
	state   spanState
	res     *Resource
	sp      *Span
	pin     *pinnedTrace
	now     int64
	pos     uint64 // arena position of its name
	nameLen int
	cut     bool
	attrs   Attributes
	expired int64 // the receive time the shard's old spans were last expired for
}

type spanState uint8

const (
	spanNone    spanState = iota
	spanRing              // being written into the ring
	spanPinned            // its trace is pinned: encoded into scratch
	spanRefused           // counted; its attributes go to scratch
)

// Writer locks a shard for adding spans: the first free one from where
// the last writer started, or, when every shard is busy, waits for one.
func (b *Buffer) Writer() Writer {
	start := b.next.Add(1)
	for i := range uint64(len(b.shards)) {
		if sh := &b.shards[(start+i)%uint64(len(b.shards))]; sh.mu.TryLock() {
			return Writer{b: b, sh: sh}
		}
	}
	sh := &b.shards[start%uint64(len(b.shards))]
	sh.mu.Lock()
	return Writer{b: b, sh: sh}
}

// Close unlocks the writer's shard.
func (w *Writer) Close() { w.sh.mu.Unlock() }

// Add is Buffer.Add.
func (w *Writer) Add(res *Resource, sp *Span, received time.Time) {
	a := w.Begin(res, sp, received)
	w.b.encodeAttrs(&a.aw, sp.Attributes)
	w.Commit()
}

// Begin starts adding a span as Add does, except for its attributes
// (sp.Attributes is not read): the caller encodes them into the returned
// Attributes, then calls Commit. sp and res must stay as they are until
// then.
func (w *Writer) Begin(res *Resource, sp *Span, received time.Time) *Attributes {
	b := w.b
	w.sp, w.now = sp, received.UnixNano()
	w.state = spanRefused
	switch {
	case sp.TraceID.IsZero():
		b.m.drop(dropZeroTraceID)
		return w.scratchAttrs()
	case sp.SpanID.IsZero():
		b.m.drop(dropZeroSpanID)
		return w.scratchAttrs()
	case sp.Start <= 0 || sp.End < sp.Start:
		b.m.drop(dropBadTime)
		return w.scratchAttrs()
	}
	if res == nil {
		res = &b.noResource
	} else if res.encBy != b {
		b.encodeResource(res)
	}
	w.res = res
	// Checked under the shard's lock, which Pin takes to scan the shard
	// after it publishes a pin: a span goes to the pinned store or is
	// in the ring when Pin scans it, never neither (a pin that expires
	// while Pin still scans keeps nothing: see Pin).
	if pins := b.pins.Load(); pins != nil {
		if p, ok := (*pins)[sp.TraceID]; ok {
			w.state, w.pin = spanPinned, p
			return w.scratchAttrs()
		}
	}
	w.startRing()
	return &w.attrs
}

// scratchAttrs are Attributes encoded into the shard's scratch.
func (w *Writer) scratchAttrs() *Attributes {
	if w.sh.scratch == nil {
		w.sh.scratch = make([]byte, w.b.maxAttrBytes)
	}
	w.attrs.aw = attrWriter{w: w.sh.scratch, maxValue: w.b.opts.MaxValueBytes}
	return &w.attrs
}

// startRing makes room in the ring for the span begun, writes its
// resource's block (unless the shard's last block is of this resource and
// still held) and its name, and points w.attrs at the arena after them.
func (w *Writer) startRing() {
	b, sh := w.b, w.sh
	if w.now != w.expired { // a request's spans share their receive time
		sh.expire(w.now - int64(b.opts.MaxAge))
		w.expired = w.now
	}
	name, cut := truncate(w.sp.Name, b.opts.MaxValueBytes)
	shared := sh.resID == w.res.id
	// Room for the most the span can take, written in one pass.
	pos := sh.makeRoom(len(w.res.enc) + len(name) + b.maxAttrBytes)
	if !shared || sh.resPos < sh.aTail || pos-sh.resPos > math.MaxUint32 {
		// Making room may have evicted the last span of the shared block.
		n := uint64(copy(sh.arena[pos&sh.amask:], w.res.enc))
		sh.resID, sh.resPos = w.res.id, pos
		pos += n
	}
	off := pos & sh.amask
	n := uint64(copy(sh.arena[off:], name))
	w.state, w.pos, w.nameLen, w.cut = spanRing, pos, len(name), cut
	w.attrs.aw = attrWriter{w: sh.arena[off+n : off+n+uint64(b.maxAttrBytes)], maxValue: b.opts.MaxValueBytes}
}

// Commit ends the span begun: it is written to the ring, or to its
// pinned trace.
func (w *Writer) Commit() {
	b, sh := w.b, w.sh
	if w.state == spanPinned {
		if b.addPinned(w.pin, w.res, w.sp, &w.attrs, w.now) {
			w.end()
			return
		}
		// The pin expired: the span goes to the ring after all.
		enc := w.attrs.aw
		w.startRing()
		w.attrs.aw.n, w.attrs.aw.truncated = copy(w.attrs.aw.w, enc.w[:enc.n]), enc.truncated
	}
	if w.state != spanRing {
		w.end()
		return
	}
	sp, m := w.sp, w.attrs.aw.n
	size := w.nameLen + m
	i := sh.head & sh.rmask
	sh.recs[i] = record{
		traceID: sp.TraceID, spanID: sp.SpanID, parentID: sp.ParentSpanID,
		start: sp.Start, end: sp.End, recv: w.now,
		off: w.pos, resBack: uint32(w.pos - sh.resPos), size: uint16(size), resLen: uint16(len(w.res.enc)), nameLen: uint8(w.nameLen),
		kind: sp.Kind, status: sp.Status,
	}
	sh.tags[i] = b.tag(&sp.TraceID)
	sh.head++
	sh.aHead = w.pos + uint64(size)
	sh.buffered++
	if t := w.attrs.aw.truncated + b2i(w.cut); t > 0 {
		b.m.truncated.Add(uint64(t))
	}
	w.end()
}

func (w *Writer) end() {
	w.state, w.sp, w.res, w.pin = spanNone, nil, nil, nil
	w.attrs.aw = attrWriter{}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// expire evicts the spans that arrived before cutoff.
func (sh *shard) expire(cutoff int64) {
	for sh.tail < sh.head && sh.recs[sh.tail&sh.rmask].recv < cutoff {
		sh.evictOldest(evictAge)
	}
}

// makeRoom evicts the oldest spans until a record and size contiguous
// arena bytes are free, and returns the arena position for them.
func (sh *shard) makeRoom(size int) uint64 {
	a := uint64(len(sh.arena))
	for {
		pos := sh.aHead
		if off := pos & sh.amask; off+uint64(size) > a {
			pos += a - off // never split a span's strings over the arena's end
		}
		if sh.head-sh.tail < uint64(len(sh.recs)) && pos+uint64(size)-sh.aTail <= a {
			return pos
		}
		sh.evictOldest(evictSpace)
	}
}

func (sh *shard) evictOldest(why evictReason) {
	sh.tail++
	if sh.tail < sh.head {
		r := &sh.recs[sh.tail&sh.rmask]
		sh.aTail = r.off - uint64(r.resBack)
	} else {
		sh.aTail = sh.aHead
	}
	sh.evicted[why]++
}

// scan calls f for each live span of the trace in the ring that is not
// detached, oldest first, and stops when f returns false. It reads the
// tags, 4 bytes a span, and only the records whose tag is the trace's.
func (sh *shard) scan(id *TraceID, tag uint32, f func(r *record) bool) {
	for seq := sh.tail; seq < sh.head; {
		// The live spans' tags are at most two runs of the ring.
		from := seq & sh.rmask
		to := min(uint64(len(sh.tags)), from+(sh.head-seq))
		for j, t := range sh.tags[from:to] {
			if t != tag {
				continue
			}
			if r := &sh.recs[from+uint64(j)]; r.traceID == *id && r.flags&detached == 0 && !f(r) {
				return
			}
		}
		seq += to - from
	}
}

// bytes are a record's strings: its resource block, and its own.
func (sh *shard) bytes(r *record) (res, own []byte) {
	ro := (r.off - uint64(r.resBack)) & sh.amask
	off := r.off & sh.amask
	return sh.arena[ro : ro+uint64(r.resLen)], sh.arena[off : off+uint64(r.size)]
}

// decodeRecord copies a buffered span out of the ring.
func (b *Buffer) decodeRecord(sh *shard, r *record) Span {
	res, own := sh.bytes(r)
	return b.decode(res, own, r)
}

// decode copies a record out of its strings: its resource block and its own.
func (b *Buffer) decode(res, own []byte, r *record) Span {
	sp := Span{
		TraceID: r.traceID, SpanID: r.spanID, ParentSpanID: r.parentID,
		Kind: r.kind, Status: r.status, Start: r.start, End: r.end,
	}
	spanAttrs := own[r.nameLen:]
	sp.Service = string(res[2 : 2+int(res[1])])
	sp.Name = string(own[:r.nameLen])
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
				sp.Attributes = append(sp.Attributes, Attribute{Key: allowlist.names[p[n]], Value: string(v)})
			}
		}
	}
	return sp
}

// addPinned adds a copy of the span to its pinned trace, unless the pin
// has expired (then it reports false, and the span goes to the ring): it
// is encoded as for the ring, into scratch, and decoded from it, so that
// it keeps exactly what a buffered span would.
func (b *Buffer) addPinned(p *pinnedTrace, res *Resource, sp *Span, attrs *Attributes, now int64) bool {
	b.pinMu.Lock()
	defer b.pinMu.Unlock()
	// The pin Begin saw may have been swept, or replaced by a new pin of
	// the trace, since: the span goes to the trace's pin now, if any.
	if cur := *b.pins.Load(); cur[sp.TraceID] != p {
		if p = cur[sp.TraceID]; p == nil {
			return false
		}
	}
	if now > p.until {
		b.sweep(now)
		return false
	}
	if len(p.spans) >= b.opts.MaxSpansPerTrace {
		p.dropped++
		b.m.drop(dropPinnedFull)
		return true
	}
	if b.scratch == nil {
		b.scratch = make([]byte, b.maxSpanBytes)
	}
	name, cut := truncate(sp.Name, b.opts.MaxValueBytes)
	n := copy(b.scratch, res.enc)
	n += copy(b.scratch[n:], name)
	m, truncated := copy(b.scratch[n:], attrs.aw.w[:attrs.aw.n]), attrs.aw.truncated
	if cut {
		truncated++
	}
	if truncated > 0 {
		b.m.truncated.Add(uint64(truncated))
	}
	o := b.decode(b.scratch[:len(res.enc)], b.scratch[len(res.enc):n+m], &record{
		traceID: sp.TraceID, spanID: sp.SpanID, parentID: sp.ParentSpanID,
		start: sp.Start, end: sp.End, nameLen: uint8(len(name)), kind: sp.Kind, status: sp.Status,
	})
	if b.keepPinned(p, o) {
		b.m.pinned.Add(1)
	}
	return true
}

// keepPinned adds a span to a pinned trace within the pinned store's byte
// cap (under pinMu).
func (b *Buffer) keepPinned(p *pinnedTrace, sp Span) bool {
	size := spanSize(&sp)
	if b.pinnedBytes.Add(size) > b.opts.MaxPinnedBytes {
		b.pinnedBytes.Add(-size)
		p.dropped++
		b.m.drop(dropPinnedBytes)
		return false
	}
	p.spans = append(p.spans, sp)
	p.bytes += size
	return true
}

// publish replaces the pins' snapshot with pins (under pinMu), and notes
// when the first of them expires.
func (b *Buffer) publish(pins map[TraceID]*pinnedTrace) {
	b.earliest = math.MaxInt64
	for _, p := range pins {
		b.earliest = min(b.earliest, p.until)
	}
	b.pins.Store(&pins)
	b.pinnedTraces.Store(int64(len(pins)))
}

// pinned is the trace's pin, if it has one now.
func (b *Buffer) pinned(id *TraceID, now int64) (*pinnedTrace, bool) {
	pins := b.pins.Load()
	if pins == nil {
		return nil, false
	}
	p, ok := (*pins)[*id]
	if !ok {
		return nil, false
	}
	b.pinMu.Lock()
	defer b.pinMu.Unlock()
	if now > p.until {
		b.sweep(now) // its memory need not wait for the next Pin
		return nil, false
	}
	return p, true
}

func (b *Buffer) refusePin(id TraceID) {
	b.m.refused[pinTooMany].Add(1)
	b.log.Debug("trace pin refused: pinned store full", "trace_id", id, "max_pinned_traces", b.opts.MaxPinnedTraces)
}

// sweep drops the expired pins (under pinMu).
func (b *Buffer) sweep(now int64) {
	old := *b.pins.Load()
	pins := make(map[TraceID]*pinnedTrace, len(old))
	for k, p := range old {
		if now > p.until {
			b.pinnedBytes.Add(-p.bytes)
			continue
		}
		pins[k] = p
	}
	b.publish(pins)
	b.lastSweep.Store(now)
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
	now := b.opts.Now().UnixNano()
	deadline := max(until.UnixNano(), now+int64(b.opts.PinGrace))
	b.pinMu.Lock()
	var old map[TraceID]*pinnedTrace
	if pins := b.pins.Load(); pins != nil {
		old = *pins
	}
	if p, ok := old[id]; ok && now <= p.until {
		p.until = max(p.until, deadline)
		b.pinMu.Unlock()
		return true
	}
	if len(old) >= b.opts.MaxPinnedTraces && now <= b.earliest {
		// Full, and none has expired: refused without copying the pins.
		b.pinMu.Unlock()
		b.refusePin(id)
		return false
	}
	// Expired pins go when one is needed, and at most once a second
	// otherwise, so that their memory does not wait for their trace's
	// next span.
	pins := make(map[TraceID]*pinnedTrace, len(old)+1)
	sweep := len(old) >= b.opts.MaxPinnedTraces || now-b.lastSweep.Load() > int64(time.Second)
	for k, p := range old {
		if k == id || sweep && now > p.until {
			b.pinnedBytes.Add(-p.bytes)
			continue
		}
		pins[k] = p
	}
	if sweep {
		b.lastSweep.Store(now)
	}
	if len(pins) >= b.opts.MaxPinnedTraces {
		if len(pins) != len(old) {
			b.publish(pins)
		}
		b.pinMu.Unlock()
		b.refusePin(id)
		return false
	}
	p := &pinnedTrace{until: deadline}
	pins[id] = p
	b.publish(pins)
	b.pinMu.Unlock()

	// The spans buffered, shard by shard; spans that arrive from now on
	// go to p. A shard's scan holds its lock, so a writer's span is
	// either written before the scan or sees the pin.
	found, skipped := b.buffered(&id, now-int64(b.opts.MaxAge), true)
	// Oldest first, as they arrived, then those added since the pin; up
	// to the cap, the rest counted.
	b.pinMu.Lock()
	if cur := *b.pins.Load(); cur[id] != p {
		// The pin expired and was swept while the shards were scanned
		// (they were held for longer than PinGrace): nothing to keep.
		b.pinMu.Unlock()
		return true
	}
	p.dropped += skipped
	b.m.dropped[dropTraceFull].Add(uint64(skipped))
	later := p.spans
	p.spans, p.bytes = nil, 0
	b.pinnedBytes.Add(-spansSize(later))
	for _, sp := range append(found, later...) {
		if len(p.spans) >= b.opts.MaxSpansPerTrace {
			p.dropped++
			b.m.drop(dropTraceFull)
			continue
		}
		b.keepPinned(p, sp)
	}
	b.pinMu.Unlock()
	return true
}

// buffered returns the trace's spans in the ring that arrived at cutoff
// or later, oldest first, at most MaxSpansPerTrace of them, and how many
// more it found (only counted: whatever a trace's size, a read decodes at
// most MaxSpansPerTrace spans a shard). It reads shard by shard under each
// one's lock; detach marks the spans found as moved to the pinned store.
func (b *Buffer) buffered(id *TraceID, cutoff int64, detach bool) (spans []Span, more int) {
	type arrived struct {
		at int64
		sp Span
	}
	var found []arrived
	tag := b.tag(id)
	for i := range b.shards {
		sh := &b.shards[i]
		n := 0
		sh.mu.Lock()
		sh.scan(id, tag, func(r *record) bool {
			if r.recv < cutoff {
				return true
			}
			if detach {
				r.flags |= detached
			}
			if n++; n > b.opts.MaxSpansPerTrace { // a shard's are oldest first
				more++
				return true
			}
			found = append(found, arrived{r.recv, b.decodeRecord(sh, r)})
			return true
		})
		sh.mu.Unlock()
	}
	// Each shard's in order; merged by arrival.
	slices.SortStableFunc(found, func(x, y arrived) int { return cmp.Compare(x.at, y.at) })
	if len(found) > b.opts.MaxSpansPerTrace {
		more += len(found) - b.opts.MaxSpansPerTrace
		found = found[:b.opts.MaxSpansPerTrace]
	}
	spans = make([]Span, len(found))
	for i := range found {
		spans[i] = found[i].sp
	}
	return spans, more
}

func spanSize(sp *Span) int64 {
	n := int64(unsafe.Sizeof(Span{})) + int64(len(sp.Service)+len(sp.Name))
	for _, a := range sp.Attributes {
		n += int64(unsafe.Sizeof(Attribute{})) + int64(len(a.Value))
	}
	return n
}

func spansSize(spans []Span) int64 {
	n := int64(0)
	for i := range spans {
		n += spanSize(&spans[i])
	}
	return n
}

// Pinned reports whether the trace is pinned now.
func (b *Buffer) Pinned(id TraceID) bool {
	_, ok := b.pinned(&id, b.opts.Now().UnixNano())
	return ok
}

// PinnedTrace is Trace for a pinned trace only: it reports false, at no
// cost, for a trace that is not pinned now.
func (b *Buffer) PinnedTrace(id TraceID) (Trace, bool) {
	if id.IsZero() {
		return Trace{}, false
	}
	p, ok := b.pinned(&id, b.opts.Now().UnixNano())
	if !ok {
		return Trace{}, false
	}
	return b.assemblePinned(p)
}

func (b *Buffer) assemblePinned(p *pinnedTrace) (Trace, bool) {
	b.pinMu.Lock()
	spans := append([]Span(nil), p.spans...)
	dropped := p.dropped
	b.pinMu.Unlock()
	return assembled(spans, dropped)
}

// assembled is the trace of spans, incomplete when some were dropped.
func assembled(spans []Span, dropped int) (Trace, bool) {
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

// Trace assembles the trace from what the buffer holds: its pinned spans
// if it is pinned, else those still buffered (the oldest MaxSpansPerTrace
// of them; the rest are counted as dropped). It reports false for a trace
// it holds no span of (unknown, expired or evicted).
func (b *Buffer) Trace(id TraceID) (Trace, bool) {
	if id.IsZero() {
		return Trace{}, false
	}
	now := b.opts.Now().UnixNano()
	if p, ok := b.pinned(&id, now); ok {
		return b.assemblePinned(p)
	}
	spans, dropped := b.buffered(&id, now-int64(b.opts.MaxAge), false)
	return assembled(spans, dropped)
}

// Stats is what the buffer holds now.
type Stats struct {
	Spans         int   // in the ring
	CapacityBytes int64 // records, tags and arena, as allocated
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
		st.EvictedForSpace += sh.evicted[evictSpace]
		st.CapacityBytes += int64(len(sh.recs))*int64(unsafe.Sizeof(record{})+4) + int64(len(sh.arena))
		sh.mu.Unlock()
	}
	return st
}
