package loadbench

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The layout is HDR's: values below 2*subCount nanoseconds get one bucket
// each, and every later power of two is cut into subCount equal buckets. A
// bucket is then never wider than 1/subCount of its lower bound, which keeps
// every reported value within 0.8% of the truth with a fixed, small array and
// an index computed with two shifts: no allocation and no search on Record.
const (
	subBits  = 7
	subCount = 1 << subBits
	// maxShift caps the range at about 2^(maxShift+subBits+1) ns (73 min);
	// longer values land in the last bucket, and Max still reports them.
	maxShift   = 34
	numBuckets = (maxShift + 2) * subCount
)

// Histogram counts durations in log-linear buckets of about 1% width, from
// 1 ns to over an hour. The zero value is ready to use.
//
// A Histogram is goroutine-safe: Record may run concurrently with itself and
// with the readers, which then see some consistent-enough snapshot (counts
// are read one by one). It must not be copied after first use.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

// Bucket is one bucket of a Histogram, for plotting.
type Bucket struct {
	// UpperMs is the largest value the bucket holds, in milliseconds.
	UpperMs float64 `json:"upper_ms"`
	// Count is the number of values recorded in the bucket.
	Count uint64 `json:"count"`
}

func bucketIndex(v uint64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	if shift > maxShift {
		return numBuckets - 1
	}
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketUpper is the largest value, in nanoseconds, that lands in bucket i.
func bucketUpper(i int) uint64 {
	if i < 2*subCount {
		return uint64(i)
	}
	shift := i/subCount - 1
	m := uint64(i%subCount + subCount)
	return (m+1)<<shift - 1
}

// Record adds one duration. Negative durations count as zero: they only come
// from clock steps, and dropping them would hide deliveries.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketIndex(uint64(v))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Merge adds every count of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if n := o.counts[i].Load(); n > 0 {
			h.counts[i].Add(n)
		}
	}
	h.total.Add(o.total.Load())
	for {
		m, om := h.max.Load(), o.max.Load()
		if om <= m || h.max.CompareAndSwap(m, om) {
			return
		}
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded value, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the value below or at which a fraction q (0 to 1) of the
// recorded values lie: the upper bound of the bucket holding that rank, never
// above Max. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	total := h.total.Load()
	if total == 0 {
		return 0
	}
	q = math.Min(math.Max(q, 0), 1)
	rank := max(uint64(math.Ceil(q*float64(total))), 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			if i == numBuckets-1 {
				// The last bucket also holds everything past the range.
				return h.Max()
			}
			return min(time.Duration(bucketUpper(i)), h.Max())
		}
	}
	return h.Max()
}

// Buckets returns the non-empty buckets in increasing order, for plots.
func (h *Histogram) Buckets() []Bucket {
	var out []Bucket
	for i := range h.counts {
		if n := h.counts[i].Load(); n > 0 {
			out = append(out, Bucket{UpperMs: durationMs(time.Duration(bucketUpper(i))), Count: n})
		}
	}
	return out
}

func durationMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// histogramJSON is the form of a Histogram between the processes of a run:
// the non-empty buckets by index, so that merging loses nothing.
type histogramJSON struct {
	MaxNs   int64       `json:"max_ns"`
	Buckets [][2]uint64 `json:"buckets"` // bucket index, count
}

// MarshalJSON encodes every count of h, for UnmarshalJSON in another
// process.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	v := histogramJSON{MaxNs: h.max.Load(), Buckets: [][2]uint64{}}
	for i := range h.counts {
		if n := h.counts[i].Load(); n > 0 {
			v.Buckets = append(v.Buckets, [2]uint64{uint64(i), n})
		}
	}
	return json.Marshal(v)
}

// UnmarshalJSON adds the counts that MarshalJSON encoded to h: a zero
// Histogram becomes a copy of the one encoded, and another one their
// Merge.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var v histogramJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	for _, bc := range v.Buckets {
		if bc[0] >= numBuckets {
			return fmt.Errorf("loadbench: histogram bucket %d out of range", bc[0])
		}
	}
	var o Histogram
	for _, bc := range v.Buckets {
		o.counts[bc[0]].Add(bc[1])
		o.total.Add(bc[1])
	}
	o.max.Store(v.MaxNs)
	h.Merge(&o)
	return nil
}
