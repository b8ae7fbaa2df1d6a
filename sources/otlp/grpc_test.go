package otlp

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// bytesCodec lets a test client send arbitrary bytes as the request.
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (bytesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (bytesCodec) Name() string { return "proto" }

func startReceiver(t *testing.T, opts Options) *Receiver {
	t.Helper()
	opts.GRPCAddress, opts.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
	r, _ := newTestReceiver(t, opts)
	serveReceiver(t, r)
	return r
}

// serveReceiver starts r and shuts it down when the test ends.
func serveReceiver(t *testing.T, r *Receiver) {
	t.Helper()
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

func dial(t *testing.T, r *Receiver) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(r.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func errorInfoReason(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

func TestGRPCExport(t *testing.T) {
	o := &recordingObserver{names: []string{"service.name", "verb", "resource"}}
	r := startReceiver(t, Options{Observer: o})
	client := ptraceotlp.NewGRPCClient(dial(t, r))
	td := apiserverTraces(rand.New(rand.NewPCG(11, 12)), 20)
	bad := td.ResourceSpans().At(1).ScopeSpans().At(0).Spans().AppendEmpty()
	bad.SetStartTimestamp(2)
	bad.SetEndTimestamp(1)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, opts := range [][]grpc.CallOption{nil, {grpc.UseCompressor(gzip.Name)}} {
		resp, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td), opts...)
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		if got := resp.PartialSuccess().RejectedSpans(); got != 1 {
			t.Errorf("rejected %d spans, want 1", got)
		}
	}
	if got := len(o.all()); got != 40 {
		t.Errorf("observed %d spans, want 40", got)
	}
	servers := 0
	for _, s := range o.all() {
		if s.labels["service.name"] == "apiserver" && s.labels["verb"] != "" && s.labels["verb"] != "get" {
			servers++
		}
	}
	if servers != 10 {
		t.Errorf("%d apiserver spans with a derived verb, want 10", servers)
	}
	if got := testutil.ToFloat64(r.metrics.requests.WithLabelValues("grpc", "OK")); got != 2 {
		t.Errorf("requests{grpc,OK} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(r.metrics.received.WithLabelValues("grpc")); got != 42 {
		t.Errorf("spans received %v, want 42", got)
	}
	if got := testutil.ToFloat64(r.metrics.rejected.WithLabelValues("grpc", reasonInvalidTime)); got != 2 {
		t.Errorf("spans rejected %v, want 2", got)
	}
}

func TestGRPCMalformed(t *testing.T) {
	const limit = 64 << 10
	o := &countingObserver{}
	r := startReceiver(t, Options{Observer: o, MaxRequestBytes: limit})
	conn := dial(t, r)
	good := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(13, 14)), 8), false)
	oversized := marshalTraces(t, apiserverTraces(rand.New(rand.NewPCG(13, 14)), 2000), false)

	tests := []struct {
		name       string
		body       []byte
		wantCode   codes.Code
		wantReason string
	}{
		{"garbage", []byte("this is not a protobuf message"), codes.InvalidArgument, reasonInvalidProtobuf},
		{"truncated", good[:len(good)/2], codes.InvalidArgument, reasonInvalidProtobuf},
		{"JSON", []byte(`{"resourceSpans":[]}`), codes.InvalidArgument, reasonInvalidProtobuf},
		// gRPC itself refuses a message over MaxRecvMsgSize.
		{"oversized", oversized, codes.ResourceExhausted, ""},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out []byte
			in := tt.body
			err := conn.Invoke(ctx, exportFullMethod, &in, &out, grpc.ForceCodecV2(bytesCodec{}))
			st := status.Convert(err)
			if st.Code() != tt.wantCode {
				t.Fatalf("code %v (%q), want %v", st.Code(), st.Message(), tt.wantCode)
			}
			if tt.wantReason != "" {
				if got := errorInfoReason(st); got != tt.wantReason {
					t.Errorf("reason %q, want %q", got, tt.wantReason)
				}
				if !strings.HasPrefix(st.Message(), tt.wantReason+": ") {
					t.Errorf("message %q", st.Message())
				}
			}

			// The receiver keeps serving, on the same connection.
			before := o.n.Load()
			in = good
			if err := conn.Invoke(ctx, exportFullMethod, &in, &out, grpc.ForceCodecV2(bytesCodec{})); err != nil {
				t.Fatalf("good request after %s: %v", tt.name, err)
			}
			resp := ptraceotlp.NewExportResponse()
			if err := resp.UnmarshalProto(out); err != nil {
				t.Fatalf("response: %v", err)
			}
			if got := o.n.Load() - before; got != 8 {
				t.Errorf("observed %d spans, want 8", got)
			}
		})
	}
	if got := testutil.ToFloat64(r.metrics.requests.WithLabelValues("grpc", "InvalidArgument")); got != 3 {
		t.Errorf("requests{grpc,InvalidArgument} = %v, want 3", got)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without an observer succeeded")
	}
	if _, err := New(Options{Observer: &countingObserver{}, MaxRequestBytes: -1}); err == nil {
		t.Error("New with a negative size limit succeeded")
	}
	r, err := New(Options{Observer: &countingObserver{}})
	if err != nil {
		t.Fatal(err)
	}
	if r.opts.MaxRequestBytes != DefaultMaxRequestBytes || cap(r.inFlight) <= 0 {
		t.Errorf("defaults: %d bytes, %d requests", r.opts.MaxRequestBytes, cap(r.inFlight))
	}
	if r.GRPCAddr() != nil || r.HTTPAddr() != nil {
		t.Error("addresses before Start")
	}
	// Two receivers cannot share a registry: the second one says so.
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Observer: &countingObserver{}, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Observer: &countingObserver{}, Registerer: reg}); err == nil {
		t.Error("second receiver on one registry succeeded")
	}
}
