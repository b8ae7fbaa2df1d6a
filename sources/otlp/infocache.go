package otlp

import (
	"hash/maphash"

	"github.com/kube-sentinel/sentinel/sources/k8s"
)

// requestInfoCache remembers the Kubernetes request info of the request
// paths a converter parsed last, so that a path seen again (an apiserver
// serves the same lists, leases and status updates over and over) costs a
// hash and a comparison instead of a parse. It is direct-mapped: a path
// takes the one entry its hash names, replacing what was there, so its
// memory is bounded by infoCacheEntries × maxCachedRequest whatever the
// paths. Its entries own their strings (copies of the request's bytes,
// which are reused once the request is answered); a miss costs one copy.
// Not for concurrent use: each converter has its own.
type requestInfoCache struct {
	seed    maphash.Seed
	entries [infoCacheEntries]requestInfoEntry
}

// infoCacheEntries is a power of two; maxCachedRequest bounds the bytes
// of method, path, query and content type that an entry holds: a longer
// request is parsed every time.
const (
	infoCacheEntries = 256
	maxCachedRequest = 512
)

type requestInfoEntry struct {
	method, path, query, contentType string // substrings of one owned copy
	info                             k8s.RequestInfo
}

func newRequestInfoCache() *requestInfoCache {
	return &requestInfoCache{seed: maphash.MakeSeed()}
}

// parse is k8s.Parse(method, path, query, contentType); the strings of the
// info it returns are owned by the cache, and stay valid after the
// request's bytes are reused. A nil cache parses every time.
func (c *requestInfoCache) parse(method, path, query, contentType string) k8s.RequestInfo {
	n := len(method) + len(path) + len(query) + len(contentType)
	if c == nil || n > maxCachedRequest {
		return k8s.Parse(method, path, query, contentType)
	}
	// The path and query, and the method's length and first byte: a GET
	// and a POST of one path take different entries.
	h := maphash.String(c.seed, path)
	if query != "" {
		h ^= maphash.String(c.seed, query) * 0x9E3779B97F4A7C15
	}
	if method != "" {
		h += (uint64(method[0])<<8 | uint64(len(method))) * 0xBF58476D1CE4E5B9
	}
	e := &c.entries[h&(infoCacheEntries-1)]
	if e.path == path && e.method == method && e.query == query && e.contentType == contentType && e.info.Verb != "" {
		return e.info
	}
	owned := method + path + query + contentType // one allocation for the four
	e.method, owned = owned[:len(method)], owned[len(method):]
	e.path, owned = owned[:len(path)], owned[len(path):]
	e.query, e.contentType = owned[:len(query)], owned[len(query):]
	e.info = k8s.Parse(e.method, e.path, e.query, e.contentType)
	return e.info
}
