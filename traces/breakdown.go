package traces

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Breakdown aggregates the critical paths of several traces (a series'
// exemplars): a service's share is the sum of its path time over the sum of
// the roots' durations, so long requests weigh more than short ones, as
// they do in the latency being explained. The zero value is empty and
// ready.
type Breakdown struct {
	Traces     int           // paths added
	Total      time.Duration // sum of their roots' durations
	services   map[string]time.Duration
	operations map[string]time.Duration
}

// Add adds a trace's critical path; an empty one (no root, or a root
// without duration) is skipped.
func (b *Breakdown) Add(p Path) {
	if p.Total <= 0 {
		return
	}
	if b.services == nil {
		b.services = make(map[string]time.Duration)
		b.operations = make(map[string]time.Duration)
	}
	b.Traces++
	b.Total += p.Total
	for _, s := range p.Services {
		b.services[s.Name] += s.Time
	}
	for _, s := range p.Operations {
		b.operations[s.Name] += s.Time
	}
}

// Services are the path time by service.name, largest first.
func (b *Breakdown) Services() []Share { return shares(b.services, b.Total) }

// Operations are the path time by "service/span name", largest first.
func (b *Breakdown) Operations() []Share { return shares(b.operations, b.Total) }

// FormatShares renders shares (largest first, as Path and Breakdown give
// them) for an alert annotation: the first three with their percentage,
// then "other" with the rest if there is more, e.g.
// "etcd 94%, apiserver 5%, other 1%". Empty for no shares.
//
// Each percentage is its own fraction rounded to the nearest percent (half
// up), so that each number shown is the nearest to the truth; they may
// therefore add up to 99% or 101%. A share that is not zero never shows as
// 0% ("<1%"), and one that is not everything never shows as 100% (">99%").
func FormatShares(shares []Share) string {
	var b strings.Builder
	top := min(len(shares), 3)
	for i, s := range shares[:top] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.Name)
		b.WriteByte(' ')
		b.WriteString(percent(s.Fraction))
	}
	if len(shares) > top {
		rest := 0.0
		for _, s := range shares[top:] {
			rest += s.Fraction
		}
		b.WriteString(", other ")
		b.WriteString(percent(rest))
	}
	return b.String()
}

func percent(f float64) string {
	switch r := math.Floor(f*100 + 0.5); {
	case math.IsNaN(f) || f <= 0:
		return "0%"
	case r < 1:
		return "<1%"
	case r >= 100 && f < 1:
		return ">99%"
	default:
		return strconv.Itoa(int(min(r, 100))) + "%"
	}
}
