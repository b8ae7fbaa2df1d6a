// Package scrape owns sentinel's metrics source: a Prometheus/OpenMetrics
// scraper for the scrape_configs subset of sentinel.yaml (static targets and
// in-cluster Kubernetes discovery of kubelets and the apiserver's endpoints,
// HTTP client and TLS from prometheus/common/config) that turns the bucket
// increases of classic histograms between two scrapes, and their
// OpenMetrics exemplars, and the increases of request counters with a code
// label (failed when the code is 5xx), into [engine.Observation]s handed to
// an [engine.Observer].
//
// It owns per-target health (/api/v1/targets, sentinel_scrape_* metrics)
// and the delta rules: a series' first scrape is a baseline, a counter reset
// starts a new baseline, a series that disappears is forgotten, a scrape
// after more than the staleness bound (5m) is a new baseline. It knows
// nothing about rules, quantiles or windows: the engine sums the per-bucket
// counts it emits and interpolates as Prometheus's histogram_quantile does.
package scrape
