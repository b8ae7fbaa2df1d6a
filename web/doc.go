// Package web owns sentinel's HTTP API and status page: /api/v1/rules,
// /api/v1/alerts, /api/v1/targets, /-/healthy, /-/ready, POST /-/reload
// (guarded: --web.enable-lifecycle, no cross-origin or browser form
// posts), /metrics, the status page at / and the trace view at
// /trace/{traceID} (with /api/v1/traces/{traceID}), server-rendered from
// templates embedded in the binary: no script, no build step.
//
// It reads the engine's status, the trace store, the scrape targets,
// readiness and the reload through the narrow interfaces and functions of [Options], so it
// knows nothing of how they are wired; cmd/sentinel does the wiring, and
// serves the handler on its listener (TLS and basic auth included).
package web
