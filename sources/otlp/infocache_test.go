package otlp

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/kube-sentinel/sentinel/sources/k8s"
)

// TestRequestInfoCacheAgreesWithParse asks the cache about requests that
// differ only in method, query or content type, more paths than it has
// entries (so entries are replaced), and requests too long to cache:
// every answer must be k8s.Parse's, first time and again.
func TestRequestInfoCacheAgreesWithParse(t *testing.T) {
	type req struct{ method, path, query, contentType string }
	reqs := []req{
		{"GET", "/api/v1/namespaces/default/pods", "", ""},
		{"GET", "/api/v1/namespaces/default/pods", "watch=true", ""},
		{"GET", "/api/v1/namespaces/default/pods?watch=1", "", ""},
		{"DELETE", "/api/v1/namespaces/default/pods", "", ""},
		{"PATCH", "/api/v1/namespaces/default/pods/p", "", "application/merge-patch+json"},
		{"PATCH", "/api/v1/namespaces/default/pods/p", "", "application/apply-patch+yaml"},
		{"GET", "/apis/apps/v1/namespaces/prod/deployments/web/status", "", ""},
		{"GET", "/healthz", "", ""},
		{"get", "/api/v1/nodes", "", ""},
		{"GET", "/api/v1/namespaces/" + strings.Repeat("n", maxCachedRequest) + "/pods", "", ""},
	}
	for i := range 3 * infoCacheSets * infoCacheWays {
		reqs = append(reqs, req{"GET", fmt.Sprintf("/api/v1/namespaces/ns-%d/configmaps/c-%d", i%7, i), "", ""})
	}
	c := newRequestInfoCache()
	for round := range 2 {
		for _, r := range reqs {
			got, want := c.parse(r.method, r.path, r.query, r.contentType), k8s.Parse(r.method, r.path, r.query, r.contentType)
			if got != want {
				t.Errorf("round %d: %+v: got %+v, want %+v", round, r, got, want)
			}
		}
	}
}

// TestRequestInfoCacheOwnsItsStrings parses a path held in a buffer that
// is then overwritten, as a request's buffer is once it is answered: the
// info (returned before and after) must not change with it.
func TestRequestInfoCacheOwnsItsStrings(t *testing.T) {
	buf := []byte("GET/api/v1/namespaces/kube-system/pods/coredns")
	method, path := unsafe.String(&buf[0], 3), unsafe.String(&buf[3], len(buf)-3)
	want := k8s.Parse("GET", "/api/v1/namespaces/kube-system/pods/coredns", "", "")
	c := newRequestInfoCache()
	first := c.parse(method, path, "", "")
	copy(buf, strings.Repeat("x", len(buf)))
	if first != want {
		t.Fatalf("info changed with the request's buffer: %+v, want %+v", first, want)
	}
	again := c.parse("GET", "/api/v1/namespaces/kube-system/pods/coredns", "", "")
	if again != want {
		t.Fatalf("cached info changed with the request's buffer: %+v, want %+v", again, want)
	}
}

func TestRequestInfoCacheHitDoesNotAllocate(t *testing.T) {
	c := newRequestInfoCache()
	path := "/api/v1/namespaces/default/pods"
	c.parse("GET", path, "", "")
	if n := testing.AllocsPerRun(100, func() { c.parse("GET", path, "", "") }); n != 0 {
		t.Fatalf("a hit allocates %v times", n)
	}
}

// A few hot paths stay cached whatever their hashes: eight requests in
// turn, after the first round, never miss (with the direct-mapped cache
// two of them met in one entry in about one process in ten, and missed
// on every turn).
func TestRequestInfoCacheKeepsHotPaths(t *testing.T) {
	for range 20 { // 20 seeds
		c := newRequestInfoCache()
		var paths []string
		for i := range 8 {
			paths = append(paths, fmt.Sprintf("/api/v1/namespaces/ns-%d/pods", i))
		}
		for _, p := range paths {
			c.parse("GET", p, "", "")
		}
		if n := testing.AllocsPerRun(10, func() {
			for _, p := range paths {
				c.parse("GET", p, "", "")
			}
		}); n != 0 {
			t.Fatalf("eight hot paths in turn allocate %v times a round", n)
		}
	}
}
