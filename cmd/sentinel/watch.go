package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// DefaultWatchInterval is how often the config and rule files are checked
// for changes (--config.auto-reload-interval).
const DefaultWatchInterval = 10 * time.Second

// maxWatchedFileBytes bounds what one check reads of a file. Rule files are
// small; a file beyond this is hashed on its first bytes, size and mtime,
// which still see any change made by a ConfigMap update or an editor.
const maxWatchedFileBytes = 4 << 20

// fileWatcher reloads the daemon when its config file or a rule file
// changes: the same reload as SIGHUP and POST /-/reload, so unchanged rules
// keep their windows and budgets and an invalid file is refused with the
// running rules kept.
//
// It polls, as Prometheus's --config.auto-reload-interval does: it stats
// the files (following symlinks) every interval and hashes the content of
// those whose identity, size or mtime changed. Polling needs no
// dependency, and sees what inotify-style watching handles only with care:
// a Kubernetes ConfigMap volume updates by swapping a "..data" symlink, so
// the rule file's own path never gets an event, and files on NFS or FUSE
// give none at all. Its cost is a stat per file per interval.
//
// A change is debounced: it is acted on only once the files stay the same
// for the settle time, so a file written in several steps is read whole.
// A change that fails to reload is not retried until the files change
// again (the error is logged and sentinel_config_last_reload_successful is
// 0 meanwhile).
type fileWatcher struct {
	files    func() []string // the paths to watch, re-evaluated every check (globs may match new files)
	reload   func() error
	interval time.Duration
	settle   time.Duration
	logger   *slog.Logger

	stamps map[string]fileStamp
	// seen is the fingerprint of the files as last loaded or tried, so
	// that one change triggers one reload.
	seen uint64

	checks  prometheus.Counter
	reloads *prometheus.CounterVec
	errors  prometheus.Counter
	watched prometheus.Gauge
}

// fileStamp is what a check remembers of a file: enough to tell that it
// has not changed without reading it.
type fileStamp struct {
	info os.FileInfo
	sum  uint64
}

func newFileWatcher(reg prometheus.Registerer, logger *slog.Logger, interval time.Duration, files func() []string, reload func() error) *fileWatcher {
	f := promauto.With(reg)
	w := &fileWatcher{files: files, reload: reload, interval: interval, settle: min(time.Second, interval), logger: logger,
		stamps: map[string]fileStamp{},
		checks: f.NewCounter(prometheus.CounterOpts{
			Name: "sentinel_config_watch_checks_total",
			Help: "Checks of the config and rule files for changes (--config.auto-reload-interval).",
		}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_config_watch_reloads_total",
			Help: "Reloads triggered by a change to the config or rule files, by result (success, failure).",
		}, []string{"result"}),
		errors: f.NewCounter(prometheus.CounterOpts{
			Name: "sentinel_config_watch_errors_total",
			Help: "Watched files that could not be read during a check (a vanished file counts as a change, not an error).",
		}),
		watched: f.NewGauge(prometheus.GaugeOpts{
			Name: "sentinel_config_watch_files",
			Help: "Files watched for changes: the config file and the rule files its rule_files match.",
		}),
	}
	w.reloads.WithLabelValues("success")
	w.reloads.WithLabelValues("failure")
	return w
}

// run checks every interval until ctx is done.
func (w *fileWatcher) run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.check(ctx)
		}
	}
}

// check reloads if the files changed since the last load or attempt and
// have settled; it reports whether it reloaded (successfully or not).
func (w *fileWatcher) check(ctx context.Context) bool {
	w.checks.Inc()
	fp := w.fingerprint()
	if fp == w.seen {
		return false
	}
	// Settle: a writer may be half-way through. Wait until two looks agree.
	for {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(w.settle):
		}
		next := w.fingerprint()
		if next == fp {
			break
		}
		fp = next
	}
	w.seen = fp
	if err := w.reload(); err != nil {
		w.reloads.WithLabelValues("failure").Inc()
		// reload has logged the error; say what triggered it.
		w.logger.Error("config or rule files changed but could not be loaded; the running rules stay in force until the files change again", "err", err)
		return true
	}
	w.reloads.WithLabelValues("success").Inc()
	w.logger.Info("config or rule files changed: reloaded")
	return true
}

// fingerprint hashes the watched files' names and contents; an unreadable
// or missing file contributes its name and the error, so that its return
// is a change too.
func (w *fileWatcher) fingerprint() uint64 {
	paths := w.files()
	slices.Sort(paths)
	paths = slices.Compact(paths)
	w.watched.Set(float64(len(paths)))
	h := xxhash.New()
	live := make(map[string]fileStamp, len(paths))
	for _, p := range paths {
		fmt.Fprintf(h, "%s\x00", p)
		st, err := w.stamp(p)
		if err != nil {
			if !os.IsNotExist(err) {
				w.errors.Inc()
			}
			fmt.Fprintf(h, "error\x00%v\x00", err)
			continue
		}
		live[p] = st
		fmt.Fprintf(h, "%x\x00", st.sum)
	}
	w.stamps = live
	return h.Sum64()
}

// stamp hashes p's content unless its stat says it is the file last seen.
func (w *fileWatcher) stamp(p string) (fileStamp, error) {
	info, err := os.Stat(p) // follows the ConfigMap's ..data symlink
	if err != nil {
		return fileStamp{}, err
	}
	if old, ok := w.stamps[p]; ok && os.SameFile(old.info, info) && old.info.Size() == info.Size() && old.info.ModTime().Equal(info.ModTime()) {
		return fileStamp{info: info, sum: old.sum}, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return fileStamp{}, err
	}
	defer f.Close()
	h := xxhash.New()
	if _, err := io.Copy(h, io.LimitReader(f, maxWatchedFileBytes)); err != nil {
		return fileStamp{}, fmt.Errorf("read %s: %w", p, err)
	}
	if info.Size() > maxWatchedFileBytes {
		fmt.Fprintf(h, "\x00%d\x00%d", info.Size(), info.ModTime().UnixNano())
	}
	return fileStamp{info: info, sum: h.Sum64()}, nil
}

// watchedFiles are the daemon's config file and the rule files its
// current config's rule_files match now.
func (d *daemon) watchedFiles() []string {
	var out []string
	if d.opts.ConfigFile != "" {
		out = append(out, d.opts.ConfigFile)
	}
	for _, p := range d.cfg.Load().RulePatterns() {
		matches, err := filepath.Glob(p)
		if err != nil || len(matches) == 0 {
			out = append(out, p) // a plain name that is missing: its arrival is a change
			continue
		}
		out = append(out, matches...)
	}
	return out
}
