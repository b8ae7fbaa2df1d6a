// Package deploy holds sentinel's Kubernetes manifests (kustomize), the
// control plane's tracing configuration and the Alertmanager → PagerDuty
// configuration, and, in its tests, what proves them: every object is built
// with kustomize and decoded strictly into the Kubernetes API types, and
// the config and rule pack they carry pass sentinel's own parsers.
//
// It is a module of its own so that kustomize and k8s.io/api stay out of
// sentinel's dependencies. Run its tests with: cd deploy && go test ./...
package deploy
