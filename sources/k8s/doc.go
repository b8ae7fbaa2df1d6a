// Package k8s derives the kube-apiserver's request info (verb, API group,
// version, resource, subresource, scope, namespace and name) from a
// request's HTTP method, URL path, query and content type, the way the
// apiserver's RequestInfo resolver and its metrics label cleaning do, so
// that values derived from spans equal the labels of the apiserver's own
// metrics (apiserver_request_total, apiserver_request_duration_seconds).
//
// The package owns only that derivation. It knows nothing of spans,
// attributes, matchers or rules: callers pick the method and path out of
// whatever they observe and call [Parse].
package k8s
