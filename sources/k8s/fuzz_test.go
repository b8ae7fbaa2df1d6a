package k8s

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// referenceParse is a plain, allocating rendition of the same rules, written
// the way the apiserver does it (split the path into a slice, parse the
// query with net/url), to cross-check Parse's allocation-free walk.
func referenceParse(method, path, query, contentType string) RequestInfo {
	path, query = splitTarget(path, query)
	method = strings.ToUpper(method)
	info := RequestInfo{Verb: method}

	var parts []string
	if p := strings.Trim(path, "/"); p != "" {
		parts = strings.Split(p, "/")
	}
	if len(parts) < 3 || (parts[0] != "api" && parts[0] != "apis") {
		return info
	}
	prefix := parts[0]
	parts = parts[1:]
	if prefix == "apis" {
		if len(parts) < 3 {
			return info
		}
		info.Group, parts = parts[0], parts[1:]
	}
	info.IsResourceRequest = true
	info.Version, parts = parts[0], parts[1:]

	kubeVerb := ""
	viaPath := false
	if parts[0] == "watch" || parts[0] == "proxy" {
		if len(parts) < 2 {
			info.Scope = ScopeCluster
			info.Verb = referenceMetricVerb(method, "", false, &info, query, contentType)
			return info
		}
		kubeVerb, parts, viaPath = parts[0], parts[1:], true
	} else if method == "POST" {
		kubeVerb = "create"
	}

	if parts[0] == "namespaces" && len(parts) > 1 {
		info.Namespace = parts[1]
		if len(parts) > 2 && !slices.Contains([]string{"status", "finalize"}, parts[2]) {
			parts = parts[2:]
		}
	}
	if len(parts) >= 3 && kubeVerb != "proxy" {
		info.Subresource = parts[2]
	}
	if len(parts) >= 2 {
		info.Name = parts[1]
	}
	info.Resource = parts[0]

	switch {
	case info.Name != "" || kubeVerb == "create":
		info.Scope = ScopeResource
	case info.Namespace != "":
		info.Scope = ScopeNamespace
	default:
		info.Scope = ScopeCluster
	}
	info.Verb = referenceMetricVerb(method, kubeVerb, viaPath, &info, query, contentType)
	return info
}

func referenceMetricVerb(method, kubeVerb string, viaPath bool, info *RequestInfo, query, contentType string) string {
	if method == "" {
		return ""
	}
	if viaPath && kubeVerb == "watch" {
		return VerbWatch
	}
	verb := method
	if method == "GET" || method == "HEAD" {
		verb = VerbList
		if info.Scope == ScopeResource {
			verb = VerbGet
		}
	}
	if method == "GET" {
		if w := url.Values(mustParseQuery(query))["watch"]; len(w) > 0 {
			if v := strings.ToLower(w[0]); v != "0" && v != "false" {
				verb = VerbWatch
			}
		}
	}
	if method == "PATCH" && contentType == "application/apply-patch+yaml" {
		verb = VerbApply
	}
	if method == "DELETE" && info.Name == "" && !viaPath {
		verb = VerbDeleteCollection
	}
	// Only real HTTP methods map to verbs; anything else (even a method
	// spelled like a verb, such as WATCH) is the apiserver's "other".
	if !slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}, method) {
		verb = VerbOther
	}
	if slices.Contains([]string{"log", "exec", "portforward", "attach", "proxy"}, info.Subresource) {
		verb = VerbConnect
	}
	return verb
}

// mustParseQuery is url.ParseQuery keeping whatever parsed, as
// (*url.URL).Query does.
func mustParseQuery(q string) url.Values {
	v, _ := url.ParseQuery(q)
	return v
}

var validVerbs = []string{"GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION", "CONNECT", "other"}

func FuzzParse(f *testing.F) {
	for _, c := range parseCases {
		f.Add(c.method, c.path, c.query, c.ctype)
	}
	for _, s := range [][4]string{
		{"GET", "/api/v1/watch", "", ""},
		{"GET", "/api/v1/proxy", "", ""},
		{"GET", "/apis/g/v/watch", "", ""},
		{"GET", "//api//v1//pods//", "watch=%", ""},
		{"GET", "/api/v1/namespaces/a/b/c/d/e/f/g/h/i/j", "watch=+", ""},
		{"Get", "http://host", "", ""},
		{"DELETE", "/api/v1/namespaces/x/status", "", ""},
		{"GET", "/api/v1/pods", "%77atch=%46ALSE&watch=1", ""},
		{"GET", "/api/v1/pods", "&&watch&", ""},
		{"poſt", "/api/v1/namespaces/ns/pods", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, method, path, query, contentType string) {
		got := Parse(method, path, query, contentType)

		switch got.Scope {
		case "":
			if got.IsResourceRequest {
				t.Fatalf("resource request without scope: %+v", got)
			}
		case ScopeResource, ScopeNamespace, ScopeCluster:
			if !got.IsResourceRequest {
				t.Fatalf("non-resource request with scope: %+v", got)
			}
		default:
			t.Fatalf("scope %q not allowed: %+v", got.Scope, got)
		}
		if method != "" && got.Verb == "" {
			t.Fatalf("empty verb for method %q: %+v", method, got)
		}
		if method == "" && got.Verb != "" {
			t.Fatalf("verb %q for empty method: %+v", got.Verb, got)
		}
		if got.IsResourceRequest && method != "" && !slices.Contains(validVerbs, got.Verb) {
			t.Fatalf("verb %q not a metric verb: %+v", got.Verb, got)
		}
		if !got.IsResourceRequest && (got.Group != "" || got.Version != "" || got.Resource != "" ||
			got.Subresource != "" || got.Namespace != "" || got.Name != "") {
			t.Fatalf("non-resource request with resource fields: %+v", got)
		}
		if got.IsResourceRequest && got.Resource == "" && got.Name != "" && !strings.Contains(path, "//") {
			// (Empty segments, as in /api/v1//name, are kept as the apiserver keeps them.)
			t.Fatalf("name without resource: %+v", got)
		}
		if got.Scope == ScopeResource && got.Name == "" && !strings.EqualFold(method, "POST") {
			t.Fatalf("resource scope for an unnamed non-create: %+v", got)
		}
		for _, s := range []string{got.Group, got.Version, got.Resource, got.Subresource, got.Namespace, got.Name} {
			if strings.Contains(s, "/") || !strings.Contains(path, s) {
				t.Fatalf("field %q is not a path segment of %q: %+v", s, path, got)
			}
		}
		if ref := referenceParse(method, path, query, contentType); ref != got {
			t.Fatalf("Parse(%q, %q, %q, %q)\n got %+v\n ref %+v", method, path, query, contentType, got, ref)
		}
	})
}
