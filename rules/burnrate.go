package rules

import (
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/kube-sentinel/sentinel/internal/yamlpos"
)

// The default burn-rate pairs are data, not code (as Sloth keeps them):
// each is the share of the period's error budget it catches being spent
// over its long window, and its factor is derived for the SLO's period.
//
//go:embed burnrate_default.yaml
var defaultBurnRates []byte

// budgetShare is a default pair before it knows its SLO's period.
type budgetShare struct {
	BurnRateAlert
	Percent float64
}

var defaultBurnRateShares = mustDefaultBurnRates()

func mustDefaultBurnRates() []budgetShare {
	d := &yamlpos.Decoder{File: "burnrate_default.yaml"}
	var out []budgetShare
	for _, n := range d.Sequence(d.Parse(defaultBurnRates), "burn rates") {
		f := d.Mapping(n, "burn rate", "severity", "long_window", "short_window", "budget_percent", "for")
		out = append(out, budgetShare{BurnRateAlert: BurnRateAlert{
			Severity:    d.String(f["severity"].Value, "severity"),
			LongWindow:  d.Duration(f["long_window"].Value, "long_window"),
			ShortWindow: d.Duration(f["short_window"].Value, "short_window"),
			For:         d.Duration(f["for"].Value, "for"),
		}, Percent: d.Float(f["budget_percent"].Value, "budget_percent")})
	}
	if err := d.Err(); err != nil {
		panic(fmt.Sprintf("embedded default burn rates: %v", err)) // a build-time file: tests catch it
	}
	return out
}

// BurnRateFactor is the burn rate at which a share (percent) of a period's
// error budget is spent within window: percent/100 × period ÷ window. 2% of
// a 30-day budget in an hour is 14.4; of a 7-day budget, 3.36. It is
// rounded to six significant digits, so that 30 days give 14.4 exactly.
func BurnRateFactor(percent float64, period, window time.Duration) float64 {
	f := percent / 100 * (float64(period) / float64(window))
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 6, 64), 64)
	return r
}

// DefaultBurnRateAlerts returns the four default pairs for an SLO period:
// page when 2% of the budget is spent in 1h (checked over 5m too) or 5% in
// 6h (30m); ticket when 10% is spent in 1d (2h) or 10% in 3d (6h). For 30
// days the factors are 14.4, 6, 3 and 1; for 28 days 13.44, 5.6, 2.8 and
// 0.933333; for 7 days 3.36, 1.4, 0.7 and 0.233333.
func DefaultBurnRateAlerts(period time.Duration) []BurnRateAlert {
	out := make([]BurnRateAlert, len(defaultBurnRateShares))
	for i, s := range defaultBurnRateShares {
		out[i] = s.BurnRateAlert
		out[i].Factor = BurnRateFactor(s.Percent, period, s.LongWindow)
	}
	return out
}
