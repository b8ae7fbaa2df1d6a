// Package logbound bounds how many log lines a source outside sentinel's
// control can cause. A server's error log (one line per failed TLS
// handshake, per malformed request line) is written at the rate an
// attacker chooses; logbound lets a steady rate through and counts the
// rest, reporting how many were dropped on the next line it lets through.
package logbound

import (
	"context"
	"log"
	"log/slog"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Handler passes at most Limit records per second (with a burst of Burst)
// to the wrapped handler and drops the rest, counting them.
type Handler struct {
	inner   slog.Handler
	shared  *state
	dropped func() // called for each dropped record; may be nil
}

type state struct {
	mu         sync.Mutex
	limiter    *rate.Limiter
	suppressed atomic.Int64 // dropped since the last record let through
}

// New wraps inner. onDrop, if not nil, is called once per dropped record
// (a Prometheus counter's Inc).
func New(inner slog.Handler, perSecond float64, burst int, onDrop func()) *Handler {
	return &Handler{
		inner:   inner,
		shared:  &state{limiter: rate.NewLimiter(rate.Limit(perSecond), burst)},
		dropped: onDrop,
	}
}

// NewLogLogger returns a *log.Logger for http.Server.ErrorLog that writes
// through a bounded handler at level.
func NewLogLogger(inner slog.Handler, level slog.Level, perSecond float64, burst int, onDrop func()) *log.Logger {
	return slog.NewLogLogger(New(inner, perSecond, burst, onDrop), level)
}

// Enabled reports whether the wrapped handler handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// Handle writes r when the rate allows it, else drops and counts it.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	h.shared.mu.Lock()
	ok := h.shared.limiter.Allow()
	h.shared.mu.Unlock()
	if !ok {
		h.shared.suppressed.Add(1)
		if h.dropped != nil {
			h.dropped()
		}
		return nil
	}
	if n := h.shared.suppressed.Swap(0); n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int64("suppressed_since_last", n))
	}
	return h.inner.Handle(ctx, r)
}

// WithAttrs returns a handler sharing this one's budget.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{inner: h.inner.WithAttrs(attrs), shared: h.shared, dropped: h.dropped}
}

// WithGroup returns a handler sharing this one's budget.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), shared: h.shared, dropped: h.dropped}
}
