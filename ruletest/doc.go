// Package ruletest owns sentinel's rule unit-test format (promtool's
// `test rules` shape with input_spans: see CONTRACT.md, "Rule unit
// tests") and its runner, behind `sentinel test rules`.
//
// It has no evaluation of its own: a test parses its rule files with
// package rules, builds the spans of input_spans as OTLP pdata and hands
// them to the OTLP receivers' own conversion (so request info such as verb,
// resource and scope is derived by the daemon's code), and drives a fresh
// engine per test on a simulated clock, evaluating each group on its own
// schedule. Nothing sleeps: a day of input runs in milliseconds.
//
// Generated spans have deterministic IDs (see TraceID), so a test can name
// the exemplar trace IDs it expects.
package ruletest
