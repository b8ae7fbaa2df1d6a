//go:build !linux

package traces

func threadCPU() int64 { return -1 }
