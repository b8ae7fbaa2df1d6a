package scrape

import (
	"fmt"
	"time"

	"github.com/kube-sentinel/sentinel/engine"
)

// Exposition turns the successive expositions of one target into
// observations exactly as a scrape loop does: bucket deltas and request
// counter increases, first sightings as baselines, counter resets,
// vanished series forgotten. It is the scrape loop's own code, exported for
// the rule-test runner, which renders input_series as expositions.
//
// It applies no staleness bound: every exposition is a successful scrape,
// and a loop scraping at the runner's interval, whatever it is, never
// finds its previous scrape older than its bound (at least three
// intervals; see staleness).
type Exposition struct {
	hists  *histograms
	target *targetLabels
}

// NewExposition starts with no history; target labels (job, instance) are
// added to every series, as for a scraped target.
func NewExposition(target map[string]string) *Exposition {
	return &Exposition{hists: newHistograms(0), target: newTargetLabels(target)}
}

// Observe reads one exposition body scraped at now and hands the bucket
// increases since the previous one to o. A body that cannot be read is
// refused whole, and the history is left as it was.
func (x *Exposition) Observe(now time.Time, body []byte, contentType string, o engine.Observer) (observations int, err error) {
	if _, err := x.hists.parse(body, contentType); err != nil {
		return 0, fmt.Errorf("exposition: %w", err)
	}
	return x.hists.apply(now, x.target, o), nil
}
