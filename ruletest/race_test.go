//go:build race

package ruletest

const raceEnabled = true
