// Package config owns sentinel.yaml: its strict parsing (unknown fields are
// errors, FILE:LINE:COL in every message), defaults and validation. It says
// what to run, not how: cmd/sentinel turns a Config into running parts.
package config
