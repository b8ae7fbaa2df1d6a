package k8s

import (
	"testing"
)

// parseCase is one Parse call and the request info it must return.
type parseCase struct {
	name                       string
	method, path, query, ctype string
	want                       RequestInfo
}

func res(verb, group, version, resource, sub, scope, ns, name string) RequestInfo {
	return RequestInfo{
		IsResourceRequest: true,
		Verb:              verb,
		Group:             group,
		Version:           version,
		Resource:          resource,
		Subresource:       sub,
		Scope:             scope,
		Namespace:         ns,
		Name:              name,
	}
}

func nonres(verb string) RequestInfo { return RequestInfo{Verb: verb} }

// The expected values are the labels kube-apiserver puts on
// apiserver_request_total for the request (see Parse's comment for the one
// deliberate difference, DELETECOLLECTION).
var parseCases = []parseCase{
	// namespaces itself is cluster-scoped.
	{name: "list namespaces", method: "GET", path: "/api/v1/namespaces",
		want: res("LIST", "", "v1", "namespaces", "", "cluster", "", "")},
	{name: "get namespace", method: "GET", path: "/api/v1/namespaces/default",
		want: res("GET", "", "v1", "namespaces", "", "resource", "default", "default")},
	{name: "create namespace", method: "POST", path: "/api/v1/namespaces",
		want: res("POST", "", "v1", "namespaces", "", "resource", "", "")},
	{name: "delete namespace", method: "DELETE", path: "/api/v1/namespaces/team-a",
		want: res("DELETE", "", "v1", "namespaces", "", "resource", "team-a", "team-a")},
	{name: "namespace status", method: "PUT", path: "/api/v1/namespaces/team-a/status",
		want: res("PUT", "", "v1", "namespaces", "status", "resource", "team-a", "team-a")},
	{name: "namespace finalize", method: "PUT", path: "/api/v1/namespaces/team-a/finalize",
		want: res("PUT", "", "v1", "namespaces", "finalize", "resource", "team-a", "team-a")},

	// core group, namespaced and cluster-scoped resources, LIST vs GET.
	{name: "list pods in namespace", method: "GET", path: "/api/v1/namespaces/default/pods",
		want: res("LIST", "", "v1", "pods", "", "namespace", "default", "")},
	{name: "list pods all namespaces", method: "GET", path: "/api/v1/pods",
		want: res("LIST", "", "v1", "pods", "", "cluster", "", "")},
	{name: "get pod", method: "GET", path: "/api/v1/namespaces/default/pods/web-0",
		want: res("GET", "", "v1", "pods", "", "resource", "default", "web-0")},
	{name: "get node", method: "GET", path: "/api/v1/nodes/node-1",
		want: res("GET", "", "v1", "nodes", "", "resource", "", "node-1")},
	{name: "list nodes", method: "GET", path: "/api/v1/nodes",
		want: res("LIST", "", "v1", "nodes", "", "cluster", "", "")},
	{name: "trailing slash", method: "GET", path: "/api/v1/pods/",
		want: res("LIST", "", "v1", "pods", "", "cluster", "", "")},
	{name: "head is a read", method: "HEAD", path: "/api/v1/namespaces/default/configmaps",
		want: res("LIST", "", "v1", "configmaps", "", "namespace", "default", "")},
	{name: "head one", method: "HEAD", path: "/api/v1/namespaces/default/configmaps/c",
		want: res("GET", "", "v1", "configmaps", "", "resource", "default", "c")},
	{name: "method case-insensitive", method: "get", path: "/api/v1/namespaces/default/pods",
		want: res("LIST", "", "v1", "pods", "", "namespace", "default", "")},

	// named groups.
	{name: "list deployments", method: "GET", path: "/apis/apps/v1/namespaces/kube-system/deployments",
		want: res("LIST", "apps", "v1", "deployments", "", "namespace", "kube-system", "")},
	{name: "list deployments all namespaces", method: "GET", path: "/apis/apps/v1/deployments",
		want: res("LIST", "apps", "v1", "deployments", "", "cluster", "", "")},
	{name: "get deployment", method: "GET", path: "/apis/apps/v1/namespaces/kube-system/deployments/coredns",
		want: res("GET", "apps", "v1", "deployments", "", "resource", "kube-system", "coredns")},
	{name: "update scale", method: "PUT", path: "/apis/apps/v1/namespaces/ns/deployments/d/scale",
		want: res("PUT", "apps", "v1", "deployments", "scale", "resource", "ns", "d")},
	{name: "lease update", method: "PUT", path: "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1",
		want: res("PUT", "coordination.k8s.io", "v1", "leases", "", "resource", "kube-node-lease", "node-1")},
	{name: "cluster-scoped group resource", method: "GET", path: "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
		want: res("GET", "rbac.authorization.k8s.io", "v1", "clusterroles", "", "resource", "", "admin")},
	{name: "custom resource", method: "GET", path: "/apis/example.com/v1alpha1/namespaces/ns/widgets",
		want: res("LIST", "example.com", "v1alpha1", "widgets", "", "namespace", "ns", "")},

	// WATCH: ?watch=..., and the deprecated /watch/ prefix.
	{name: "watch=true", method: "GET", path: "/api/v1/namespaces/default/pods", query: "watch=true",
		want: res("WATCH", "", "v1", "pods", "", "namespace", "default", "")},
	{name: "watch=1", method: "GET", path: "/api/v1/pods", query: "watch=1",
		want: res("WATCH", "", "v1", "pods", "", "cluster", "", "")},
	{name: "watch among others", method: "GET", path: "/api/v1/pods",
		query: "allowWatchBookmarks=true&resourceVersion=12345&timeout=7m3s&timeoutSeconds=423&watch=true",
		want:  res("WATCH", "", "v1", "pods", "", "cluster", "", "")},
	{name: "bare watch", method: "GET", path: "/api/v1/pods", query: "watch",
		want: res("WATCH", "", "v1", "pods", "", "cluster", "", "")},
	{name: "watch=false", method: "GET", path: "/api/v1/pods", query: "watch=false",
		want: res("LIST", "", "v1", "pods", "", "cluster", "", "")},
	{name: "watch=FALSE", method: "GET", path: "/api/v1/pods", query: "watch=FALSE",
		want: res("LIST", "", "v1", "pods", "", "cluster", "", "")},
	{name: "watch=0", method: "GET", path: "/api/v1/pods", query: "watch=0",
		want: res("LIST", "", "v1", "pods", "", "cluster", "", "")},
	{name: "first watch wins", method: "GET", path: "/api/v1/pods", query: "watch=0&watch=1",
		want: res("LIST", "", "v1", "pods", "", "cluster", "", "")},
	{name: "escaped watch key and value", method: "GET", path: "/api/v1/pods", query: "wat%63h=%74rue",
		want: res("WATCH", "", "v1", "pods", "", "cluster", "", "")},
	{name: "malformed escape drops the pair", method: "GET", path: "/api/v1/pods", query: "watch=tr%u",
		want: res("LIST", "", "v1", "pods", "", "cluster", "", "")},
	{name: "semicolon drops the pair", method: "GET", path: "/api/v1/pods", query: "watch=1;limit=5",
		want: res("LIST", "", "v1", "pods", "", "cluster", "", "")},
	{name: "watchlist is not watch", method: "GET", path: "/api/v1/pods", query: "watchList=true",
		want: res("LIST", "", "v1", "pods", "", "cluster", "", "")},
	{name: "query carried in path", method: "GET", path: "/api/v1/namespaces/default/pods?watch=true&resourceVersion=1",
		want: res("WATCH", "", "v1", "pods", "", "namespace", "default", "")},
	{name: "explicit query wins", method: "GET", path: "/api/v1/pods?watch=true", query: "limit=500",
		want: res("LIST", "", "v1", "pods", "", "cluster", "", "")},
	{name: "watch one object", method: "GET", path: "/api/v1/namespaces/default/pods/web-0", query: "fieldSelector=metadata.name%3Dweb-0&watch=true",
		want: res("WATCH", "", "v1", "pods", "", "resource", "default", "web-0")},
	{name: "watch query on non-GET", method: "DELETE", path: "/api/v1/namespaces/default/pods/web-0", query: "watch=true",
		want: res("DELETE", "", "v1", "pods", "", "resource", "default", "web-0")},
	{name: "watch path namespaced", method: "GET", path: "/api/v1/watch/namespaces/default/pods",
		want: res("WATCH", "", "v1", "pods", "", "namespace", "default", "")},
	{name: "watch path cluster", method: "GET", path: "/api/v1/watch/pods",
		want: res("WATCH", "", "v1", "pods", "", "cluster", "", "")},
	{name: "watch path one object", method: "GET", path: "/api/v1/watch/namespaces/default/pods/web-0",
		want: res("WATCH", "", "v1", "pods", "", "resource", "default", "web-0")},
	{name: "watch path namespaces", method: "GET", path: "/api/v1/watch/namespaces",
		want: res("WATCH", "", "v1", "namespaces", "", "cluster", "", "")},
	{name: "watch path one namespace", method: "GET", path: "/api/v1/watch/namespaces/default",
		want: res("WATCH", "", "v1", "namespaces", "", "resource", "default", "default")},
	{name: "watch path group", method: "GET", path: "/apis/apps/v1/watch/namespaces/ns/deployments",
		want: res("WATCH", "apps", "v1", "deployments", "", "namespace", "ns", "")},

	// subresources.
	{name: "status patch", method: "PATCH", path: "/api/v1/namespaces/default/pods/web-0/status",
		want: res("PATCH", "", "v1", "pods", "status", "resource", "default", "web-0")},
	{name: "status get", method: "GET", path: "/apis/apps/v1/namespaces/ns/deployments/d/status",
		want: res("GET", "apps", "v1", "deployments", "status", "resource", "ns", "d")},
	{name: "eviction", method: "POST", path: "/api/v1/namespaces/default/pods/web-0/eviction",
		want: res("POST", "", "v1", "pods", "eviction", "resource", "default", "web-0")},
	{name: "binding", method: "POST", path: "/api/v1/namespaces/default/pods/web-0/binding",
		want: res("POST", "", "v1", "pods", "binding", "resource", "default", "web-0")},
	{name: "token request", method: "POST", path: "/api/v1/namespaces/default/serviceaccounts/default/token",
		want: res("POST", "", "v1", "serviceaccounts", "token", "resource", "default", "default")},

	// CONNECT: upstream reports it for the streaming subresources log, exec,
	// attach, portforward and proxy whatever the method.
	{name: "exec", method: "POST", path: "/api/v1/namespaces/default/pods/web-0/exec", query: "command=sh&stdin=true&tty=true",
		want: res("CONNECT", "", "v1", "pods", "exec", "resource", "default", "web-0")},
	{name: "exec via GET (websocket)", method: "GET", path: "/api/v1/namespaces/default/pods/web-0/exec", query: "command=ls",
		want: res("CONNECT", "", "v1", "pods", "exec", "resource", "default", "web-0")},
	{name: "attach", method: "POST", path: "/api/v1/namespaces/default/pods/web-0/attach",
		want: res("CONNECT", "", "v1", "pods", "attach", "resource", "default", "web-0")},
	{name: "portforward", method: "POST", path: "/api/v1/namespaces/default/pods/web-0/portforward",
		want: res("CONNECT", "", "v1", "pods", "portforward", "resource", "default", "web-0")},
	{name: "log", method: "GET", path: "/api/v1/namespaces/default/pods/web-0/log", query: "container=app&follow=true",
		want: res("CONNECT", "", "v1", "pods", "log", "resource", "default", "web-0")},
	{name: "service proxy", method: "GET", path: "/api/v1/namespaces/monitoring/services/https:prometheus:9090/proxy/api/v1/query",
		want: res("CONNECT", "", "v1", "services", "proxy", "resource", "monitoring", "https:prometheus:9090")},
	{name: "node proxy", method: "GET", path: "/api/v1/nodes/node-1/proxy/metrics",
		want: res("CONNECT", "", "v1", "nodes", "proxy", "resource", "", "node-1")},
	{name: "deprecated proxy prefix has no subresource", method: "GET", path: "/api/v1/proxy/namespaces/ns/pods/p/healthz",
		want: res("GET", "", "v1", "pods", "", "resource", "ns", "p")},

	// APPLY.
	{name: "server-side apply", method: "PATCH", path: "/apis/apps/v1/namespaces/ns/deployments/d", query: "fieldManager=kubectl&force=true",
		ctype: "application/apply-patch+yaml",
		want:  res("APPLY", "apps", "v1", "deployments", "", "resource", "ns", "d")},
	{name: "apply status", method: "patch", path: "/apis/apps/v1/namespaces/ns/deployments/d/status",
		ctype: "application/apply-patch+yaml",
		want:  res("APPLY", "apps", "v1", "deployments", "status", "resource", "ns", "d")},
	{name: "merge patch", method: "PATCH", path: "/apis/apps/v1/namespaces/ns/deployments/d",
		ctype: "application/merge-patch+json",
		want:  res("PATCH", "apps", "v1", "deployments", "", "resource", "ns", "d")},
	{name: "strategic merge patch", method: "PATCH", path: "/api/v1/nodes/node-1",
		ctype: "application/strategic-merge-patch+json",
		want:  res("PATCH", "", "v1", "nodes", "", "resource", "", "node-1")},
	{name: "apply content type on POST", method: "POST", path: "/api/v1/namespaces/ns/configmaps",
		ctype: "application/apply-patch+yaml",
		want:  res("POST", "", "v1", "configmaps", "", "resource", "ns", "")},

	// DELETE vs DELETECOLLECTION.
	{name: "delete one", method: "DELETE", path: "/api/v1/namespaces/ns/pods/web-0",
		want: res("DELETE", "", "v1", "pods", "", "resource", "ns", "web-0")},
	{name: "delete collection namespaced", method: "DELETE", path: "/api/v1/namespaces/ns/pods", query: "labelSelector=app%3Dweb",
		want: res("DELETECOLLECTION", "", "v1", "pods", "", "namespace", "ns", "")},
	{name: "delete collection cluster", method: "DELETE", path: "/apis/rbac.authorization.k8s.io/v1/clusterroles",
		want: res("DELETECOLLECTION", "rbac.authorization.k8s.io", "v1", "clusterroles", "", "cluster", "", "")},

	// POST create is resource-scoped (CleanScope).
	{name: "create pod", method: "POST", path: "/api/v1/namespaces/default/pods",
		want: res("POST", "", "v1", "pods", "", "resource", "default", "")},
	{name: "create cluster-scoped", method: "POST", path: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
		want: res("POST", "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "", "resource", "", "")},
	{name: "create token review", method: "POST", path: "/apis/authentication.k8s.io/v1/tokenreviews",
		want: res("POST", "authentication.k8s.io", "v1", "tokenreviews", "", "resource", "", "")},
	{name: "update", method: "PUT", path: "/api/v1/namespaces/default/configmaps/c",
		want: res("PUT", "", "v1", "configmaps", "", "resource", "default", "c")},

	// Unknown and missing methods.
	{name: "unknown method on a resource", method: "OPTIONS", path: "/api/v1/pods",
		want: res("other", "", "v1", "pods", "", "cluster", "", "")},
	{name: "no method", method: "", path: "/api/v1/namespaces/default/pods/web-0",
		want: res("", "", "v1", "pods", "", "resource", "default", "web-0")},

	// Target forms.
	{name: "absolute-form target", method: "GET", path: "https://10.96.0.1:443/api/v1/namespaces/default?timeout=32s",
		want: res("GET", "", "v1", "namespaces", "", "resource", "default", "default")},
	{name: "fragment dropped", method: "GET", path: "/api/v1/pods#frag",
		want: res("LIST", "", "v1", "pods", "", "cluster", "", "")},

	// Non-resource requests.
	{name: "healthz", method: "GET", path: "/healthz", want: nonres("GET")},
	{name: "livez check", method: "GET", path: "/livez/etcd", want: nonres("GET")},
	{name: "readyz", method: "GET", path: "/readyz", query: "verbose", want: nonres("GET")},
	{name: "metrics", method: "GET", path: "/metrics", want: nonres("GET")},
	{name: "version", method: "GET", path: "/version", want: nonres("GET")},
	{name: "api", method: "GET", path: "/api", want: nonres("GET")},
	{name: "api version", method: "GET", path: "/api/v1", want: nonres("GET")},
	{name: "apis", method: "GET", path: "/apis", want: nonres("GET")},
	{name: "apis group", method: "GET", path: "/apis/apps", want: nonres("GET")},
	{name: "apis group version", method: "GET", path: "/apis/apps/v1", want: nonres("GET")},
	{name: "openapi v2", method: "GET", path: "/openapi/v2", want: nonres("GET")},
	{name: "openapi v3", method: "GET", path: "/openapi/v3/apis/apps/v1", want: nonres("GET")},
	{name: "root", method: "GET", path: "/", want: nonres("GET")},
	{name: "empty path", method: "get", path: "", want: nonres("GET")},
	{name: "non-resource post", method: "post", path: "/logs", want: nonres("POST")},
	{name: "non-resource unknown method", method: "propfind", path: "/healthz", want: nonres("PROPFIND")},
}

func TestParse(t *testing.T) {
	for _, c := range parseCases {
		t.Run(c.name, func(t *testing.T) {
			got := Parse(c.method, c.path, c.query, c.ctype)
			if got != c.want {
				t.Errorf("Parse(%q, %q, %q, %q)\n got  %+v\n want %+v", c.method, c.path, c.query, c.ctype, got, c.want)
			}
			// The straightforward reference implementation agrees.
			if ref := referenceParse(c.method, c.path, c.query, c.ctype); ref != got {
				t.Errorf("reference disagrees:\n ref %+v\n got %+v", ref, got)
			}
		})
	}
}

var allocPaths = []struct{ method, path, query, ctype string }{
	{"GET", "/api/v1/namespaces/default", "", ""},
	{"GET", "/api/v1/namespaces/default/pods", "limit=500&resourceVersion=0", ""},
	{"GET", "/api/v1/pods?allowWatchBookmarks=true&resourceVersion=123&watch=true", "", ""},
	{"get", "/apis/apps/v1/watch/namespaces/kube-system/deployments", "", ""},
	{"PATCH", "/apis/apps/v1/namespaces/ns/deployments/d/status", "fieldManager=x", "application/apply-patch+yaml"},
	{"POST", "/api/v1/namespaces/default/pods/web-0/exec", "command=ls", ""},
	{"DELETE", "/api/v1/namespaces/ns/pods", "labelSelector=app%3Dweb", ""},
	{"PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1", "timeout=10s", ""},
	{"GET", "/healthz", "", ""},
	{"GET", "https://10.96.0.1:443/api/v1/nodes/node-1?timeout=10s", "", ""},
}

func TestParseDoesNotAllocate(t *testing.T) {
	for _, p := range allocPaths {
		var sink RequestInfo
		allocs := testing.AllocsPerRun(100, func() {
			sink = Parse(p.method, p.path, p.query, p.ctype)
		})
		if allocs != 0 {
			t.Errorf("Parse(%q, %q, %q, %q): %v allocs/op, want 0", p.method, p.path, p.query, p.ctype, allocs)
		}
		_ = sink
	}
}

var benchSink RequestInfo

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := allocPaths[i%len(allocPaths)]
		benchSink = Parse(p.method, p.path, p.query, p.ctype)
	}
}
