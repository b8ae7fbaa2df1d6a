package k8s

import "strings"

// RequestInfo is the apiserver's view of a request, with the values its metric labels use.
type RequestInfo struct {
	IsResourceRequest bool
	Verb              string // metric label value: GET LIST WATCH POST PUT PATCH APPLY DELETE DELETECOLLECTION CONNECT (non-resource: the HTTP method upper-case)
	Group             string // "" for the core group
	Version           string
	Resource          string
	Subresource       string
	Scope             string // "resource" | "namespace" | "cluster" | "" (non-resource)
	Namespace         string
	Name              string
}

// Verb label values.
const (
	VerbGet              = "GET"
	VerbList             = "LIST"
	VerbWatch            = "WATCH"
	VerbPost             = "POST"
	VerbPut              = "PUT"
	VerbPatch            = "PATCH"
	VerbApply            = "APPLY"
	VerbDelete           = "DELETE"
	VerbDeleteCollection = "DELETECOLLECTION"
	VerbConnect          = "CONNECT"
	// VerbOther is what the apiserver reports for a resource request whose
	// method it does not know (its metrics' "other").
	VerbOther = "other"
)

// Scope label values.
const (
	ScopeResource  = "resource"
	ScopeNamespace = "namespace"
	ScopeCluster   = "cluster"
)

// ApplyPatchContentType is the content type of a server-side apply patch.
const ApplyPatchContentType = "application/apply-patch+yaml"

// maxQueryParams mirrors net/url's default limit: a query with more
// parameters than this parses as empty.
const maxQueryParams = 10000

// maxParts is how many leading path segments the resolver ever looks at:
// prefix, group, version, special verb, "namespaces", namespace, resource,
// name, subresource.
const maxParts = 9

// Parse derives the request info. query is the raw query string without '?'; contentType may be "".
//
// path may still carry its query ("/api/v1/pods?watch=true", as in
// http.target); when query is "" the part after '?' is used as the query.
// An absolute-form target ("https://host:6443/api/v1/pods") is reduced to
// its path. method is case-insensitive; an empty method leaves Verb empty.
// The path is taken as is (percent-escapes are not decoded).
//
// The rules follow k8s.io/apiserver: RequestInfoFactory.NewRequestInfo
// (prefixes "api" and "apis", the /watch/ and /proxy/ verb prefixes,
// /namespaces/NS re-rooting except for the namespace subresources status
// and finalize) and the metrics package's CleanScope, CanonicalVerb and
// CleanVerb (GET/HEAD is LIST unless resource-scoped; a GET whose first
// "watch" query parameter is neither "0" nor "false" is WATCH; PATCH with
// Content-Type exactly application/apply-patch+yaml is APPLY; the
// subresources log, exec, attach, portforward and proxy are CONNECT for
// any method; unknown methods on resources are "other"). Two deliberate
// choices:
//   - A DELETE of a collection is DELETECOLLECTION, the verb RequestInfo and
//     RBAC use and older apiservers reported; current apiservers label it
//     DELETE in apiserver_request_total.
//   - Name comes from the path only: a fieldSelector=metadata.name=X on a
//     list does not make it a named (resource-scoped) request, matching the
//     metric labels, which use the route's scope.
//
// Parse does not allocate for ordinary requests: the returned strings are
// substrings of its arguments or package constants.
func Parse(method, path, query, contentType string) RequestInfo {
	path, query = splitTarget(path, query)
	method = upperMethod(method)

	var info RequestInfo

	// The path segments, as the apiserver's splitPath gives them: leading
	// and trailing slashes trimmed, then split at every '/'. Only the first
	// maxParts are kept; n counts all of them.
	var parts [maxParts]string
	n := 0
	for rest := strings.Trim(path, "/"); rest != ""; {
		seg, tail, more := strings.Cut(rest, "/")
		if n < maxParts {
			parts[n] = seg
		}
		n++
		if !more {
			break
		}
		rest = tail
	}

	// Resource paths are /api/VERSION/... (the core group) and
	// /apis/GROUP/VERSION/...; anything shorter or elsewhere is a
	// non-resource request (/healthz, /api, /apis/apps/v1, ...).
	i := 0
	switch {
	case n >= 3 && parts[0] == "api":
		i = 1
	case n >= 4 && parts[0] == "apis":
		info.Group = parts[1]
		i = 2
	default:
		info.Verb = method
		return info
	}
	info.IsResourceRequest = true
	info.Version = parts[i]
	i++

	// Deprecated verb-in-path forms: /api/v1/watch/... and /api/v1/proxy/...
	special := ""
	if p := parts[i]; p == "watch" || p == "proxy" {
		if n-i < 2 {
			// The apiserver rejects this path; report what is known.
			info.Scope = ScopeCluster
			info.Verb = metricVerb(method, "", &info, query, contentType)
			return info
		}
		special = p
		i++
	}

	// /namespaces/NS/RESOURCE/... is re-rooted at RESOURCE; /namespaces,
	// /namespaces/NS and /namespaces/NS/{status,finalize} are requests on
	// the (cluster-scoped) namespaces resource itself.
	if parts[i] == "namespaces" && n-i > 1 {
		info.Namespace = parts[i+1]
		if n-i > 2 && parts[i+2] != "status" && parts[i+2] != "finalize" {
			i += 2
		}
	}

	// What is left reads RESOURCE[/NAME[/SUBRESOURCE[/...]]].
	switch m := n - i; {
	case m >= 3:
		if special != "proxy" {
			info.Subresource = parts[i+2]
		}
		fallthrough
	case m == 2:
		info.Name = parts[i+1]
		fallthrough
	default: // m >= 1 always holds here
		info.Resource = parts[i]
	}

	// The apiserver's CleanScope: a named object or a create is "resource",
	// else a namespace in the path makes it "namespace", else "cluster".
	switch {
	case info.Name != "" || (special == "" && method == "POST"):
		info.Scope = ScopeResource
	case info.Namespace != "":
		info.Scope = ScopeNamespace
	default:
		info.Scope = ScopeCluster
	}

	info.Verb = metricVerb(method, special, &info, query, contentType)
	return info
}

// metricVerb is the verb label the apiserver's metrics give a resource
// request: the HTTP method, with GET split into GET and LIST by scope,
// WATCH for /watch/ paths and for GETs asking ?watch, APPLY for
// server-side apply patches, CONNECT for the streaming subresources, and
// DELETECOLLECTION for a DELETE of a collection.
func metricVerb(method, special string, info *RequestInfo, query, contentType string) string {
	if method == "" {
		return ""
	}
	if special == "watch" {
		return VerbWatch
	}
	verb := method
	switch method {
	case "GET", "HEAD":
		if info.Scope == ScopeResource {
			verb = VerbGet
		} else {
			verb = VerbList
		}
		if method == "GET" && watchRequested(query) {
			verb = VerbWatch
		}
	case "PATCH":
		if contentType == ApplyPatchContentType {
			verb = VerbApply
		}
	case "DELETE":
		if info.Name == "" && special == "" {
			verb = VerbDeleteCollection
		}
	case "POST", "PUT":
	default:
		verb = VerbOther
	}
	switch info.Subresource {
	case "log", "exec", "portforward", "attach", "proxy":
		verb = VerbConnect
	}
	return verb
}

// splitTarget separates a request target into path and query. An explicit
// query wins over one carried in the path.
func splitTarget(path, query string) (string, string) {
	if strings.HasPrefix(path, "https://") || strings.HasPrefix(path, "http://") {
		rest := path[strings.Index(path, "://")+3:]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			path = rest[j:]
		} else {
			path = ""
		}
	}
	if j := strings.IndexByte(path, '#'); j >= 0 {
		path = path[:j]
	}
	if j := strings.IndexByte(path, '?'); j >= 0 {
		if query == "" {
			query = path[j+1:]
		}
		path = path[:j]
	}
	return path, query
}

// upperMethod returns method upper-cased, as a constant for the common
// methods so that it does not allocate.
func upperMethod(m string) string {
	for _, known := range [...]string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"} {
		if len(m) == len(known) && asciiEqualFold(m, known) {
			return known
		}
	}
	return strings.ToUpper(m)
}

// watchRequested reports whether the query asks for a watch the way the
// apiserver reads it: the first "watch" parameter, decoded as net/url
// decodes queries, is present and is neither "0" nor "false" (in any case).
// A bare "watch" or "watch=" counts as a watch.
func watchRequested(query string) bool {
	if !strings.Contains(query, "watch") && !strings.Contains(query, "%") {
		return false // fast path: no key can decode to "watch"
	}
	if strings.Count(query, "&")+1 > maxQueryParams {
		return false // net/url gives up on such a query
	}
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue // net/url skips empty pairs and ones holding a ';'
		}
		key, value, _ := strings.Cut(pair, "=")
		if !unescapedEquals(key, "watch", false) {
			continue
		}
		if !validEscapes(value) {
			continue // net/url drops a pair whose value does not decode
		}
		return !unescapedEquals(value, "0", true) && !unescapedEquals(value, "false", true)
	}
	return false
}

// unescapedEquals reports whether s, query-unescaped ('+' is a space,
// %XX a byte), equals want (ASCII case-insensitively if fold). A malformed
// escape never equals.
func unescapedEquals(s, want string, fold bool) bool {
	j := 0
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 3
		case '+':
			c = ' '
			i++
		default:
			i++
		}
		if j >= len(want) {
			return false
		}
		w := want[j]
		if c != w && !(fold && lowerASCII(c) == lowerASCII(w)) {
			return false
		}
		j++
	}
	return j == len(want)
}

// validEscapes reports whether every '%' in s starts a well-formed escape.
func validEscapes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
