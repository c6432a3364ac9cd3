package loadbench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketLayout(t *testing.T) {
	values := []uint64{0, 1, 255, 256, 257, 511, 512, 1000, 123456, 1 << 30, 1<<40 + 12345}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		values = append(values, r.Uint64N(1<<41))
	}
	for _, v := range values {
		i := bucketIndex(v)
		hi := bucketUpper(i)
		if hi < v {
			t.Fatalf("value %d in bucket %d whose upper bound %d is below it", v, i, hi)
		}
		if i > 0 && bucketUpper(i-1) >= v {
			t.Fatalf("value %d in bucket %d, but bucket %d already reaches %d", v, i, i-1, bucketUpper(i-1))
		}
		if width := hi - lowerOf(i); v >= 2*subCount && float64(width) > float64(v)/subCount {
			t.Fatalf("bucket %d of value %d is %d wide, over 1/%d of it", i, v, width, subCount)
		}
	}
	for i := 1; i < numBuckets; i++ {
		if bucketUpper(i) <= bucketUpper(i-1) {
			t.Fatalf("bucket %d does not grow", i)
		}
	}
}

func lowerOf(i int) uint64 {
	if i == 0 {
		return 0
	}
	return bucketUpper(i-1) + 1
}

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		sample func(r *rand.Rand) time.Duration
	}{
		{
			name:   "uniform 0-100ms",
			sample: func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(100 * time.Millisecond))) },
		},
		{
			name: "lognormal around 2ms",
			sample: func(r *rand.Rand) time.Duration {
				return time.Duration(2e6 * math.Exp(r.NormFloat64()))
			},
		},
		{
			name: "bimodal 50us and 30ms",
			sample: func(r *rand.Rand) time.Duration {
				if r.IntN(10) == 0 {
					return 30*time.Millisecond + time.Duration(r.Int64N(1e6))
				}
				return 50*time.Microsecond + time.Duration(r.Int64N(1e4))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			var h Histogram
			values := make([]time.Duration, 200000)
			for i := range values {
				values[i] = tt.sample(r)
				h.Record(values[i])
			}
			slices.Sort(values)
			if got := h.Count(); got != uint64(len(values)) {
				t.Fatalf("Count = %d, want %d", got, len(values))
			}
			for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
				want := values[int(math.Ceil(q*float64(len(values))))-1]
				got := h.Quantile(q)
				if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
					t.Errorf("Quantile(%v) = %v, want %v (off by %.2f%%)", q, got, want, rel*100)
				}
			}
			if got, want := h.Max(), values[len(values)-1]; got != want {
				t.Errorf("Max = %v, want %v", got, want)
			}
		})
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("empty Quantile = %v, want 0", got)
	}
	if b := h.Buckets(); len(b) != 0 {
		t.Errorf("empty Buckets = %v", b)
	}
	h.Record(-time.Second)  // a clock step: counted as zero
	h.Record(3 * time.Hour) // past the range: last bucket, exact max
	if got := h.Quantile(0); got != 0 {
		t.Errorf("Quantile(0) = %v, want 0", got)
	}
	if got := h.Quantile(1); got != 3*time.Hour {
		t.Errorf("Quantile(1) = %v, want the exact max 3h", got)
	}
	if got := h.Max(); got != 3*time.Hour {
		t.Errorf("Max = %v, want 3h", got)
	}
}

func TestHistogramBucketsAndMerge(t *testing.T) {
	var a, b Histogram
	for i := range 1000 {
		a.Record(time.Duration(i) * time.Microsecond)
		b.Record(time.Duration(i) * time.Millisecond)
	}
	a.Merge(&b)
	if got := a.Count(); got != 2000 {
		t.Fatalf("merged Count = %d, want 2000", got)
	}
	if got := a.Max(); got != 999*time.Millisecond {
		t.Fatalf("merged Max = %v, want 999ms", got)
	}
	var sum uint64
	prev := -1.0
	for _, bk := range a.Buckets() {
		if bk.UpperMs <= prev || bk.Count == 0 {
			t.Fatalf("bucket %+v after upper bound %v", bk, prev)
		}
		prev = bk.UpperMs
		sum += bk.Count
	}
	if sum != 2000 {
		t.Fatalf("buckets hold %d values, want 2000", sum)
	}
	if math.Abs(prev-999) > 999*0.01 {
		t.Fatalf("last bucket ends at %vms, want about 999ms", prev)
	}
}

func TestHistogramRecordDoesNotAllocate(t *testing.T) {
	var h Histogram
	d := time.Duration(0)
	if n := testing.AllocsPerRun(1000, func() {
		d += 12345
		h.Record(d)
	}); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(0)
		for pb.Next() {
			d += 777
			h.Record(d % (100 * time.Millisecond))
		}
	})
}
