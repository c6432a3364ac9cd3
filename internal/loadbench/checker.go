package loadbench

// maxHoles bounds what a checker remembers of skipped seqs. A late arrival
// can only be told from a duplicate while its hole is remembered; past this
// many holes the oldest is given up as a gap, so a pathological stream costs
// bounded memory and CPU instead of a set per subscriber.
const maxHoles = 64

// seqRange is an inclusive range of seqs.
type seqRange struct{ lo, hi uint64 }

// seqChecker checks that one subscriber sees each seq of one topic exactly
// once and in order, starting right after the head its sub reply named.
//
// It is owned by the subscriber's reader goroutine; Run reads it only after
// that goroutine ended.
type seqChecker struct {
	// last is the highest seq seen, or the head before any delivery.
	last uint64
	// holes are the seqs skipped over that may still arrive late, oldest
	// first.
	holes []seqRange

	delivered  int64 // distinct seqs seen
	givenUp    int64 // seqs of holes evicted or closed by a reset
	duplicates int64
	outOfOrder int64
}

// start sets the head of the topic when the subscription began: the first
// delivery must be head+1.
func (c *seqChecker) start(head uint64) { c.last = head }

// observe accounts one delivered seq.
func (c *seqChecker) observe(seq uint64) {
	switch {
	case seq == c.last+1:
		c.last = seq
		c.delivered++
	case seq > c.last+1:
		c.addHole(c.last+1, seq-1)
		c.last = seq
		c.delivered++
	case c.fill(seq):
		c.outOfOrder++
		c.delivered++
	default:
		c.duplicates++
	}
}

// reset follows a reset frame: the topic goes on from seq in a new epoch, so
// whatever was still missing in the old epoch will never come.
func (c *seqChecker) reset(seq uint64) {
	c.givenUp += c.pending()
	c.holes = c.holes[:0]
	c.last = seq
}

// gaps returns the seqs skipped and not (yet) delivered.
func (c *seqChecker) gaps() int64 { return c.givenUp + c.pending() }

func (c *seqChecker) pending() int64 {
	var n int64
	for _, h := range c.holes {
		n += int64(h.hi - h.lo + 1)
	}
	return n
}

func (c *seqChecker) addHole(lo, hi uint64) {
	if len(c.holes) == maxHoles {
		c.givenUp += int64(c.holes[0].hi - c.holes[0].lo + 1)
		c.holes = append(c.holes[:0], c.holes[1:]...)
	}
	c.holes = append(c.holes, seqRange{lo, hi})
}

// fill removes seq from the holes and reports whether it was in one.
func (c *seqChecker) fill(seq uint64) bool {
	for i, h := range c.holes {
		if seq < h.lo || seq > h.hi {
			continue
		}
		switch {
		case h.lo == h.hi:
			c.holes = append(c.holes[:i], c.holes[i+1:]...)
		case seq == h.lo:
			c.holes[i].lo++
		case seq == h.hi:
			c.holes[i].hi--
		default:
			// Splitting adds a hole; the cap applies as for a new one.
			c.holes[i].hi = seq - 1
			rest := seqRange{seq + 1, h.hi}
			if len(c.holes) == maxHoles {
				c.givenUp += int64(c.holes[0].hi - c.holes[0].lo + 1)
				c.holes = append(c.holes[:0], c.holes[1:]...)
				i--
			}
			c.holes = append(c.holes, seqRange{})
			copy(c.holes[i+2:], c.holes[i+1:])
			c.holes[i+1] = rest
		}
		return true
	}
	return false
}
