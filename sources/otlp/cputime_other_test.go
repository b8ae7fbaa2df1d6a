//go:build !linux

package otlp

func processCPU() int64 { return -1 }
