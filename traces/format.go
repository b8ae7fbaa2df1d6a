package traces

// FormatShare renders one fraction as FormatShares does: "94%", "<1%"
// for a share that is not zero, ">99%" for one that is not everything.
func FormatShare(f float64) string { return percent(f) }
