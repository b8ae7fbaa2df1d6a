package otlp

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	grpcencoding "google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // clients may compress with gzip
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The OTLP trace service, as in
// opentelemetry/proto/collector/trace/v1/trace_service.proto.
const (
	traceServiceName  = "opentelemetry.proto.collector.trace.v1.TraceService"
	exportFullMethod  = "/" + traceServiceName + "/Export"
	traceServiceProto = "opentelemetry/proto/collector/trace/v1/trace_service.proto"
)

// Why the receiver does not use ptraceotlp.RegisterGRPCServer: with it,
// gRPC decodes the request before any code of ours runs, so a malformed
// message is answered with codes.Internal ("failed to unmarshal"), which
// tells the client to blame the server, and an overloaded receiver decodes
// a request before refusing it. Instead the service below receives the
// message as raw bytes (rawCodec), takes a request slot, and only then
// decodes with ptraceotlp.ExportRequest.UnmarshalProto, the same decoder
// (and the same migration of deprecated fields) that RegisterGRPCServer
// uses. The wire protocol is unchanged.

// traceService is the HandlerType of the service description.
type traceService interface {
	export(ctx context.Context, req *rawMessage) (*rawMessage, error)
}

var traceServiceDesc = grpc.ServiceDesc{
	ServiceName: traceServiceName,
	HandlerType: (*traceService)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Export",
		Handler:    exportHandler,
	}},
	Metadata: traceServiceProto,
}

func exportHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(rawMessage)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(traceService).export(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: exportFullMethod}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return srv.(traceService).export(ctx, req.(*rawMessage))
	})
}

// rawMessage is an undecoded protobuf message: a request as received, or a
// response already encoded.
type rawMessage struct {
	buf mem.Buffer
}

// rawCodec passes rawMessages through as bytes and leaves every other
// message to gRPC's protobuf codec.
type rawCodec struct {
	proto grpcencoding.CodecV2
}

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{m.buf}, nil
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawMessage); ok {
		// Takes a reference (no copy) when the message came in one piece.
		m.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (rawCodec) Name() string { return grpcproto.Name }

// grpcTraceService implements traceService for a Receiver.
type grpcTraceService struct{ r *Receiver }

func (r *Receiver) newGRPCServer() *grpc.Server {
	opts := append(r.grpcServerOptions(),
		grpc.ForceServerCodecV2(rawCodec{proto: grpcencoding.GetCodecV2(grpcproto.Name)}),
		grpc.InTapHandle(r.grpcTap),
	)
	if r.opts.GRPCTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(r.opts.GRPCTLS)))
	}
	s := grpc.NewServer(opts...)
	s.RegisterService(&traceServiceDesc, grpcTraceService{r})
	return s
}

const maxInt = int(^uint(0) >> 1)

// grpcTap refuses an export before its message is read when the memory
// budget is spent; export still takes its share of the budget itself,
// since another request may win the race for it.
func (r *Receiver) grpcTap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != exportFullMethod {
		return ctx, nil
	}
	if r.budget.inUse.Load() >= r.budget.total {
		return ctx, r.overloaded(reasonOverBudget, fmt.Sprintf("the requests in flight hold the memory budget of %d bytes, retry later", r.budget.total))
	}
	return ctx, nil
}

// overloaded is RESOURCE_EXHAUSTED with a RetryInfo, which tells OTLP
// clients that they may retry.
func (r *Receiver) overloaded(reason, msg string) error {
	r.refusals.refused(time.Now(), reason)
	st := status.New(codes.ResourceExhausted, reason+": "+msg)
	if detailed, err := st.WithDetails(
		&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)},
		&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain},
	); err == nil {
		st = detailed
	}
	r.countGRPC(codes.ResourceExhausted)
	r.metrics.refused.WithLabelValues(transportGRPC.String(), reason).Inc()
	return st.Err()
}

// invalid is INVALID_ARGUMENT, which tells clients not to retry.
func (r *Receiver) invalid(reason, msg string) error {
	r.countGRPC(codes.InvalidArgument)
	r.metrics.refused.WithLabelValues(transportGRPC.String(), reason).Inc()
	r.log.Debug("OTLP gRPC export refused", "code", codes.InvalidArgument, "reason", reason, "err", msg)
	st := status.New(codes.InvalidArgument, reason+": "+strings.ToValidUTF8(msg, "\uFFFD"))
	if detailed, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain}); derr == nil {
		st = detailed
	}
	return st.Err()
}

func (r *Receiver) countGRPC(code codes.Code) {
	r.metrics.requests.WithLabelValues(transportGRPC.String(), code.String()).Inc()
}

// grpcClientGone answers a request whose client went away (cancelled or
// past its deadline) while it waited: not a refusal.
func (r *Receiver) grpcClientGone(ctxErr error) error {
	st := status.FromContextError(ctxErr)
	r.countGRPC(st.Code())
	return st.Err()
}

func (s grpcTraceService) export(ctx context.Context, in *rawMessage) (*rawMessage, error) {
	r := s.r
	defer in.buf.Free()
	// The message is read: it holds its bytes against the budget while it
	// waits its turn to be decoded, then what decoding it takes.
	// gRPC may have copied a message that came in several frames into a
	// larger pooled buffer: the request holds that buffer's capacity.
	data := in.buf.ReadOnlyData()
	res, ok := r.budget.reserve(int64(cap(data)))
	if !ok {
		return nil, r.overloaded(reasonOverBudget, fmt.Sprintf("the requests in flight hold the memory budget of %d bytes, retry later", r.budget.total))
	}
	defer res.release()
	// Its place in the queue, then its turn.
	place, ok := r.queue.take(ctx)
	if !ok {
		if err := ctx.Err(); err != nil {
			return nil, r.grpcClientGone(err)
		}
		return nil, r.overloaded(reasonOverloaded, r.refuseQueueFullMessage())
	}
	defer place.done()
	if !r.acquire(ctx) {
		if err := ctx.Err(); err != nil {
			return nil, r.grpcClientGone(err)
		}
		return nil, r.overloaded(reasonOverloaded, r.refuseSlotMessage())
	}
	defer r.release()
	place.done()

	// One pass decodes the request into views of its bytes, which the
	// request holds already, and checks its limits; what pdata would take
	// to decode it bounds what a request may cost on either encoding.
	c, st, err := r.decode(data)
	if err != nil {
		return nil, r.invalid(scanRefusal(err))
	}
	if st.DecodedBytes > r.budget.total {
		r.discard(c)
		return nil, r.invalid(reasonTooCostly, fmt.Sprintf("decoding this request would take about %d bytes, more than the whole budget of %d bytes; send smaller requests", st.DecodedBytes, r.budget.total))
	}

	r.refusals.accepted()
	_, rejected := r.observe(c, transportGRPC)
	body, err := exportResponse(rejected).MarshalProto()
	if err != nil {
		r.countGRPC(codes.Internal)
		return nil, status.Errorf(codes.Internal, "cannot encode ExportTraceServiceResponse: %v", err)
	}
	r.countGRPC(codes.OK)
	return &rawMessage{buf: mem.SliceBuffer(body)}, nil
}
