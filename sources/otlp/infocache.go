package otlp

import (
	"hash/maphash"

	"github.com/kube-sentinel/sentinel/sources/k8s"
)

// requestInfoCache remembers the Kubernetes request info of the request
// paths a converter parsed last, so that a path seen again (an apiserver
// serves the same lists, leases and status updates over and over) costs a
// hash and a comparison instead of a parse. It is set-associative: a path
// may take any of the infoCacheWays entries of the set its hash names,
// replacing the one used longest ago, so that a few hot paths whose hashes
// meet in one set do not evict each other (a direct-mapped cache lost
// about one request in twenty that way), and its memory is bounded by
// infoCacheSets × infoCacheWays × maxCachedRequest whatever the paths. Its
// entries own their strings (copies of the request's bytes, which are
// reused once the request is answered); a miss costs one copy. Not for
// concurrent use: each converter has its own.
type requestInfoCache struct {
	seed  maphash.Seed
	clock uint32 // counts lookups; an entry's used is the clock at its last use
	sets  [infoCacheSets][infoCacheWays]requestInfoEntry
}

// infoCacheSets is a power of two; maxCachedRequest bounds the bytes of
// method, path, query and content type that an entry holds: a longer
// request is parsed every time.
const (
	infoCacheSets    = 64
	infoCacheWays    = 4
	maxCachedRequest = 512
)

type requestInfoEntry struct {
	hash                             uint64
	used                             uint32 // 0: empty
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
	// and a POST of one path are told apart by the hash already.
	h := maphash.String(c.seed, path)
	if query != "" {
		h ^= maphash.String(c.seed, query) * 0x9E3779B97F4A7C15
	}
	if method != "" {
		h += (uint64(method[0])<<8 | uint64(len(method))) * 0xBF58476D1CE4E5B9
	}
	c.clock++
	if c.clock == 0 { // wrapped: start the ages again
		for i := range c.sets {
			for j := range c.sets[i] {
				if c.sets[i][j].used != 0 {
					c.sets[i][j].used = 1
				}
			}
		}
		c.clock = 2
	}
	set := &c.sets[h&(infoCacheSets-1)]
	oldest := &set[0]
	for i := range set {
		e := &set[i]
		if e.used != 0 && e.hash == h && e.path == path && e.method == method && e.query == query && e.contentType == contentType {
			e.used = c.clock
			return e.info
		}
		if e.used < oldest.used {
			oldest = e
		}
	}
	e := oldest
	owned := method + path + query + contentType // one allocation for the four
	e.method, owned = owned[:len(method)], owned[len(method):]
	e.path, owned = owned[:len(path)], owned[len(path):]
	e.query, e.contentType = owned[:len(query)], owned[len(query):]
	e.info = k8s.Parse(e.method, e.path, e.query, e.contentType)
	e.hash, e.used = h, c.clock
	return e.info
}
