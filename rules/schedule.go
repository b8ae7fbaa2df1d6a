package rules

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/kube-sentinel/sentinel/internal/yamlpos"
)

// Schedule says when a group is evaluated: every fixed duration, or on a
// cron spec (robfig/cron/v3, seconds optional, descriptors such as
// "@every 15s" allowed).
type Schedule struct {
	Spec  string
	every time.Duration
	cron  cron.Schedule
}

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour |
	cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule reads a duration ("15s") or a cron spec ("@every 15s",
// "*/30 * * * * *").
func ParseSchedule(spec string) (Schedule, error) {
	spec = strings.TrimSpace(spec)
	if d, err := yamlpos.ParseDuration(spec); err == nil {
		if d <= 0 {
			return Schedule{}, fmt.Errorf("interval %q must be positive", spec)
		}
		return Schedule{Spec: spec, every: d}, nil
	}
	// robfig/cron truncates "@every" to whole seconds; read it exactly.
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		d, err := yamlpos.ParseDuration(strings.TrimSpace(rest))
		if err != nil || d <= 0 {
			return Schedule{}, fmt.Errorf("interval %q: @every needs a positive duration", spec)
		}
		return Schedule{Spec: spec, every: d}, nil
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("interval %q is neither a duration nor a cron spec: %w", spec, err)
	}
	if c, ok := s.(cron.ConstantDelaySchedule); ok {
		return Schedule{Spec: spec, every: c.Delay}, nil
	}
	return Schedule{Spec: spec, cron: s}, nil
}

// Every returns a schedule that fires every d.
func Every(d time.Duration) Schedule { return Schedule{Spec: d.String(), every: d} }

// IsZero reports whether no schedule was given.
func (s Schedule) IsZero() bool { return s.every == 0 && s.cron == nil }

// Next returns the first evaluation time strictly after t. Fixed intervals
// are aligned to multiples of the interval since the Unix epoch, so that
// evaluations are at predictable times, in the daemon and in rule tests alike.
func (s Schedule) Next(t time.Time) time.Time {
	if s.cron != nil {
		return s.cron.Next(t)
	}
	if s.every <= 0 {
		return time.Time{}
	}
	n := t.UnixNano()
	next := (n/int64(s.every) + 1) * int64(s.every)
	return time.Unix(0, next).In(t.Location())
}

// Period is the typical time between two evaluations: the interval, or for
// a cron spec the gap between its next two firings after t.
func (s Schedule) Period(t time.Time) time.Duration {
	if s.cron == nil {
		return s.every
	}
	a := s.cron.Next(t)
	return s.cron.Next(a).Sub(a)
}
