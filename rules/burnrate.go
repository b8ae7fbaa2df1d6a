package rules

import (
	_ "embed"
	"fmt"

	"github.com/kube-sentinel/sentinel/internal/yamlpos"
)

// The default burn-rate pairs are data, not code (as Sloth keeps them):
// the Google SRE workbook's multi-window, multi-burn-rate alerts, with the
// `for` of kubernetes-mixin's KubeAPIErrorBudgetBurn.
//
//go:embed burnrate_default.yaml
var defaultBurnRates []byte

var defaultBurnRateAlerts = mustDefaultBurnRates()

func mustDefaultBurnRates() []BurnRateAlert {
	d := &yamlpos.Decoder{File: "burnrate_default.yaml"}
	var out []BurnRateAlert
	for _, n := range d.Sequence(d.Parse(defaultBurnRates), "burn rates") {
		f := d.Mapping(n, "burn rate", "severity", "long_window", "short_window", "factor", "for")
		out = append(out, BurnRateAlert{
			Severity:    d.String(f["severity"].Value, "severity"),
			LongWindow:  d.Duration(f["long_window"].Value, "long_window"),
			ShortWindow: d.Duration(f["short_window"].Value, "short_window"),
			Factor:      d.Float(f["factor"].Value, "factor"),
			For:         d.Duration(f["for"].Value, "for"),
		})
	}
	if err := d.Err(); err != nil {
		panic(fmt.Sprintf("embedded default burn rates: %v", err)) // a build-time file: tests catch it
	}
	return out
}

// DefaultBurnRateAlerts returns the four default pairs: page 14.4× over 1h
// and 5m, page 6× over 6h and 30m, ticket 3× over 1d and 2h, ticket 1× over
// 3d and 6h.
func DefaultBurnRateAlerts() []BurnRateAlert {
	return append([]BurnRateAlert(nil), defaultBurnRateAlerts...)
}
