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
	Service      string // the resource's service.name
	Name         string
	Kind         Kind
	Status       Status
	Start, End   int64
	// Attributes offered to Add may be resource and span attributes alike,
	// any number: Add keeps those of the allowlist (see [KeptAttribute]),
	// at most MaxAttributes of them. Spans returned by Trace carry the kept
	// ones, every value as a string.
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
}

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
		"http.method", "http.request.method", "http.target", "url.path", "url.full", "http.url",
		"http.route", "http.status_code", "http.response.status_code", "http.scheme", "url.scheme",
		"http.user_agent", "user_agent.original", "net.peer.ip", "net.peer.name", "client.address",
		"server.address", "server.port",
		// gRPC
		"rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code",
		// the apiserver's request info (its INTERNAL spans)
		"verb", "resource", "subresource", "scope", "group", "namespace", "url", "audit-id",
		"user-agent", "client", "protocol", "key", "type",
	}
}

// KeptAttribute reports whether Add keeps an attribute with this key.
func KeptAttribute(key string) bool { return attrIndex(key) >= 0 }

// attrIndex is the key's index in attrKeys, or -1. A switch, not a map:
// the compiler turns it into a length-and-compare search with no hashing,
// which matters on the span path.
func attrIndex(key string) int {
	switch key {
	case "k8s.node.name":
		return 0
	case "host.name":
		return 1
	case "cloud.availability_zone":
		return 2
	case "cloud.region":
		return 3
	case "service.instance.id":
		return 4
	case "k8s.pod.name":
		return 5
	case "k8s.namespace.name":
		return 6
	case "http.method":
		return 7
	case "http.request.method":
		return 8
	case "http.target":
		return 9
	case "url.path":
		return 10
	case "url.full":
		return 11
	case "http.url":
		return 12
	case "http.route":
		return 13
	case "http.status_code":
		return 14
	case "http.response.status_code":
		return 15
	case "http.scheme":
		return 16
	case "url.scheme":
		return 17
	case "http.user_agent":
		return 18
	case "user_agent.original":
		return 19
	case "net.peer.ip":
		return 20
	case "net.peer.name":
		return 21
	case "client.address":
		return 22
	case "server.address":
		return 23
	case "server.port":
		return 24
	case "rpc.system":
		return 25
	case "rpc.service":
		return 26
	case "rpc.method":
		return 27
	case "rpc.grpc.status_code":
		return 28
	case "verb":
		return 29
	case "resource":
		return 30
	case "subresource":
		return 31
	case "scope":
		return 32
	case "group":
		return 33
	case "namespace":
		return 34
	case "url":
		return 35
	case "audit-id":
		return 36
	case "user-agent":
		return 37
	case "client":
		return 38
	case "protocol":
		return 39
	case "key":
		return 40
	case "type":
		return 41
	}
	return -1
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
