package traces

import "syscall"

// threadCPU is the calling thread's CPU time in nanoseconds: benchmarks
// report it beside wall time, which on a shared machine also counts the
// time spent waiting for a core.
func threadCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru) != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
