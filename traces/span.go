package traces

import (
	"encoding/hex"
	"unicode/utf8"
)

// TraceID and SpanID are the W3C/OTLP identifiers.
type (
	TraceID [16]byte
	SpanID  [8]byte
)

// IsZero reports an all-zero (invalid) trace ID.
func (id TraceID) IsZero() bool { return id == TraceID{} }

// IsZero reports an all-zero span ID: for a parent, "no parent".
func (id SpanID) IsZero() bool { return id == SpanID{} }

func (id TraceID) String() string { return hex.EncodeToString(id[:]) }
func (id SpanID) String() string  { return hex.EncodeToString(id[:]) }

// Kind is the OTLP span kind (the protobuf enum's values).
type Kind uint8

// The OTLP span kinds.
const (
	KindUnspecified Kind = iota
	KindInternal
	KindServer
	KindClient
	KindProducer
	KindConsumer
)

func (k Kind) String() string {
	switch k {
	case KindInternal:
		return "INTERNAL"
	case KindServer:
		return "SERVER"
	case KindClient:
		return "CLIENT"
	case KindProducer:
		return "PRODUCER"
	case KindConsumer:
		return "CONSUMER"
	}
	return "UNSPECIFIED"
}

// Status is the OTLP status code.
type Status uint8

// The OTLP status codes.
const (
	StatusUnset Status = iota
	StatusOK
	StatusError
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "OK"
	case StatusError:
		return "ERROR"
	}
	return "UNSET"
}

// Span is one span as the buffer takes it and as an assembled [Trace]
// returns it. Start and End are unix nanoseconds.
type Span struct {
	TraceID      TraceID
	SpanID       SpanID
	ParentSpanID SpanID
	Service      string // the resource's service.name (Add takes it from its Resource)
	Name         string
	Kind         Kind
	Status       Status
	Start, End   int64
	// Attributes offered to Add are the span's own, any number: Add keeps
	// those of the allowlist (see [Buffer.Kept]), at most MaxAttributes.
	// Spans returned by Trace carry the kept resource attributes, then the
	// kept span attributes, every value as a string.
	Attributes []Attribute
}

// Duration is End-Start in nanoseconds (never negative).
func (s *Span) Duration() int64 { return max(0, s.End-s.Start) }

// Attribute is a span or resource attribute. Integer values may be given as
// Int with IsInt set, so that callers need not format (and allocate) them;
// Add formats them itself.
type Attribute struct {
	Key   string
	Value string
	Int   int64
	IsInt bool
	// Kept, when not zero, is what Buffer.Kept returned for Key: Add then
	// takes it instead of looking the key up again.
	Kept KeptKey
}

// KeptKey is an allowlisted attribute key's place in the allowlist, plus
// one; zero means unknown.
type KeptKey uint8

// MaxAttributes is how many attributes a buffered span keeps at most; the
// rest are dropped and counted.
const MaxAttributes = 16

// attrKeys is the allowlist, in a fixed order: a buffered span stores an
// attribute key as its index here. Resource attributes say where a span ran;
// span attributes are the HTTP, gRPC and Kubernetes request info the
// apiserver, etcd, webhooks and the kubelet export (old and new semantic
// conventions alike).
func attrKeys() []string {
	return []string{
		// resource
		"k8s.node.name", "host.name", "cloud.availability_zone", "cloud.region", "service.instance.id",
		"k8s.pod.name", "k8s.namespace.name",
		// HTTP, old and new conventions
		"http.method", "http.request.method", "http.target", "url.path", "url.query", "url.full", "http.url",
		"http.route", "http.status_code", "http.response.status_code", "http.scheme", "url.scheme",
		"http.user_agent", "user_agent.original", "net.peer.ip", "net.peer.name", "client.address",
		"server.address", "server.port",
		"http.request.header.content-type", "http.request.header.content_type",
		// gRPC
		"rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code",
		// the apiserver's request info (its INTERNAL spans)
		"verb", "resource", "subresource", "scope", "group", "namespace", "url", "audit-id",
		"user-agent", "client", "protocol", "key", "type",
	}
}

// allowlist finds a key's place in attrKeys; built once, never changed.
var allowlist = newAttrTable(attrKeys())

// Kept is the key's place in the allowlist for Attribute.Kept and
// Attributes, zero when the buffer does not keep an attribute with this
// key. A receiver looks each key up once, and uses the answer both to
// read the attributes it needs itself (all of them allowlisted) and to
// hand the buffer those it keeps.
func Kept(key string) KeptKey { return KeptKey(allowlist.lookup(key) + 1) }

// attrTable finds a key's index in attrKeys with a probe or two: a
// fixed open-addressing table of the allowlist, hashed on the key's
// length and two of its bytes. It never grows, so no key an exporter
// sends makes a lookup cost more than the longest probe run of the
// allowlist's own keys.
type attrTable struct {
	names []string // attrKeys: a kept key's index names it
	keys  [attrSlots]string
	idx   [attrSlots]uint8
}

const attrSlots = 256 // a power of two, over 4× the allowlist

func attrHash(k string) uint32 {
	n := len(k)
	return (uint32(n)<<16 ^ uint32(k[n/2])<<8 ^ uint32(k[n-1])) * 0x9E3779B1 >> 24
}

func newAttrTable(keys []string) *attrTable {
	t := &attrTable{names: keys}
	for i, k := range keys {
		h := attrHash(k)
		for t.keys[h] != "" {
			h = (h + 1) & (attrSlots - 1)
		}
		t.keys[h], t.idx[h] = k, uint8(i)
	}
	return t
}

// lookup returns the key's index in attrKeys, or -1.
func (t *attrTable) lookup(k string) int {
	if len(k) == 0 {
		return -1
	}
	for h := attrHash(k); ; h = (h + 1) & (attrSlots - 1) {
		switch t.keys[h] {
		case "":
			return -1
		case k:
			return int(t.idx[h])
		}
	}
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence,
// so that what the web layer renders stays valid text.
func truncate(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	cut := n
	for cut > 0 && cut > n-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut], true
}
