package actors

import (
	"github.com/centrifugal/fdelta"

	"github.com/topicast/topicast/sdk/wire"
)

// relayDeltas is a relay's state for its "delta":"fossil" subscribers
// (PROTOCOL.md 1.1). The relay computes each message's delta against the
// message before it once, for all of its node's delta subscribers: the
// cost is per message and node, never per subscriber.
//
// Every subscriber of a relay is written every message of the relay's
// position in order, so a delta subscriber that has been written one
// message holds the data the next delta applies to. Only a subscriber that
// joined since the last delivery (fresh) gets its first message whole; a
// reset or a jump clears prev, so the next message goes whole to everyone.
type relayDeltas struct {
	subs    int               // delta subscribers
	fresh   map[*ConnRef]bool // delta subscribers not written a message yet
	prev    []byte            // the data of message prevSeq (of the relay's epoch); nil if none
	prevSeq uint64

	// Reused per delivery.
	deltas [][]byte // deltas[i] is frame i's delta frame, or nil
	based  [][]byte // the frames for a subscriber that holds the data before the first
	first  [][]byte // the frames for a fresh one
}

// added counts a new subscriber; a delta one starts fresh.
func (d *relayDeltas) added(s relaySub) {
	if !s.delta {
		return
	}
	d.subs++
	if d.fresh == nil {
		d.fresh = make(map[*ConnRef]bool)
	}
	d.fresh[s.conn] = true
}

// removed forgets a subscriber.
func (d *relayDeltas) removed(s relaySub) {
	if !s.delta {
		return
	}
	d.subs--
	delete(d.fresh, s.conn)
	if d.subs == 0 {
		d.prev = nil
	}
}

// forget drops the base: the next message goes whole to everyone (a
// reset, or a position that jumped).
func (d *relayDeltas) forget() { d.prev = nil }

// wrote records frames, written whole to every subscriber (a catch-up):
// the last one is everyone's base now.
func (d *relayDeltas) wrote(frames [][]byte) {
	if d.subs == 0 || len(frames) == 0 {
		return
	}
	clear(d.fresh)
	d.prev = nil
	if h, ok := wire.ParseHead(frames[len(frames)-1]); ok && h.Kind == wire.FrameMsg && !h.Delta {
		d.prev, d.prevSeq = h.Data, h.Seq
	}
}

// prepare computes the delta frames of frames, the next messages of the
// relay's position, each against the one before it; it returns false when
// there is no delta subscriber. saved* are the bytes a based or a fresh
// subscriber is spared.
func (d *relayDeltas) prepare(topic, epoch string, frames [][]byte) (savedBased, savedFresh int, ok bool) {
	if d.subs == 0 {
		return 0, 0, false
	}
	d.deltas = d.deltas[:0]
	for _, f := range frames {
		h, ok := wire.ParseHead(f)
		if !ok || h.Kind != wire.FrameMsg || h.Delta {
			d.deltas = append(d.deltas, nil)
			d.prev = nil
			continue
		}
		var df []byte
		if d.prev != nil && h.Seq == d.prevSeq+1 {
			// A delta is worth sending only when it is smaller than the
			// data, and can be sent only as valid UTF-8 (PROTOCOL.md).
			delta := fdelta.Create(d.prev, h.Data)
			if len(delta) < len(h.Data) && wire.ValidDelta(delta) {
				df = wire.AppendDeltaMsg(make([]byte, 0, len(delta)+len(f)-len(h.Data)+32), topic, epoch, h.Seq, h.TS, delta)
				if len(df) >= len(f) {
					df = nil // the string's escapes ate the gain
				}
			}
		}
		d.deltas = append(d.deltas, df)
		d.prev, d.prevSeq = h.Data, h.Seq
	}
	d.based = d.based[:0]
	d.first = d.first[:0]
	for i, f := range frames {
		df := d.deltas[i]
		switch {
		case df == nil:
			d.based = append(d.based, f)
			d.first = append(d.first, f)
		case i == 0:
			d.based = append(d.based, df)
			d.first = append(d.first, f)
			savedBased += len(f) - len(df)
		default:
			d.based = append(d.based, df)
			d.first = append(d.first, df)
			savedBased += len(f) - len(df)
			savedFresh += len(f) - len(df)
		}
	}
	return savedBased, savedFresh, true
}

// framesFor returns the frames prepare made for s, a delta subscriber, and
// the bytes it saves; s is no longer fresh after.
func (d *relayDeltas) framesFor(s relaySub, savedBased, savedFresh int) ([][]byte, int) {
	if d.fresh[s.conn] {
		delete(d.fresh, s.conn)
		return d.first, savedFresh
	}
	return d.based, savedBased
}
