package otlp

import (
	"bytes"
	"sync"
)

// bodyBuffers keeps the buffers of HTTP bodies read for the next requests,
// at most maxIdle bytes of them, so that the memory no request holds (and
// the budget does not count) stays bounded: a sync.Pool would keep as many
// buffers as were ever in use at once, until the next garbage collections.
type bodyBuffers struct {
	maxIdle int64 // bytes kept, at most

	mu   sync.Mutex
	free []*bytes.Buffer
	idle int64
}

// maxPooledBuffer keeps the odd huge body from pinning its buffer.
const maxPooledBuffer = 1 << 20

func newBodyBuffers(budget int64) *bodyBuffers {
	return &bodyBuffers{maxIdle: min(budget/8, 32<<20)}
}

// get returns an empty buffer: the last one put back, or a new one.
func (p *bodyBuffers) get() *bytes.Buffer {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.idle -= int64(b.Cap())
		p.mu.Unlock()
		return b
	}
	p.mu.Unlock()
	return new(bytes.Buffer)
}

// put keeps b for another request if there is room.
func (p *bodyBuffers) put(b *bytes.Buffer) {
	c := int64(b.Cap())
	if c == 0 || c > maxPooledBuffer {
		return
	}
	b.Reset()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle+c > p.maxIdle {
		return
	}
	p.free = append(p.free, b)
	p.idle += c
}
