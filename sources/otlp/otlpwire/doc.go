// Package otlpwire reads OTLP trace export requests at the protobuf wire
// level, without decoding them: Scan walks an ExportTraceServiceRequest in
// one pass with google.golang.org/protobuf/encoding/protowire, counts its
// spans and attributes, checks them against Limits and estimates what
// decoding the request with pdata would allocate, so that a receiver can
// refuse a request before it costs anything.
//
// It owns the OTLP trace message layout (field numbers and wire types, the
// deprecated instrumentation_library_spans included); it knows nothing
// about transports, rules or observations. Decoder is the receivers'
// one-pass decoder: the same walk and limits as Scan, every check pdata's
// decoder makes, and span views whose strings point into the request.
package otlpwire
