package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// snapshotFile is where the engine's state lives under --storage.path.
const snapshotFile = "engine.snapshot"

func (d *daemon) snapshotPath() string {
	return filepath.Join(d.cfg.Load().StoragePath, snapshotFile)
}

// saveSnapshot writes the engine's state atomically: a temporary file in
// the same directory, fsync, rename over the old one, fsync the directory.
// A crash at any point leaves either the old snapshot or the new one.
func (d *daemon) saveSnapshot() error {
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
	return nil
}

// restoreSnapshot gives the engine its state back. A missing snapshot is a
// first start; a corrupt or foreign one is logged and ignored, never fatal.
func (d *daemon) restoreSnapshot() {
	if d.cfg.Load().StoragePath == "" {
		return
	}
	f, err := os.Open(d.snapshotPath())
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		d.logger.Warn("cannot read the state snapshot; starting fresh", "path", d.snapshotPath(), "err", err)
		return
	}
	defer f.Close()
	n, err := d.engine.RestoreSnapshot(f)
	if err != nil {
		d.logger.Warn("ignoring the state snapshot; starting fresh", "path", d.snapshotPath(), "err", err)
		return
	}
	d.logger.Info("restored state from snapshot", "path", d.snapshotPath(), "rules", n)
}

// snapshotLoop saves a snapshot every interval until ctx is done.
func (d *daemon) snapshotLoop(ctx context.Context, interval time.Duration) {
	if interval <= 0 || d.cfg.Load().StoragePath == "" {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.saveSnapshot(); err != nil {
				d.snapshotErrors.Inc()
				d.logger.Warn("state snapshot failed", "err", err)
			}
		}
	}
}
