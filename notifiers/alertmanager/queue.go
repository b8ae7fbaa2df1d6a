package alertmanager

import (
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/alertmanager/api/v2/models"
)

// entry is one alert waiting for delivery to one Alertmanager. An entry is
// keyed by the alert's label set: a newer state of the same alert replaces
// the pending one in place (and bumps version) instead of queueing twice.
type entry struct {
	seq     uint64
	version uint64
	key     string
	alert   *models.PostableAlert
	size    int // bytes the alert takes in a request, about
}

// queue is the bounded FIFO of alerts not yet delivered to one Alertmanager.
// Alerts stay in the queue while a request is in flight and are removed only
// once acknowledged, so a failed batch is simply peeked again on retry, with
// whatever superseded or dropped it in the meantime taken into account.
type queue struct {
	mu       sync.Mutex
	capacity int
	maxBytes int      // of a batch; 0: no bound
	entries  []*entry // ordered by seq, oldest first
	byKey    map[string]*entry
	nextSeq  uint64
}

func newQueue(capacity int) *queue {
	return &queue{capacity: capacity, byKey: make(map[string]*entry)}
}

// pendingAlert is an alert converted once for all queues; the PostableAlert
// is shared between queues and must not be modified after Send.
type pendingAlert struct {
	key   string
	alert *models.PostableAlert
	size  int
}

// push enqueues alerts, superseding pending alerts with the same labels and
// dropping the oldest entries when the queue is full. It returns how many
// alerts were dropped.
func (q *queue) push(alerts []pendingAlert) (dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, a := range alerts {
		if e, ok := q.byKey[a.key]; ok {
			e.alert, e.size = a.alert, a.size
			e.version++
			continue
		}
		for len(q.entries) >= q.capacity {
			q.popFront()
			dropped++
		}
		q.nextSeq++
		e := &entry{seq: q.nextSeq, key: a.key, alert: a.alert, size: a.size}
		q.entries = append(q.entries, e)
		q.byKey[a.key] = e
	}
	return dropped
}

func (q *queue) popFront() {
	e := q.entries[0]
	q.entries[0] = nil // let the dropped alert be collected before the array is reallocated
	q.entries = q.entries[1:]
	delete(q.byKey, e.key)
}

// batch is what peek handed out: the alerts to post and the state needed to
// acknowledge exactly those versions.
type batch struct {
	alerts   models.PostableAlerts
	versions map[*entry]uint64
	maxSeq   uint64
}

// peek returns up to n of the oldest alerts, without removing them, and
// no more than maxBytes of them (but at least one).
func (q *queue) peek(n int) batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.entries))
	if q.maxBytes > 0 {
		bytes := 0
		for i, e := range q.entries[:n] {
			bytes += e.size
			if i > 0 && bytes > q.maxBytes {
				n = i
				break
			}
		}
	}
	if n == 0 {
		return batch{}
	}
	b := batch{
		alerts:   make(models.PostableAlerts, n),
		versions: make(map[*entry]uint64, n),
		maxSeq:   q.entries[n-1].seq,
	}
	for i, e := range q.entries[:n] {
		b.alerts[i] = e.alert
		b.versions[e] = e.version
	}
	return b
}

// ack removes the entries of a delivered batch, except those replaced by a
// newer state while the request was in flight: that state is still to be sent.
// Entries only ever leave from the front or are replaced in place, and new
// ones get a higher seq, so the survivors of a batch are still a prefix.
func (q *queue) ack(b batch) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for n < len(q.entries) && q.entries[n].seq <= b.maxSeq {
		n++
	}
	var kept []*entry
	for i, e := range q.entries[:n] {
		if v, ok := b.versions[e]; ok && v == e.version {
			delete(q.byKey, e.key)
		} else {
			kept = append(kept, e)
		}
		q.entries[i] = nil
	}
	rest := q.entries[n:]
	if len(kept) == 0 {
		q.entries = rest
		return
	}
	q.entries = append(kept, rest...)
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.entries)
}

// labelsKey identifies an alert by its label set, as Alertmanager does.
func labelsKey(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for name := range labels {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		b.WriteString(name)
		b.WriteByte(0xff)
		b.WriteString(labels[name])
		b.WriteByte(0xff)
	}
	return b.String()
}

// newBoundedQueue is a queue whose batches hold at most maxBytes of alerts.
func newBoundedQueue(capacity, maxBytes int) *queue {
	q := newQueue(capacity)
	q.maxBytes = maxBytes
	return q
}
