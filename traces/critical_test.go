package traces

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kube-sentinel/sentinel/internal/golden"
)

const (
	get   = "GET /api/v1/namespaces/{:name}"
	rng   = "etcdserverpb.KV/Range"
	apis  = "apiserver"
	etcd  = "etcd"
	hook  = "policy-webhook"
	inner = "Get"
)

func TestCriticalPath(t *testing.T) {
	cases := []struct {
		name  string
		spans []s
	}{
		{"sequential_children", []s{
			{1, 0, apis, get, KindServer, 0, 100, nil},
			{2, 1, apis, "authorize", KindInternal, 10, 30, nil},
			{3, 1, etcd, rng, KindServer, 40, 90, nil},
		}},
		{"overlapping_children", []s{
			// 2 overlaps 3, which ends later: 2 ends after 3 starts, so it
			// is off the path; 4 ends before 3 starts and is on it.
			{1, 0, apis, get, KindServer, 0, 100, nil},
			{2, 1, apis, "a", KindInternal, 10, 60, nil},
			{3, 1, apis, "b", KindInternal, 30, 90, nil},
			{4, 1, apis, "c", KindInternal, 5, 20, nil},
		}},
		{"child_longer_than_parent", []s{
			// clock skew: 2 ends after the root, 3 starts before its parent
			// and ends after the root; 4 lies wholly after the root.
			{1, 0, apis, get, KindServer, 0, 100, nil},
			{2, 1, apis, inner, KindInternal, 50, 130, nil},
			{3, 2, etcd, rng, KindServer, 40, 140, nil},
			{4, 1, etcd, rng, KindServer, 110, 120, nil},
		}},
		{"missing_parent", []s{
			// 3's parent (the INTERNAL span 2) has not arrived: 3 and its
			// child are walked as the root's.
			{1, 0, apis, get, KindServer, 0, 100, nil},
			{3, 2, apis, rng, KindClient, 20, 80, nil},
			{4, 3, etcd, rng, KindServer, 30, 70, nil},
		}},
		{"client_server_across_services", []s{
			{1, 0, apis, get, KindServer, 0, 100, nil},
			{2, 1, apis, inner, KindInternal, 5, 95, nil},
			{3, 2, apis, rng, KindClient, 10, 90, nil},
			{4, 3, etcd, rng, KindServer, 12, 88, nil},
		}},
		{"webhook_then_etcd", []s{
			{1, 0, apis, "POST /api/v1/namespaces", KindServer, 0, 200, nil},
			{2, 1, apis, "admission", KindInternal, 5, 105, nil},
			{3, 2, apis, "HTTP POST", KindClient, 10, 100, nil},
			{4, 3, hook, "POST /validate", KindServer, 15, 95, nil},
			{5, 1, apis, "Create etcd3", KindInternal, 110, 190, nil},
			{6, 5, apis, "etcdserverpb.KV/Txn", KindClient, 115, 185, nil},
			{7, 6, etcd, "etcdserverpb.KV/Txn", KindServer, 120, 180, nil},
			{8, 1, apis, "authorize", KindInternal, 1, 3, nil},
		}},
		{"no_root", []s{
			{3, 2, apis, rng, KindClient, 20, 80, nil},
			{4, 3, etcd, rng, KindServer, 30, 70, nil},
		}},
		{"root_only", []s{
			{1, 0, apis, get, KindServer, 0, 100, nil},
		}},
		{"parallel_calls_nested", []s{
			{1, 0, apis, "LIST", KindServer, 0, 100, nil},
			{2, 1, apis, "fanout", KindInternal, 10, 90, nil},
			{3, 2, etcd, rng, KindServer, 10, 50, nil},
			{4, 2, etcd, rng, KindServer, 12, 85, nil},
			{5, 2, "cache", "lookup", KindServer, 40, 60, nil},
			{6, 4, etcd, "raft", KindInternal, 20, 40, nil},
		}},
	}
	var bd Breakdown
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := Assemble(build(1, c.spans...))
			p := CriticalPath(tr)
			var sum time.Duration
			for _, sec := range p.Sections {
				sum += time.Duration(sec.End - sec.Start)
			}
			if sum != p.Total {
				t.Errorf("sections add up to %v, root lasted %v", sum, p.Total)
			}
			var w strings.Builder
			render(&w, tr, p)
			golden.Check(t, filepath.Join("testdata", "critical_path_"+c.name+".golden"), w.String())
			bd.Add(p)
		})
	}
	var w strings.Builder
	w.WriteString("critical_path: " + FormatShares(bd.Services()) + "\n")
	w.WriteString("critical_path_spans: " + FormatShares(bd.Operations()) + "\n")
	golden.Check(t, filepath.Join("testdata", "breakdown.golden"), w.String())
}

// The root arrives in one export, etcd's spans in a later one: the trace is
// assembled from both, and its path changes when they come.
func TestLateSpans(t *testing.T) {
	b, _, c := newBuffer(t, Options{})
	spans := build(7,
		s{1, 0, apis, get, KindServer, 0, 100, nil},
		s{2, 1, apis, inner, KindInternal, 5, 95, nil},
		s{3, 2, apis, rng, KindClient, 10, 90, nil},
		s{4, 3, etcd, rng, KindServer, 12, 88, nil},
		s{5, 4, etcd, "raft", KindInternal, 20, 80, nil},
	)
	var w strings.Builder
	// etcd's batch is sent first but one of its spans lags: exporters
	// batch on their own.
	for _, step := range []struct {
		label string
		spans []Span
	}{
		{"etcd's first export, before the apiserver's", spans[3:4]},
		{"the apiserver's export, with the root", spans[0:3]},
		{"etcd's later export", spans[4:5]},
	} {
		c.Advance(3 * time.Second)
		for i := range step.spans {
			add(b, c.Now(), step.spans[i])
		}
		tr, ok := b.Trace(traceID(7))
		if !ok {
			t.Fatalf("%s: trace not found", step.label)
		}
		w.WriteString("== " + step.label + "\n")
		render(&w, tr, CriticalPath(tr))
	}
	golden.Check(t, filepath.Join("testdata", "late_spans.golden"), w.String())
}

func TestFormatShares(t *testing.T) {
	for _, c := range []struct {
		fractions []float64
		want      string
	}{
		{nil, ""},
		{[]float64{1}, "a 100%"},
		{[]float64{0.94, 0.05, 0.01}, "a 94%, b 5%, c 1%"},
		{[]float64{0.9, 0.05, 0.03, 0.015, 0.005}, "a 90%, b 5%, c 3%, other 2%"},
		{[]float64{0.997, 0.003}, "a >99%, b <1%"},
		{[]float64{0.945, 0.045, 0.0049, 0.0051}, "a 95%, b 5%, c <1%, other 1%"},
		{[]float64{0.334, 0.333, 0.333}, "a 33%, b 33%, c 33%"},
	} {
		var sh []Share
		for i, f := range c.fractions {
			sh = append(sh, Share{Name: string(rune('a' + i)), Fraction: f})
		}
		if got := FormatShares(sh); got != c.want {
			t.Errorf("FormatShares(%v) = %q, want %q", c.fractions, got, c.want)
		}
	}
}
