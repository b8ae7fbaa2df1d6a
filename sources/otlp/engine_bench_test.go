package otlp

import (
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-sentinel/sentinel/engine"
	"github.com/kube-sentinel/sentinel/rules"
)

func benchEngine(b *testing.B) *engine.Engine {
	b.Helper()
	groups, err := rules.ParseFile("testdata/bench_rules.yaml", rules.Options{})
	if err != nil {
		b.Fatal(err)
	}
	e, err := engine.New(engine.Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	e.Load(&rules.Set{Groups: groups})
	return e
}

// BenchmarkOTLPHTTPEngine is BenchmarkOTLPHTTP/protobuf with the real
// engine and ten rules behind it: decode + convert + ingest, to set beside
// BenchmarkUnmarshalProto.
func BenchmarkOTLPHTTPEngine(b *testing.B) {
	body := marshalTraces(b, apiserverTraces(rand.New(rand.NewPCG(1, 2)), benchSpans), false)
	r, _ := newTestReceiver(b, Options{Observer: benchEngine(b)})
	postLoop(b, r.HTTPHandler(), body, protobufContentType)
}

// BenchmarkConvertEngine is decoded spans into the engine: conversion and
// ingest, no decoding.
func BenchmarkConvertEngine(b *testing.B) {
	td := apiserverTraces(rand.New(rand.NewPCG(1, 2)), benchSpans)
	e := benchEngine(b)
	c := newPDataConverter(DefaultLimits().MaxAttributeValueBytes, nil)
	c.convert(td, e) // open the groups: steady state is what is measured
	b.ReportAllocs()
	for b.Loop() {
		c.convert(td, e)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSpans), "ns/span")
	b.ReportMetric(float64(testing.AllocsPerRun(10, func() { c.convert(td, e) }))/benchSpans, "allocs/span")
}
