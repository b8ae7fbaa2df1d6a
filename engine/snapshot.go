package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// A snapshot is the engine's windows and alert states, so that a restart
// does not forget days of error budget nor a firing alert's startsAt. Its
// file format: a magic line, a version, the SHA-256 of the payload, and
// the payload (gob). Anything else is refused, never trusted.
const (
	snapshotMagic   = "sentinel engine snapshot\n"
	snapshotVersion = 1
)

// ErrSnapshotTooLarge says that a snapshot would exceed, or exceeds, the
// engine's MaxSnapshotBytes. Nothing was written (the writer got no byte),
// or nothing was restored.
var ErrSnapshotTooLarge = errors.New("snapshot larger than the configured maximum")

// cappedBuffer is a buffer that refuses to grow past max: the encoder stops
// at the cap instead of building a payload that will be refused anyway.
type cappedBuffer struct {
	bytes.Buffer
	max int64
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if int64(b.Len())+int64(len(p)) > b.max {
		return 0, ErrSnapshotTooLarge
	}
	return b.Buffer.Write(p)
}

// ErrForeignSnapshot says that a snapshot was not written by this version
// of the engine.
var ErrForeignSnapshot = errors.New("not a sentinel engine snapshot of a version this build can read")

type snapshot struct {
	Taken time.Time
	Rules []ruleSnap
}

type ruleSnap struct {
	Group, Name, Fingerprint string
	Series                   []seriesSnap
}

type seriesSnap struct {
	Key    string
	Labels map[string]string
	Bounds []float64
	Window windowSnap
	Alert  alertSnap
	SLO    *sloSnap
}

type ringSnap struct{ Width, N, Newest int64 }

type windowSnap struct {
	Ring  ringSnap
	Slots []slotSnap
}

type slotSnap struct {
	Epoch         int64
	Sketch        []byte
	Buckets       []bucketSnap
	Total, Failed uint64
	Top           []Exemplar
}

type bucketSnap struct {
	UpperBound float64
	Count      uint64
}

type counterRingSnap struct {
	Ring  ringSnap
	Slots []counterSlotSnap
}

type counterSlotSnap struct{ Epoch, Total, Bad int64 }

type sloSnap struct {
	Rings     []counterRingSnap
	Exemplars windowSnap
	Pairs     []alertSnap
}

// alertSnap leaves out when the alert was last sent: after a restart a
// firing alert is resent at the first evaluation, with its old startsAt.
type alertSnap struct {
	State                                          int
	ActiveAt, FiredAt, ResolvedAt, KeepFiringSince time.Time
	Value                                          float64
	Annotations                                    map[string]string
}

// WriteSnapshot writes every rule's state to w. A snapshot that would be
// larger than MaxSnapshotBytes is not written at all: the error wraps
// ErrSnapshotTooLarge and w has received nothing.
func (e *Engine) WriteSnapshot(w io.Writer) error {
	limit := e.settings.Load().MaxSnapshotBytes
	snap := snapshot{Taken: e.opts.Clock.Now()}
	rs := e.current.Load()
	for _, g := range rs.groups {
		for _, r := range g.rules {
			snap.Rules = append(snap.Rules, r.snapshot())
		}
	}
	payload := cappedBuffer{max: limit - int64(len(snapshotMagic)+1+sha256.Size)}
	if err := gob.NewEncoder(&payload).Encode(&snap); err != nil {
		if errors.Is(err, ErrSnapshotTooLarge) {
			return fmt.Errorf("%w (%d bytes): not written; the state of %d rules is too large, see storage.max_snapshot_bytes", ErrSnapshotTooLarge, limit, len(snap.Rules))
		}
		return fmt.Errorf("encoding snapshot: %w", err)
	}
	sum := sha256.Sum256(payload.Bytes())
	var head bytes.Buffer
	head.WriteString(snapshotMagic)
	head.WriteByte(snapshotVersion)
	head.Write(sum[:])
	if _, err := w.Write(head.Bytes()); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	if _, err := w.Write(payload.Bytes()); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	return nil
}

func (r *ruleState) snapshot() ruleSnap {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := ruleSnap{Group: r.group, Name: r.def.Name, Fingerprint: r.fingerprint}
	for key, s := range r.series {
		ss := seriesSnap{Key: key, Labels: s.labels, Bounds: s.bounds, Alert: snapAlert(&s.alert)}
		r.kind.snapshot(s, &ss)
		rs.Series = append(rs.Series, ss)
	}
	return rs
}

func snapRing(r *ring) ringSnap { return ringSnap{Width: r.width, N: r.n, Newest: r.newest} }

func snapWindow(w *window) windowSnap {
	ws := windowSnap{Ring: snapRing(&w.ring)}
	for i := range w.slots {
		s := &w.slots[i]
		x := slotSnap{Epoch: s.epoch, Total: s.total, Failed: s.failed, Top: s.top.list()}
		if s.sketch != nil && s.total > 0 {
			s.sketch.Encode(&x.Sketch, true)
		}
		for _, b := range s.buckets {
			x.Buckets = append(x.Buckets, bucketSnap{UpperBound: b.upperBound, Count: b.count})
		}
		ws.Slots = append(ws.Slots, x)
	}
	return ws
}

func snapAlert(a *alertState) alertSnap {
	return alertSnap{State: int(a.state), ActiveAt: a.activeAt, FiredAt: a.firedAt, ResolvedAt: a.resolvedAt,
		KeepFiringSince: a.keepFiringSince, Value: a.value, Annotations: a.annotations}
}

// RestoreSnapshot reads a snapshot and gives its state back to the rules
// that are loaded now and whose definition is unchanged (same group, name
// and fingerprint); other rules start fresh. It returns how many rules got
// their state back. A snapshot that is corrupt, foreign or inconsistent
// is refused whole with an error, and nothing is changed; so is one larger
// than MaxSnapshotBytes, read no further than that.
func (e *Engine) RestoreSnapshot(rd io.Reader) (restored int, err error) {
	e.loadMu.Lock() // no reload may swap the rules or their definitions meanwhile
	defer e.loadMu.Unlock()
	limit := e.settings.Load().MaxSnapshotBytes
	data, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return 0, fmt.Errorf("reading snapshot: %w", err)
	}
	if int64(len(data)) > limit {
		return 0, fmt.Errorf("%w (%d bytes): refused; raise storage.max_snapshot_bytes to restore it", ErrSnapshotTooLarge, limit)
	}
	head := len(snapshotMagic) + 1 + sha256.Size
	if len(data) < head || string(data[:len(snapshotMagic)]) != snapshotMagic || data[len(snapshotMagic)] != snapshotVersion {
		return 0, ErrForeignSnapshot
	}
	payload := data[head:]
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], data[len(snapshotMagic)+1:head]) {
		return 0, errors.New("snapshot checksum mismatch: the file is corrupt")
	}
	var snap snapshot
	if err := gob.NewDecoder(bytes.NewReader(payload)).Decode(&snap); err != nil {
		return 0, fmt.Errorf("decoding snapshot: %w", err)
	}
	// Build every rule's series first, install them only if all decode.
	rs := e.current.Load()
	byKey := map[string]*ruleState{}
	for _, g := range rs.groups {
		for _, r := range g.rules {
			byKey[g.name+"\x00"+r.def.Name+"\x00"+r.fingerprint] = r
		}
	}
	type install struct {
		r      *ruleState
		series map[string]*series
	}
	var todo []install
	for _, s := range snap.Rules {
		r := byKey[s.Group+"\x00"+s.Name+"\x00"+s.Fingerprint]
		if r == nil {
			continue
		}
		series, err := r.restore(s)
		if errors.Is(err, errGeometry) {
			e.logger.Warn("a rule's windows changed shape; it starts fresh", "group", s.Group, "rule", s.Name, "err", err)
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("snapshot of rule %s/%s: %w", s.Group, s.Name, err)
		}
		todo = append(todo, install{r, series})
	}
	for _, t := range todo {
		t.r.mu.Lock()
		t.r.series = t.series
		t.r.mu.Unlock()
	}
	return len(todo), nil
}

func (r *ruleState) restore(s ruleSnap) (out map[string]*series, err error) {
	defer func() {
		if p := recover(); p != nil { // a decoder's panic on bad input is an error, not a crash
			out, err = nil, fmt.Errorf("undecodable state: %v", p)
		}
	}()
	out = make(map[string]*series, len(s.Series))
	for _, ss := range s.Series {
		if len(out) >= r.maxSeries {
			break
		}
		se := &series{labels: ss.Labels, bounds: ss.Bounds, value: math.NaN()}
		if se.labels == nil {
			se.labels = map[string]string{}
		}
		if se.alert, err = restoreAlert(ss.Alert); err != nil {
			return nil, err
		}
		if err := r.kind.restore(r, se, &ss); err != nil {
			return nil, err
		}
		r.newExplainRing(se) // not saved: slow_requests_by starts afresh
		out[ss.Key] = se
	}
	return out, nil
}

// errGeometry says a rule's windows have another shape than when the
// snapshot was written (another build's slot sizes): that rule starts
// fresh, the others are restored.
var errGeometry = errors.New("window geometry changed")

func restoreRing(r *ring, s ringSnap, slots int) error {
	if s.Width != r.width || s.N != r.n || int64(slots) != r.n {
		return fmt.Errorf("%w (%d×%dns, now %d×%dns)", errGeometry, s.N, s.Width, r.n, r.width)
	}
	r.newest = s.Newest
	return nil
}

var sketchStore = store.Provider(func() store.Store { return store.NewCollapsingLowestDenseStore(maxSketchBins) })

func restoreWindow(w *window, s windowSnap) error {
	if err := restoreRing(&w.ring, s.Ring, len(s.Slots)); err != nil {
		return err
	}
	for i, x := range s.Slots {
		sl := &w.slots[i]
		sl.epoch, sl.total, sl.failed = x.Epoch, x.Total, x.Failed
		for _, ex := range x.Top {
			sl.top.offer(ex.TraceID, ex.SpanID, ex.Duration, ex.Time)
		}
		for _, b := range x.Buckets {
			sl.buckets = addToBucket(sl.buckets, b.UpperBound, b.Count)
		}
		if len(x.Sketch) > 0 {
			sk, err := ddsketch.DecodeDDSketch(x.Sketch, sketchStore, sketchMapping)
			if err != nil {
				return fmt.Errorf("sketch: %w", err)
			}
			sl.sketch = sk
		}
	}
	return nil
}

func restoreSLO(s *sloSeries, snap *sloSnap) error {
	if len(snap.Rings) != len(s.rings) || len(snap.Pairs) != len(s.pairs) {
		return fmt.Errorf("%w: SLO windows", errGeometry)
	}
	for i, rs := range snap.Rings {
		c := &s.rings[i]
		if err := restoreRing(&c.ring, rs.Ring, len(rs.Slots)); err != nil {
			return err
		}
		for j, x := range rs.Slots {
			c.slots[j] = counterSlot{epoch: x.Epoch, total: uint64(x.Total), bad: uint64(x.Bad)}
		}
	}
	if err := restoreWindow(&s.exemplars, snap.Exemplars); err != nil {
		return err
	}
	for i, a := range snap.Pairs {
		st, err := restoreAlert(a)
		if err != nil {
			return err
		}
		s.pairs[i] = st
	}
	return nil
}

func restoreAlert(a alertSnap) (alertState, error) {
	if a.State < int(StateInactive) || a.State > int(StateFiring) {
		return alertState{}, fmt.Errorf("alert state %d", a.State)
	}
	if AlertState(a.State) == StatePending {
		// Downtime must not count toward `for`: a pending alert goes
		// through it again once sentinel is back.
		return alertState{}, nil
	}
	return alertState{state: AlertState(a.State), activeAt: a.ActiveAt, firedAt: a.FiredAt, resolvedAt: a.ResolvedAt,
		keepFiringSince: a.KeepFiringSince, value: a.Value, annotations: a.Annotations}, nil
}
