package transport

import (
	"runtime"
	"sync"
)

// writerPool writes the sessions of one node (NodeState) whose Conn is a
// NonblockingConn and that have something queued, a few at a time, on at
// most max goroutines (one per CPU). A fan-out to 10,000 sessions then costs
// a queue of 10,000 pointers, not 10,000 goroutines started, scheduled and
// ended, and the sessions behind in the queue gather more frames into their
// one write while they wait.
//
// The goroutines exist only while the queue is not empty: an idle node has
// none. The zero value is ready to use.
type writerPool struct {
	mu sync.Mutex
	// Guarded by mu.
	max     int         // runtime.GOMAXPROCS, set by the first push
	ready   []*Outbound // ready[head:] wait for a writer, in order
	head    int
	running int
}

// spawnBacklog is how many sessions may wait before a second writer (up to
// max) starts: a short queue is drained faster by one goroutine than it
// takes to start another.
const spawnBacklog = 32

// passChunk is how many sessions a writer takes from the queue at once.
const passChunk = 16

// push queues o for a writer; o.writing is set and o.wg counts it.
func (p *writerPool) push(o *Outbound) {
	p.mu.Lock()
	if p.max == 0 {
		p.max = runtime.GOMAXPROCS(0)
	}
	p.ready = append(p.ready, o)
	start := p.running == 0 || (p.running < p.max && len(p.ready)-p.head > spawnBacklog*p.running)
	if start {
		p.running++
	}
	p.mu.Unlock()
	if start {
		go p.work()
	}
}

func (p *writerPool) work() {
	var chunk [passChunk]*Outbound
	for {
		p.mu.Lock()
		n := copy(chunk[:], p.ready[p.head:])
		if n == 0 {
			p.running--
			p.mu.Unlock()
			return
		}
		clear(p.ready[p.head : p.head+n])
		p.head += n
		switch {
		case p.head == len(p.ready):
			p.ready = p.ready[:0]
			p.head = 0
		case p.head > 4096 && p.head > len(p.ready)/2:
			// Keep the queue from creeping through memory under steady load.
			m := copy(p.ready, p.ready[p.head:])
			clear(p.ready[m:])
			p.ready = p.ready[:m]
			p.head = 0
		}
		p.mu.Unlock()
		for i, o := range chunk[:n] {
			o.pass()
			chunk[i] = nil
		}
	}
}
