package transport

import "sync/atomic"

// NodeState is what the sessions of one node share: the node's counters
// (Metrics), its delivery backlog (PendingBytes) and the pooled writers of
// its sessions whose Conn is a NonblockingConn. A node makes one and hands
// it to every adapter (their Config), which hands it to each session's
// OutboundConfig; its actors count in its Metrics, and its publish
// backpressure and GET /metrics read it. Nothing in this package is shared
// between NodeStates, so several nodes in one process (tests) keep apart.
//
// The zero value is ready to use; a NodeState must not be copied after
// first use. Its methods and fields are goroutine-safe.
type NodeState struct {
	// Metrics are the node's counters.
	Metrics NodeMetrics

	// pending is the bytes queued in the node's Outbounds and not yet
	// written. Every Write adds to it: it keeps a cache line of its own,
	// away from the pool's lock and the counters the writers update.
	_       [64]byte
	pending atomic.Int64
	_       [56]byte

	writers writerPool
}

// PendingBytes returns the bytes queued for the node's clients and not yet
// written: its delivery backlog. Publishers can wait while it is high, which
// pushes back on them when the node cannot keep up.
func (s *NodeState) PendingBytes() int64 { return s.pending.Load() }
