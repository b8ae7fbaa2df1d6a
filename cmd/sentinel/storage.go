package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kube-sentinel/sentinel/engine"
)

// snapshotFile is where the engine's state lives under --storage.path.
const snapshotFile = "engine.snapshot"

// snapshotDebounce coalesces the alert state changes of one burst (a rule
// group's evaluation, an incident touching many groups) into one
// snapshot, written this long after the first of them.
const snapshotDebounce = time.Second

func (d *daemon) snapshotPath() string {
	return filepath.Join(d.cfg.Load().StoragePath, snapshotFile)
}

// saveSnapshot writes the engine's state atomically: a temporary file in
// the same directory, fsync, rename over the old one, fsync the directory.
// A crash at any point leaves either the old snapshot or the new one; so
// does a snapshot over storage.max_snapshot_bytes, which is never renamed
// into place. reason labels sentinel_snapshots_total.
func (d *daemon) saveSnapshot(reason string) error {
	if d.cfg.Load().StoragePath == "" {
		return nil // the demo keeps no state
	}
	path := d.snapshotPath()
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("storage path: %w", err)
	}
	tmp, err := os.CreateTemp(dir, snapshotFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename it is gone already
	if err := d.engine.WriteSnapshot(tmp); err != nil {
		tmp.Close()
		if errors.Is(err, engine.ErrSnapshotTooLarge) {
			d.snapshotTooLarge.WithLabelValues("write").Inc()
		}
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("snapshot fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("snapshot rename: %w", err)
	}
	if dh, err := os.Open(dir); err == nil {
		dh.Sync()
		dh.Close()
	}
	d.snapshots.WithLabelValues(reason).Inc()
	return nil
}

// removeStaleTemps deletes the temporary files of snapshots that a crash
// interrupted: nothing else writes them, and each can be as large as a
// snapshot.
func (d *daemon) removeStaleTemps() {
	dir := d.cfg.Load().StoragePath
	if dir == "" {
		return
	}
	stale, _ := filepath.Glob(filepath.Join(dir, snapshotFile+".tmp-*"))
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			d.logger.Warn("cannot remove a stale snapshot temporary file", "path", p, "err", err)
			continue
		}
		d.logger.Info("removed a stale snapshot temporary file", "path", p)
	}
}

// restoreSnapshot gives the engine its state back. A missing snapshot is a
// first start; a corrupt, foreign or oversized one is logged and ignored,
// never fatal (and replaced by the next snapshot).
func (d *daemon) restoreSnapshot() {
	if d.cfg.Load().StoragePath == "" {
		return
	}
	path := d.snapshotPath()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		d.logger.Warn("cannot read the state snapshot; starting fresh", "path", path, "err", err)
		return
	}
	defer f.Close()
	// Refused by its size before a byte is read: a snapshot too large to
	// restore must not take the process down at every start.
	limit := d.engine.Settings().MaxSnapshotBytes
	if fi, err := f.Stat(); err == nil && fi.Size() > limit {
		d.snapshotTooLarge.WithLabelValues("restore").Inc()
		d.logger.Error("ignoring the state snapshot: larger than storage.max_snapshot_bytes; starting fresh",
			"path", path, "bytes", fi.Size(), "max_snapshot_bytes", limit)
		return
	}
	n, err := d.engine.RestoreSnapshot(f)
	if err != nil {
		if errors.Is(err, engine.ErrSnapshotTooLarge) {
			d.snapshotTooLarge.WithLabelValues("restore").Inc()
		}
		d.logger.Warn("ignoring the state snapshot; starting fresh", "path", path, "err", err)
		return
	}
	d.logger.Info("restored state from snapshot", "path", path, "rules", n)
}

// snapshotLoop saves a snapshot every storage.snapshot_interval and, a
// snapshotDebounce after an alert began or stopped firing, at once: a
// firing alert's activeAt and startsAt then survive a kill between two
// periodic snapshots. It runs until ctx is done.
func (d *daemon) snapshotLoop(ctx context.Context) {
	if d.cfg.Load().StoragePath == "" {
		return
	}
	interval := d.cfg.Load().SnapshotInterval
	var tick <-chan time.Time
	var ticker *time.Ticker
	if interval > 0 {
		ticker = time.NewTicker(interval)
		defer func() { ticker.Stop() }()
		tick = ticker.C
	}
	var debounce <-chan time.Time
	save := func(reason string) {
		if err := d.saveSnapshot(reason); err != nil {
			d.snapshotErrors.Inc()
			d.logger.Warn("state snapshot failed", "reason", reason, "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.reconfigured:
			if next := d.cfg.Load().SnapshotInterval; next != interval && next > 0 {
				interval = next
				if ticker == nil {
					ticker = time.NewTicker(interval)
					defer func() { ticker.Stop() }()
				} else {
					ticker.Reset(interval)
				}
				tick = ticker.C
			}
		case <-d.engine.StateChanged():
			if debounce == nil {
				debounce = time.After(snapshotDebounce)
			}
		case <-debounce:
			debounce = nil
			save("alert_state_change")
		case <-tick:
			save("interval")
		}
	}
}
