package loadbench

import "testing"

func TestSeqChecker(t *testing.T) {
	tests := []struct {
		name       string
		head       uint64
		seqs       []uint64
		delivered  int64
		gaps       int64
		duplicates int64
		outOfOrder int64
	}{
		{
			name:      "in order",
			seqs:      []uint64{1, 2, 3, 4, 5},
			delivered: 5,
		},
		{
			name:      "in order after the head",
			head:      41,
			seqs:      []uint64{42, 43, 44},
			delivered: 3,
		},
		{
			name:      "gap",
			seqs:      []uint64{1, 2, 5, 6},
			delivered: 4,
			gaps:      2,
		},
		{
			name:      "first delivery after the head is missing",
			head:      10,
			seqs:      []uint64{12, 13},
			delivered: 2,
			gaps:      1,
		},
		{
			name:       "duplicate of the last",
			seqs:       []uint64{1, 2, 2, 3},
			delivered:  3,
			duplicates: 1,
		},
		{
			name:       "duplicate of an older seq",
			seqs:       []uint64{1, 2, 3, 1},
			delivered:  3,
			duplicates: 1,
		},
		{
			name:       "duplicate of a seq at or below the head",
			head:       5,
			seqs:       []uint64{5, 6},
			delivered:  1,
			duplicates: 1,
		},
		{
			name:       "reorder",
			seqs:       []uint64{1, 3, 2, 4},
			delivered:  4,
			outOfOrder: 1,
		},
		{
			name:       "reorder inside a wide hole",
			seqs:       []uint64{1, 10, 5, 2, 9, 3, 4, 6, 7, 8},
			delivered:  10,
			outOfOrder: 8,
		},
		{
			name:       "late arrival then its duplicate",
			seqs:       []uint64{1, 3, 2, 2},
			delivered:  3,
			outOfOrder: 1,
			duplicates: 1,
		},
		{
			name:       "gap, duplicate and reorder together",
			seqs:       []uint64{1, 2, 4, 3, 3, 7, 8},
			delivered:  6,
			gaps:       2,
			duplicates: 1,
			outOfOrder: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c seqChecker
			c.start(tt.head)
			for _, s := range tt.seqs {
				c.observe(s)
			}
			got := [4]int64{c.delivered, c.gaps(), c.duplicates, c.outOfOrder}
			want := [4]int64{tt.delivered, tt.gaps, tt.duplicates, tt.outOfOrder}
			if got != want {
				t.Fatalf("delivered, gaps, duplicates, out of order = %v, want %v (holes %v)", got, want, c.holes)
			}
		})
	}
}

func TestSeqCheckerReset(t *testing.T) {
	var c seqChecker
	c.start(0)
	for _, s := range []uint64{1, 2, 5} {
		c.observe(s)
	}
	// The new epoch restarts at 0: seqs 3 and 4 of the old one are gone,
	// and the low seqs of the new one are not duplicates.
	c.reset(0)
	for _, s := range []uint64{1, 2, 3} {
		c.observe(s)
	}
	if c.delivered != 6 || c.gaps() != 2 || c.duplicates != 0 || c.outOfOrder != 0 {
		t.Fatalf("after reset: delivered %d, gaps %d, duplicates %d, out of order %d; want 6, 2, 0, 0",
			c.delivered, c.gaps(), c.duplicates, c.outOfOrder)
	}
}

func TestSeqCheckerBoundsHoles(t *testing.T) {
	var c seqChecker
	c.start(0)
	// Every other seq missing: more holes than the checker remembers.
	var seq uint64
	for range 3 * maxHoles {
		seq += 2
		c.observe(seq)
	}
	if len(c.holes) > maxHoles {
		t.Fatalf("checker keeps %d holes, more than %d", len(c.holes), maxHoles)
	}
	if got := c.gaps(); got != 3*maxHoles {
		t.Fatalf("gaps = %d, want %d", got, 3*maxHoles)
	}
	// The newest holes can still be filled; the oldest were given up, so a
	// late seq of theirs reads as a duplicate.
	c.observe(seq - 1)
	c.observe(1)
	if c.outOfOrder != 1 || c.duplicates != 1 || c.gaps() != 3*maxHoles-1 {
		t.Fatalf("out of order %d, duplicates %d, gaps %d; want 1, 1, %d", c.outOfOrder, c.duplicates, c.gaps(), 3*maxHoles-1)
	}

	// Splitting a hole when the list is full evicts the oldest one too.
	var d seqChecker
	d.start(0)
	d.observe(1000) // hole 1..999
	for s := uint64(1002); len(d.holes) < maxHoles; s += 2 {
		d.observe(s)
	}
	before := d.gaps()
	d.observe(500) // splits 1..999 in two
	if len(d.holes) > maxHoles || d.gaps() != before-1 || d.outOfOrder != 1 {
		t.Fatalf("after split: %d holes, gaps %d (want %d), out of order %d", len(d.holes), d.gaps(), before-1, d.outOfOrder)
	}
	d.observe(700) // still in the upper half: remembered
	if d.outOfOrder != 2 {
		t.Fatalf("seq 700 of the split hole: out of order %d, want 2", d.outOfOrder)
	}
}
