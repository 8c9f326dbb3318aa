package aggregate

import "math/bits"

// Startup times are kept in a log-linear histogram: exact below 32 ms, then
// 16 buckets per power of two up to 2^17 ms (131 s; larger values land in
// the last bucket). Reporting a bucket's midpoint is within ±1/32 (3.125%)
// of any value in it.
const (
	histExact = 32
	histSub   = 16
	histMaxE  = 16 // largest exponent kept
	nHist     = histExact + (histMaxE-4)*histSub
	histMax   = 1<<(histMaxE+1) - 1
)

func histIndex(v int) int {
	if v < 0 {
		v = 0
	}
	if v < histExact {
		return v
	}
	if v > histMax {
		v = histMax
	}
	e := bits.Len(uint(v)) - 1 // ≥ 5
	sub := (v >> (e - 4)) & (histSub - 1)
	return histExact + (e-5)*histSub + sub
}

// histValue is the midpoint of bucket i.
func histValue(i int) float64 {
	if i < histExact {
		return float64(i)
	}
	e := (i-histExact)/histSub + 5
	sub := (i - histExact) % histSub
	lo := (histSub + sub) << (e - 4)
	w := 1 << (e - 4)
	return float64(lo) + float64(w-1)/2
}

// histQuantile returns the nearest-rank q-quantile (0 < q ≤ 1) of h, or -1
// when h is empty.
func histQuantile(h *[nHist]uint32, n uint64, q float64) float64 {
	if n == 0 {
		return -1
	}
	rank := uint64(q*float64(n) + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i := range h {
		cum += uint64(h[i])
		if cum >= rank {
			return histValue(i)
		}
	}
	return histValue(nHist - 1)
}
