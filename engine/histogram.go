package engine

import (
	"math"
	"sort"
)

// bucketCount is how many observations fell into the histogram bucket
// (previous bound, upperBound].
type bucketCount struct {
	upperBound float64
	count      uint64
}

// addToBucket adds count to the bucket with the given upper bound, keeping
// buckets sorted; it allocates only when a bound is new.
func addToBucket(buckets []bucketCount, upperBound float64, count uint64) []bucketCount {
	i := sort.Search(len(buckets), func(i int) bool { return buckets[i].upperBound >= upperBound })
	if i < len(buckets) && buckets[i].upperBound == upperBound {
		buckets[i].count += count
		return buckets
	}
	buckets = append(buckets, bucketCount{})
	copy(buckets[i+1:], buckets[i:])
	buckets[i] = bucketCount{upperBound: upperBound, count: count}
	return buckets
}

// HistogramQuantile is Prometheus's histogram_quantile over per-bucket
// counts (not cumulative): bounds lists every upper bound of the
// histogram's layout, so that buckets that saw nothing still bound the
// interpolation; counts holds the buckets that saw something. Inside the
// bucket where the rank falls the value is interpolated linearly; a rank
// in the +Inf bucket yields the largest finite bound; no observations
// yield NaN.
func HistogramQuantile(q float64, bounds []float64, counts []bucketCount) float64 {
	if math.IsNaN(q) {
		return math.NaN()
	}
	if q < 0 {
		return math.Inf(-1)
	}
	if q > 1 {
		return math.Inf(1)
	}
	// The layout: every known bound plus +Inf, with cumulative counts.
	layout := make([]bucketCount, 0, len(bounds)+len(counts)+1)
	for _, b := range bounds {
		layout = addToBucket(layout, b, 0)
	}
	for _, c := range counts {
		layout = addToBucket(layout, c.upperBound, c.count)
	}
	layout = addToBucket(layout, math.Inf(1), 0)
	var cum uint64
	for i := range layout {
		cum += layout[i].count
		layout[i].count = cum
	}
	if len(layout) < 2 || cum == 0 {
		return math.NaN()
	}
	rank := q * float64(cum)
	b := sort.Search(len(layout)-1, func(i int) bool { return float64(layout[i].count) >= rank })
	if b == len(layout)-1 {
		return layout[len(layout)-2].upperBound
	}
	if b == 0 && layout[0].upperBound <= 0 {
		return layout[0].upperBound
	}
	var start float64
	end, count := layout[b].upperBound, float64(layout[b].count)
	if b > 0 {
		start = layout[b-1].upperBound
		count -= float64(layout[b-1].count)
		rank -= float64(layout[b-1].count)
	}
	return start + (end-start)*(rank/count)
}
