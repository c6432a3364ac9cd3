package actors

import "github.com/topicast/topicast/transport"

// entry is one retained message.
type entry struct {
	seq   uint64
	at    int64 // publish time, Unix nanoseconds
	frame []byte
}

// history is a ring of the newest messages of a topic, oldest first. It grows
// by doubling up to max, so a topic with few messages stays small.
type history struct {
	buf   []entry
	head  int // index of the oldest entry
	count int
	max   int
	// metrics count the retained messages (HistoryMessages).
	metrics *transport.NodeMetrics
}

func newHistory(max int, metrics *transport.NodeMetrics) history {
	return history{max: max, metrics: metrics}
}

func (h *history) len() int { return h.count }

// at returns the i-th oldest entry.
func (h *history) at(i int) *entry { return &h.buf[(h.head+i)%len(h.buf)] }

func (h *history) oldest() *entry { return h.at(0) }

func (h *history) push(e entry) {
	if h.max <= 0 {
		return
	}
	if h.count == h.max {
		h.buf[h.head] = e
		h.head = (h.head + 1) % len(h.buf)
		return
	}
	if h.count == len(h.buf) {
		n := min(max(8, 2*len(h.buf)), h.max)
		buf := make([]entry, n)
		for i := 0; i < h.count; i++ {
			buf[i] = *h.at(i)
		}
		h.buf, h.head = buf, 0
	}
	h.buf[(h.head+h.count)%len(h.buf)] = e
	h.count++
	h.metrics.HistoryMessages.Add(1)
}

// dropOlder removes entries published before cutoff (Unix nanoseconds).
func (h *history) dropOlder(cutoff int64) {
	for h.count > 0 && h.oldest().at < cutoff {
		*h.oldest() = entry{}
		h.head = (h.head + 1) % len(h.buf)
		h.count--
		h.metrics.HistoryMessages.Add(-1)
	}
	if h.count == 0 && len(h.buf) > 8 {
		h.buf, h.head = nil, 0 // release an idle topic's memory
	}
}

// covers reports whether every message after seq up to head is retained.
func (h *history) covers(seq, head uint64) bool {
	if seq >= head {
		return seq == head
	}
	return h.count > 0 && h.oldest().seq <= seq+1
}

// after returns the frames of the retained messages with a seq above seq, at
// most limit of them (limit <= 0: all).
func (h *history) after(seq uint64, limit int) [][]byte {
	if h.count == 0 {
		return nil
	}
	first := h.oldest().seq
	skip := 0
	if seq >= first {
		skip = int(seq - first + 1)
	}
	n := h.count - skip
	if limit > 0 && n > limit {
		n = limit
	}
	if n <= 0 {
		return nil
	}
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = h.at(skip + i).frame
	}
	return frames
}
