package otlp

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/klauspost/compress/zstd"

	"github.com/kube-sentinel/sentinel/sources/otlp/otlpwire"
)

// TracesPath is the OTLP/HTTP path that HTTPHandler serves.
const TracesPath = "/v1/traces"

const (
	protobufContentType = "application/x-protobuf"
	jsonContentType     = "application/json"
)

// Machine-readable reasons carried in the google.rpc.ErrorInfo detail of
// error responses, on both transports.
const (
	errorDomain                = "sentinel.otlp"
	reasonMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	reasonUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	reasonUnsupportedEncoding  = "UNSUPPORTED_CONTENT_ENCODING"
	reasonTooLarge             = "REQUEST_TOO_LARGE"
	reasonBadGzip              = "INVALID_GZIP"
	reasonBadZstd              = "INVALID_ZSTD"
	reasonReadFailed           = "BODY_READ_FAILED"
	reasonInvalidProtobuf      = "INVALID_PROTOBUF"
	reasonInvalidJSON          = "INVALID_JSON"
	reasonOverloaded           = "TOO_MANY_CONCURRENT_REQUESTS"
	reasonOverBudget           = "MEMORY_BUDGET_EXHAUSTED"
	reasonTooCostly            = otlpwire.ReasonTooCostly
	reasonBodyTimeout          = "BODY_READ_TIMEOUT"
	reasonClientGone           = "CLIENT_CANCELLED"
)

// statusClientClosedRequest answers (for the logs and the metrics: no one
// reads it) a request whose client went away while it waited, as nginx
// does: not a server error.
const statusClientClosedRequest = 499

type encoding uint8

const (
	encodingNone encoding = iota
	encodingProtobuf
	encodingJSON
)

// encodingOf reads a Content-Type header without allocating (parameters
// such as charset are ignored, as the Collector does).
func encodingOf(contentType string) encoding {
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		contentType = contentType[:i]
	}
	contentType = strings.TrimSpace(contentType)
	switch {
	case strings.EqualFold(contentType, protobufContentType):
		return encodingProtobuf
	case strings.EqualFold(contentType, jsonContentType):
		return encodingJSON
	}
	return encodingNone
}

func (e encoding) contentType() string {
	if e == encodingJSON {
		return jsonContentType
	}
	return protobufContentType
}

func (r *Receiver) newHTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(TracesPath, r.serveTraces)
	return mux
}

func (r *Receiver) serveTraces(w http.ResponseWriter, req *http.Request) {
	enc := encodingOf(req.Header.Get("Content-Type"))
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		r.writeHTTPError(w, enc, http.StatusMethodNotAllowed, codes.Unimplemented, reasonMethodNotAllowed,
			fmt.Sprintf("method %s not allowed, supported: POST", req.Method))
		return
	}
	if enc == encodingNone {
		r.writeHTTPError(w, enc, http.StatusUnsupportedMediaType, codes.InvalidArgument, reasonUnsupportedMediaType,
			fmt.Sprintf("content type %q not supported, supported: %s, %s", req.Header.Get("Content-Type"), protobufContentType, jsonContentType))
		return
	}
	compression, ok := contentEncoding(req.Header.Get("Content-Encoding"))
	if !ok {
		r.writeHTTPError(w, enc, http.StatusUnsupportedMediaType, codes.InvalidArgument, reasonUnsupportedEncoding,
			fmt.Sprintf("content encoding %q not supported, supported: gzip, zstd, identity", req.Header.Get("Content-Encoding")))
		return
	}
	if req.ContentLength > r.opts.MaxRequestBytes {
		r.writeHTTPError(w, enc, http.StatusRequestEntityTooLarge, codes.InvalidArgument, reasonTooLarge,
			fmt.Sprintf("request body of %d bytes is over the limit of %d bytes", req.ContentLength, r.opts.MaxRequestBytes))
		return
	}
	// A place in the queue first: a request beyond it waits with its body
	// unread.
	place, ok := r.queue.take(req.Context())
	if !ok {
		if !r.clientGone(w, enc, req, "a place in the queue") {
			r.refuseHTTPOverloaded(w, enc, r.refuseQueueFullMessage())
		}
		return
	}
	defer place.done()
	// The body has a deadline of its own, so that a client that stalls
	// frees what it holds; a recorder in tests may not support it.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(r.limits.ReadTimeout))

	// Reading holds memory, not a request slot: a body is held against the
	// budget at its declared size; one of unknown size (chunked, or
	// compressed) at what its buffer holds, charged as the buffer grows.
	declared := int64(0)
	if compression == compressionNone && req.ContentLength >= 0 {
		declared = req.ContentLength
	}
	// Reading to the end needs bytes.MinRead bytes beyond the body. A
	// request that waits for its memory holds nothing meanwhile.
	res, ok := r.budget.reserveWaiting(req.Context(), declared+bytes.MinRead, r.limits.MaxQueueWait)
	if !ok {
		if !r.clientGone(w, enc, req, "memory") {
			r.refuseHTTPOverBudget(w, enc)
		}
		return
	}
	// What the body is read into is what it holds: a kept buffer may be
	// larger than the body, and is used only if the budget covers it.
	buf := r.bodies.get()
	if int64(buf.Cap()) > res.n && !res.resize(int64(buf.Cap())) {
		r.bodies.put(buf)
		buf = new(bytes.Buffer)
	}
	defer r.bodies.put(buf)
	defer res.release()
	if status, reason, msg := r.readBody(w, req, compression, buf, &res); status != 0 {
		if reason == reasonOverBudget {
			r.refuseHTTPOverBudget(w, enc)
			return
		}
		if status == http.StatusRequestTimeout {
			r.refusals.refused(time.Now(), reason)
			w.Header().Set("Connection", "close")
		}
		r.writeHTTPError(w, enc, status, codes.InvalidArgument, reason, msg)
		return
	}
	// A compressed body (or one of unknown length) was held at the most
	// it could reach: once read, the request holds what its buffer took.
	if !res.resize(min(int64(buf.Cap()), r.budget.total)) {
		r.refuseHTTPOverBudget(w, enc)
		return
	}

	// The body is read; the request waits its turn to be decoded.
	if !r.acquire(req.Context()) {
		if !r.clientGone(w, enc, req, "a decoding slot") {
			r.refuseHTTPOverloaded(w, enc, r.refuseSlotMessage())
		}
		return
	}
	defer r.release()
	place.done()

	// Protobuf is decoded in one pass into views of the body, which checks
	// the request's limits and estimates what decoding it with pdata would
	// take (the budget's unit); JSON is decoded with pdata once its
	// estimate fits, then re-encoded for the same decoder.
	var (
		c    *converter
		cost int64
	)
	if enc == encodingJSON {
		cost = jsonEstimate(buf.Bytes())
	} else {
		var st otlpwire.Stats
		var err error
		c, st, err = r.decode(buf.Bytes())
		if err != nil {
			reason, msg := scanRefusal(err)
			r.writeHTTPError(w, enc, http.StatusBadRequest, codes.InvalidArgument, reason, msg)
			return
		}
		cost = st.DecodedBytes
	}
	if cost > r.budget.total {
		if c != nil {
			r.discard(c)
		}
		r.writeHTTPError(w, enc, http.StatusBadRequest, codes.InvalidArgument, reasonTooCostly,
			fmt.Sprintf("decoding this request would take about %d bytes, more than the whole budget of %d bytes; send smaller requests", cost, r.budget.total))
		return
	}
	if enc == encodingJSON {
		// pdata decodes JSON into what its estimate bounds: the request
		// holds that. (A protobuf request is decoded into views of its
		// body, which it holds already; the decoder's records are its
		// slot's, reused.)
		if !res.resize(min(max(cost, int64(buf.Cap())), r.budget.total)) {
			r.refuseHTTPOverBudget(w, enc)
			return
		}
		var reason, msg string
		if c, reason, msg = r.decodeJSON(buf.Bytes()); c == nil {
			r.writeHTTPError(w, enc, http.StatusBadRequest, codes.InvalidArgument, reason, msg)
			return
		}
	}
	r.refusals.accepted()

	_, rejected := r.observe(c, transportHTTP)
	resp := exportResponse(rejected)
	var (
		body []byte
		err  error
	)
	if enc == encodingJSON {
		body, err = resp.MarshalJSON()
	} else {
		body, err = resp.MarshalProto()
	}
	if err != nil {
		r.writeHTTPError(w, enc, http.StatusInternalServerError, codes.Internal, "",
			fmt.Sprintf("cannot encode ExportTraceServiceResponse: %v", err))
		return
	}
	r.writeHTTP(w, http.StatusOK, enc.contentType(), body)
}

// decodeJSON decodes an OTLP/JSON body with pdata, checks its limits on
// what was decoded (JSON is not scanned before), and hands the request to
// the wire decoder in protobuf form, so that both encodings share one
// conversion. A nil converter comes with the refusal's reason and message.
func (r *Receiver) decodeJSON(body []byte) (c *converter, reason, msg string) {
	exportReq := ptraceotlp.NewExportRequest()
	if err := exportReq.UnmarshalJSON(body); err != nil {
		return nil, reasonInvalidJSON, fmt.Sprintf("cannot decode ExportTraceServiceRequest: %v", err)
	}
	if reason, msg := r.checkDecoded(exportReq.Traces()); reason != "" {
		return nil, reason, msg
	}
	pb, err := exportReq.MarshalProto()
	if err != nil {
		return nil, reasonInvalidJSON, fmt.Sprintf("cannot re-encode ExportTraceServiceRequest: %v", err)
	}
	c, _, err = r.decode(pb)
	if err != nil {
		reason, msg := scanRefusal(err)
		return nil, reason, msg
	}
	return c, "", ""
}

// exportResponse reports the spans that were not observed as a partial
// success, as the OTLP specification asks.
func exportResponse(rejected int) ptraceotlp.ExportResponse {
	resp := ptraceotlp.NewExportResponse()
	if rejected > 0 {
		ps := resp.PartialSuccess()
		ps.SetRejectedSpans(int64(rejected))
		ps.SetErrorMessage(fmt.Sprintf("%d spans rejected: end time missing, before the start time or out of range", rejected))
	}
	return resp
}

type compression uint8

const (
	compressionNone compression = iota
	compressionGzip
	compressionZstd
)

// contentEncoding tells how a body is compressed; false for an encoding
// that is not supported.
func contentEncoding(ce string) (compression, bool) {
	ce = strings.TrimSpace(ce)
	switch {
	case ce == "", strings.EqualFold(ce, "identity"):
		return compressionNone, true
	case strings.EqualFold(ce, "gzip"), strings.EqualFold(ce, "x-gzip"):
		return compressionGzip, true
	case strings.EqualFold(ce, "zstd"):
		return compressionZstd, true
	}
	return compressionNone, false
}

// readBody reads the request body into buf, decompressing it if needed,
// and never holds more than MaxRequestBytes of it (before and after
// decompression). A non-zero status says why it failed.
func (r *Receiver) readBody(w http.ResponseWriter, req *http.Request, compressed compression, buf *bytes.Buffer, res *reservation) (status int, reason, msg string) {
	limit := r.opts.MaxRequestBytes
	body := http.MaxBytesReader(w, req.Body, limit)
	defer body.Close()

	tooLarge := func() (int, string, string) {
		return http.StatusRequestEntityTooLarge, reasonTooLarge,
			fmt.Sprintf("request body is over the limit of %d bytes", limit)
	}
	var src io.Reader = body
	switch compressed {
	case compressionZstd:
		zr, err := r.getZstdReader(body)
		if err != nil {
			return http.StatusBadRequest, reasonBadZstd, fmt.Sprintf("invalid zstd body: %v", err)
		}
		defer r.putZstdReader(zr)
		src = &io.LimitedReader{R: zr, N: limit + 1}
	case compressionGzip:
		zr, err := r.getGzipReader(body)
		if err != nil {
			if isMaxBytes(err) {
				return tooLarge()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return http.StatusRequestTimeout, reasonBodyTimeout,
					fmt.Sprintf("the request body did not arrive within %s", r.limits.ReadTimeout)
			}
			return http.StatusBadRequest, reasonBadGzip, fmt.Sprintf("invalid gzip body: %v", err)
		}
		defer r.gzipReaders.Put(zr)
		// One byte more than the limit tells a body that is exactly at
		// the limit from one that is over it.
		src = &io.LimitedReader{R: zr, N: limit + 1}
	default:
		if need := int(req.ContentLength) + bytes.MinRead; req.ContentLength > 0 && buf.Cap() < need {
			// Room for the body and the read that finds its end, and no
			// more: growing a smaller pooled buffer would double it.
			*buf = *bytes.NewBuffer(make([]byte, 0, need))
		}
	}
	if err := readBudgeted(buf, src, res, limit); err != nil {
		switch {
		case errors.Is(err, errBodyOverBudget):
			return http.StatusTooManyRequests, reasonOverBudget, ""
		case errors.Is(err, errBodyTooCostly):
			return http.StatusBadRequest, reasonTooCostly,
				fmt.Sprintf("the request body would take more than the whole memory budget of %d bytes", res.b.total)
		case isMaxBytes(err), errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrWindowSizeExceeded):
			return tooLarge()
		case errors.Is(err, os.ErrDeadlineExceeded):
			return http.StatusRequestTimeout, reasonBodyTimeout,
				fmt.Sprintf("the request body did not arrive within %s", r.limits.ReadTimeout)
		case compressed == compressionGzip:
			return http.StatusBadRequest, reasonBadGzip, fmt.Sprintf("invalid gzip body: %v", err)
		case compressed == compressionZstd:
			return http.StatusBadRequest, reasonBadZstd, fmt.Sprintf("invalid zstd body: %v", err)
		default:
			return http.StatusBadRequest, reasonReadFailed, fmt.Sprintf("reading request body: %v", err)
		}
	}
	if int64(buf.Len()) > limit {
		return tooLarge()
	}
	return 0, "", ""
}

// Why readBudgeted stopped growing a body's buffer.
var (
	errBodyOverBudget = errors.New("the requests in flight hold the memory budget")
	errBodyTooCostly  = errors.New("the body alone would take more than the whole memory budget")
)

// readBudgeted reads src to its end into buf (empty), as
// bytes.Buffer.ReadFrom does, except that buf grows only as far as res
// grows with it: errBodyOverBudget when the budget cannot cover the next
// growth now, errBodyTooCostly when it never could. src ends or fails
// past limit bytes, so buf never grows past limit + bytes.MinRead (a body
// that reaches that is left for the caller to find over the limit).
func readBudgeted(buf *bytes.Buffer, src io.Reader, res *reservation, limit int64) error {
	data := buf.AvailableBuffer() // buf's memory, reused
	defer func() { *buf = *bytes.NewBuffer(data) }()
	for {
		if cap(data)-len(data) < bytes.MinRead {
			grown := min(2*int64(cap(data))+bytes.MinRead, limit+bytes.MinRead)
			if grown-int64(len(data)) < bytes.MinRead {
				return nil // over limit: the caller sees buf.Len() > limit
			}
			if !res.resize(max(grown, res.n)) {
				if grown > res.b.total {
					return errBodyTooCostly
				}
				return errBodyOverBudget
			}
			next := make([]byte, len(data), grown)
			copy(next, data)
			data = next
		}
		n, err := src.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (r *Receiver) refuseHTTPOverBudget(w http.ResponseWriter, enc encoding) {
	r.refusals.refused(time.Now(), reasonOverBudget)
	w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
	r.writeHTTPError(w, enc, http.StatusTooManyRequests, codes.ResourceExhausted, reasonOverBudget,
		fmt.Sprintf("the requests in flight hold the memory budget of %d bytes, retry later", r.budget.total))
}

// clientGone answers 499 a request whose client went away while it waited
// for what: not a refusal, and no one reads the answer. False when the
// client is still there.
func (r *Receiver) clientGone(w http.ResponseWriter, enc encoding, req *http.Request, what string) bool {
	if req.Context().Err() == nil {
		return false
	}
	r.writeHTTPError(w, enc, statusClientClosedRequest, codes.Canceled, reasonClientGone,
		"the client went away while its request waited for "+what)
	return true
}

func (r *Receiver) refuseHTTPOverloaded(w http.ResponseWriter, enc encoding, msg string) {
	r.refusals.refused(time.Now(), reasonOverloaded)
	w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
	r.writeHTTPError(w, enc, http.StatusTooManyRequests, codes.ResourceExhausted, reasonOverloaded, msg)
}

func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

func (r *Receiver) getGzipReader(src io.Reader) (*gzip.Reader, error) {
	if zr, ok := r.gzipReaders.Get().(*gzip.Reader); ok {
		if err := zr.Reset(src); err != nil {
			r.gzipReaders.Put(zr)
			return nil, err
		}
		return zr, nil
	}
	return gzip.NewReader(src)
}

// getZstdReader reads a zstd body. Its decoder decodes on the calling
// goroutine (no goroutines of its own to leak) and refuses frames whose
// window would take more than the request limit, so that a small body
// cannot make it allocate more than a body may hold.
func (r *Receiver) getZstdReader(src io.Reader) (*zstd.Decoder, error) {
	if zr, ok := r.zstdReaders.Get().(*zstd.Decoder); ok {
		if err := zr.Reset(src); err != nil {
			r.putZstdReader(zr)
			return nil, err
		}
		return zr, nil
	}
	return zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(uint64(r.opts.MaxRequestBytes)+1), zstd.WithDecoderMaxWindow(uint64(max(min(r.opts.MaxRequestBytes, 64<<20), zstd.MinWindowSize))))
}

func (r *Receiver) putZstdReader(zr *zstd.Decoder) {
	_ = zr.Reset(nil) // drops the reference to the body
	r.zstdReaders.Put(zr)
}

// writeHTTPError answers with a google.rpc.Status in the request's
// encoding, as the OTLP specification asks, or in plain text when the
// request's content type is not one of OTLP's.
func (r *Receiver) writeHTTPError(w http.ResponseWriter, enc encoding, httpStatus int, code codes.Code, reason, msg string) {
	r.log.Debug("OTLP HTTP export refused", "status", httpStatus, "reason", reason, "err", msg)
	r.metrics.refused.WithLabelValues(transportHTTP.String(), reasonLabel(reason)).Inc()
	if enc == encodingNone {
		// The request's encoding is unknown (a 415, or a 405 without a
		// content type): the Collector answers in plain text here, but a
		// google.rpc.Status in JSON is still readable and carries the reason.
		enc = encodingJSON
	}
	body, err := marshalStatus(enc, newStatus(code, reason, msg))
	if err != nil {
		r.log.Error("encoding an OTLP error response", "err", err)
		r.writeHTTP(w, http.StatusInternalServerError, "text/plain; charset=utf-8", []byte(msg+"\n"))
		return
	}
	r.writeHTTP(w, httpStatus, enc.contentType(), body)
}

func (r *Receiver) writeHTTP(w http.ResponseWriter, httpStatus int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body) // nothing to do about a client that went away
	r.metrics.requests.WithLabelValues(transportHTTP.String(), strconv.Itoa(httpStatus)).Inc()
}

// newStatus builds a google.rpc.Status whose message starts with the
// reason and which carries it as an ErrorInfo detail too.
func newStatus(code codes.Code, reason, msg string) *spb.Status {
	// Decoder errors quote the input, which may not be UTF-8, and a
	// protobuf string must be.
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	st := &spb.Status{Code: int32(code), Message: msg}
	if reason != "" {
		st.Message = reason + ": " + msg
		if detail, err := anypb.New(&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain}); err == nil {
			st.Details = append(st.Details, detail)
		}
	}
	return st
}

func marshalStatus(enc encoding, st *spb.Status) ([]byte, error) {
	if enc == encodingJSON {
		return protojson.Marshal(st)
	}
	return proto.Marshal(st)
}
