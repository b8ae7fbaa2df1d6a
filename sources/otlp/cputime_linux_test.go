package otlp

import "syscall"

// processCPU is the process's CPU time in nanoseconds, every thread's, the
// garbage collector's included: benchmarks report it per span beside wall
// time, which on a shared machine also counts waiting for a core.
func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
