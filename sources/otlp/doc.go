// Package otlp owns sentinel's OpenTelemetry trace receivers: OTLP/gRPC and
// OTLP/HTTP (protobuf and JSON, optionally gzip- or zstd-compressed)
// endpoints that decode ExportTraceServiceRequests in one pass with package
// otlpwire's wire decoder (views into the request's pooled buffer, checked
// against pdata by a differential fuzz test; JSON goes through pdata
// first) and turn every span into an [engine.Observation] handed to an
// [engine.Observer], and into the trace buffer ([traces.Buffer]) when one
// is given.
//
// It owns the wire protocol (status codes, google.rpc.Status error bodies,
// partial success, back-pressure with 429/RESOURCE_EXHAUSTED when too many
// requests are in flight or their memory budget is spent), what a request
// may cost (Limits: connection timeouts and body deadlines, spans and
// attributes per request checked by package otlpwire in the same pass,
// label values truncated) and the span-to-observation
// conversion: duration,
// failure, trace and span IDs, and a zero-allocation label view over span
// and resource attributes plus the Kubernetes request info derived from the
// apiserver's SERVER spans by package sources/k8s.
//
// It knows nothing about rules, matchers, windows or alerts: whatever asks
// for a label gets it through [engine.Labels].
package otlp
