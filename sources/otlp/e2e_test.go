package otlp

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestSDKEndToEnd sends spans with the OpenTelemetry Go SDK's own OTLP
// exporters, over every transport and encoding they offer, and checks what
// the observer gets.
func TestSDKEndToEnd(t *testing.T) {
	exporters := []struct {
		name string
		new  func(ctx context.Context, r *Receiver) (sdktrace.SpanExporter, error)
	}{
		{"grpc", func(ctx context.Context, r *Receiver) (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(r.GRPCAddr().String()), otlptracegrpc.WithInsecure())
		}},
		{"grpc gzip", func(ctx context.Context, r *Receiver) (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(r.GRPCAddr().String()), otlptracegrpc.WithInsecure(),
				otlptracegrpc.WithCompressor("gzip"))
		}},
		{"http protobuf", func(ctx context.Context, r *Receiver) (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(r.HTTPAddr().String()), otlptracehttp.WithInsecure())
		}},
		{"http protobuf gzip", func(ctx context.Context, r *Receiver) (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(r.HTTPAddr().String()), otlptracehttp.WithInsecure(),
				otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}},
		{"http json", func(ctx context.Context, r *Receiver) (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(r.HTTPAddr().String()), otlptracehttp.WithInsecure(),
				otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
		}},
	}
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	type want struct {
		kind     string
		end      time.Duration // after start
		duration time.Duration
		failed   bool
		labels   map[string]string
	}
	wants := map[string]want{
		"GET /api/v1/namespaces/{:name}": {"server", 1375 * time.Millisecond, 1375 * time.Millisecond, false, map[string]string{
			"service.name": "apiserver", "verb": "GET", "resource": "namespaces", "scope": "resource",
			"group": "", "version": "v1", "namespace": "default", "http.status_code": "200", "status.code": "unset",
		}},
		"Get": {"internal", 1300 * time.Millisecond, 1200 * time.Millisecond, false, map[string]string{
			"service.name": "apiserver", "verb": "get", "resource": "namespaces", "span.kind": "internal",
		}},
		"LIST pods": {"server", 30 * time.Second, 30 * time.Second, true, map[string]string{
			"service.name": "apiserver", "verb": "LIST", "resource": "pods", "scope": "namespace",
			"namespace": "kube-system", "http.response.status_code": "504", "status.code": "error",
		}},
	}

	for _, ex := range exporters {
		t.Run(ex.name, func(t *testing.T) {
			o := &recordingObserver{names: []string{
				"service.name", "span.kind", "status.code", "verb", "resource", "scope", "group", "version",
				"namespace", "http.status_code", "http.response.status_code",
			}}
			r := startReceiver(t, Options{Observer: o})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			exp, err := ex.new(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			tp := sdktrace.NewTracerProvider(
				sdktrace.WithSyncer(exp),
				sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "apiserver"))),
			)
			tracer := tp.Tracer("k8s.io/apiserver")

			// Old semantic conventions, as kube-apiserver's otelhttp sends.
			ctx1, server := tracer.Start(ctx, "GET /api/v1/namespaces/{:name}",
				trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
				trace.WithAttributes(
					attribute.String("http.method", "GET"),
					attribute.String("http.target", "/api/v1/namespaces/default"),
					attribute.Int("http.status_code", 200),
				))
			_, internal := tracer.Start(ctx1, "Get", trace.WithTimestamp(start.Add(100*time.Millisecond)),
				trace.WithAttributes(attribute.String("verb", "get"), attribute.String("resource", "namespaces")))
			internal.End(trace.WithTimestamp(start.Add(1300 * time.Millisecond)))
			server.End(trace.WithTimestamp(start.Add(1375 * time.Millisecond)))

			// New semantic conventions, failed.
			_, list := tracer.Start(ctx, "LIST pods",
				trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
				trace.WithAttributes(
					attribute.String("http.request.method", "GET"),
					attribute.String("url.path", "/api/v1/namespaces/kube-system/pods"),
					attribute.String("url.query", "limit=500"),
					attribute.Int("http.response.status_code", 504),
				))
			list.SetStatus(codes.Error, "timeout")
			list.End(trace.WithTimestamp(start.Add(30 * time.Second)))

			if err := tp.Shutdown(ctx); err != nil {
				t.Fatalf("exporter: %v", err)
			}

			ids := map[string]trace.SpanContext{
				"GET /api/v1/namespaces/{:name}": server.SpanContext(),
				"Get":                            internal.SpanContext(),
				"LIST pods":                      list.SpanContext(),
			}
			got := o.all()
			if len(got) != len(wants) {
				t.Fatalf("observed %d spans, want %d", len(got), len(wants))
			}
			for _, s := range got {
				var name string
				for n, sc := range ids {
					if s.obs.SpanID == [8]byte(sc.SpanID()) {
						name = n
					}
				}
				w, ok := wants[name]
				if !ok {
					t.Errorf("unexpected span %x", s.obs.SpanID)
					continue
				}
				if s.obs.TraceID != [16]byte(ids[name].TraceID()) {
					t.Errorf("%s: trace ID %x, want %x", name, s.obs.TraceID, ids[name].TraceID())
				}
				if s.obs.Duration != w.duration || s.obs.Failed != w.failed {
					t.Errorf("%s: duration %v failed %v, want %v %v", name, s.obs.Duration, s.obs.Failed, w.duration, w.failed)
				}
				if s.labels["span.kind"] != w.kind {
					t.Errorf("%s: span.kind %q, want %q", name, s.labels["span.kind"], w.kind)
				}
				if !s.obs.End.Equal(start.Add(w.end)) {
					t.Errorf("%s: end %v, want %v", name, s.obs.End, start.Add(w.end))
				}
				for k, v := range w.labels {
					if gv, ok := s.labels[k]; !ok || gv != v {
						t.Errorf("%s: %s = %q (present %v), want %q", name, k, gv, ok, v)
					}
				}
			}
		})
	}
}
