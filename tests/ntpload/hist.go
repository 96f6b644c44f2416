package main

import (
	"math/bits"
	"time"
)

// histogram counts durations in log-linear buckets: exact below 64 ns, then
// 32 buckets per power of two, so any value is known to within about 3%.
// It has a fixed size and never allocates after creation. Not safe for
// concurrent use: each receiver keeps its own and they are merged at the end.
type histogram struct {
	counts [histBuckets]uint64
	total  uint64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits // buckets per power of two
	histBuckets = (64 - histSubBits + 1) * histSub
)

// histIndex is the bucket of v (nanoseconds, >= 0).
func histIndex(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	e := bits.Len64(v) - (histSubBits + 1) // v>>e is in [histSub, 2*histSub)
	return (e+1)*histSub + int(v>>e) - histSub
}

// histBounds is the smallest and largest value that falls in bucket i.
func histBounds(i int) (lo, hi uint64) {
	if i < 2*histSub {
		return uint64(i), uint64(i)
	}
	e := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return m << e, (m+1)<<e - 1
}

func (h *histogram) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
	h.total++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// quantile is the q-quantile (0 < q <= 1) of the recorded values: the
// middle of the bucket that holds the ceil(q*total)-th smallest value. It
// is 0 when nothing was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q * float64(h.total))
	if float64(rank) < q*float64(h.total) {
		rank++
	}
	rank = max(rank, 1)
	rank = min(rank, h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := histBounds(i)
			return time.Duration(lo + (hi-lo)/2)
		}
	}
	return 0 // not reached: the counts add up to total
}
