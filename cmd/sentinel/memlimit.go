package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// setMemoryLimit sets the Go memory limit to ratio × the cgroup (v1 or v2)
// memory limit of the container sentinel runs in, with
// KimMachineGun/automemlimit, so that under memory pressure the garbage
// collector runs before the kernel's OOM killer does. Without a cgroup
// limit (or outside Linux) it leaves the limit alone; an explicit
// GOMEMLIMIT in the environment wins, as does AUTOMEMLIMIT=off.
func setMemoryLimit(log *slog.Logger, ratio float64) error {
	if math.IsNaN(ratio) || ratio <= 0 || ratio > 1 {
		return fmt.Errorf("--memory.auto-limit-ratio %v is not in (0, 1]", ratio)
	}
	limit, err := memlimit.Set(memlimit.WithRatio(ratio), memlimit.WithProvider(memlimit.FromCgroup))
	switch {
	case errors.Is(err, memlimit.ErrNoCgroup), errors.Is(err, memlimit.ErrCgroupsNotSupported):
		log.Info("no cgroup memory limit found; the Go memory limit is left as is", "err", err)
		return nil
	case err != nil:
		log.Warn("cannot set the Go memory limit from the cgroup", "err", err)
		return nil
	case limit == math.MaxInt64:
		log.Info("no container memory limit: the Go memory limit is left unset")
	default:
		log.Info("Go memory limit set from the container's memory limit", "limit_bytes", limit, "ratio", ratio)
	}
	return nil
}
