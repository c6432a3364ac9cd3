package transport

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
)

// DefaultMaxPendingBytes bounds a session's outbound queue when the config
// leaves it zero.
const DefaultMaxPendingBytes = 1 << 20

// Conn is what an adapter gives its Outbound: the network side of a session.
// The Outbound calls its methods from one goroutine at a time.
type Conn interface {
	// WriteFrames writes frames to the client as one unit (one WebSocket
	// message, one stream write), with a write deadline. It must not keep
	// frames after it returns.
	WriteFrames(frames [][]byte) error
	// WriteClose sends d to the client, best effort and with a deadline, and
	// then closes the connection.
	WriteClose(d Disconnect)
	// Abort closes the connection at once, without a close frame.
	Abort()
}

// OutboundConfig configures an Outbound.
type OutboundConfig struct {
	// MaxPendingBytes bounds the bytes queued and not yet taken by the
	// writer. Zero means DefaultMaxPendingBytes.
	MaxPendingBytes int
	// Keepalive, if set, tracks the session for heartbeats.
	Keepalive *Keepalive
	// OnClose, if set, is called once when the session is closed, from the
	// goroutine that closed it. It must not block.
	OnClose func(cause error)
	// NodeState is the node the session belongs to: its frames count in the
	// node's backlog (PendingBytes) and Metrics, and the node's pooled
	// writers write it when its Conn is a NonblockingConn. Nil means a
	// NodeState of the session's own, shared with no other session (tests).
	NodeState *NodeState
}

// NonblockingConn is a Conn that can also write without waiting for the
// socket. Its sessions are written by their node's few pooled writers (see
// writerPool) instead of a goroutine of their own per burst of writes.
type NonblockingConn interface {
	Conn
	// TryWriteFrames writes frames as WriteFrames does, as far as the
	// socket takes them at once. When part is left it returns finish, which
	// writes the rest as WriteFrames would (blocking, with a deadline); no
	// other write to the connection may start before finish returns.
	TryWriteFrames(frames [][]byte) (finish func() error, err error)
}

// Outbound is a session's bounded outbound queue and its writer. Adapters
// embed it to implement Session's writing half. It is goroutine-safe.
//
// No goroutine belongs to an idle session. A session whose Conn is a
// NonblockingConn is written by the pooled writers while its socket takes
// what is written, and by a goroutine of its own only while the socket is
// full; any other gets a writer goroutine while there is something to write.
type Outbound struct {
	conn     Conn
	nb       NonblockingConn // conn, when it is one
	node     *NodeState
	maxBytes int
	ka       *Keepalive
	onClose  func(cause error)
	ctx      context.Context
	cancel   context.CancelCauseFunc
	wg       sync.WaitGroup

	// Written by the writer and read by Keepalive's sweeper.
	wrote atomic.Bool
	read  atomic.Bool

	// Owned by the writer goroutine: batches of msg frames written, for the
	// latency sample.
	msgBatches uint64

	// Owned by the Keepalive sweeper.
	idleWrites, idleReads int

	// Guarded by mu.
	mu        sync.Mutex
	queue     [][]byte
	spare     [][]byte
	bytes     int
	writing   bool
	closing   bool
	closeWith Disconnect
	failErr   error
	closed    bool
	backlog   bool // the queue holds recovered frames: not timed in NodeMetrics
	// latest maps a latest-value topic to the index in queue of its one
	// frame waiting there; emptied when the writer takes the queue.
	latest map[string]int
}

// Init prepares o to write to conn. It must be called once, before use.
func (o *Outbound) Init(conn Conn, cfg OutboundConfig) {
	o.conn = conn
	o.nb, _ = conn.(NonblockingConn)
	o.node = cfg.NodeState
	if o.node == nil {
		o.node = new(NodeState)
	}
	o.maxBytes = cfg.MaxPendingBytes
	if o.maxBytes == 0 {
		o.maxBytes = DefaultMaxPendingBytes
	}
	o.onClose = cfg.OnClose
	o.ctx, o.cancel = context.WithCancelCause(context.Background())
	o.ka = cfg.Keepalive
	if o.ka != nil {
		o.read.Store(true)
		o.ka.add(o)
	}
}

// Context is cancelled when the session has closed, with the cause.
func (o *Outbound) Context() context.Context { return o.ctx }

// MarkRead records that the client sent something (for heartbeats).
func (o *Outbound) MarkRead() { o.read.Store(true) }

// Write queues one frame; see Session.Write.
func (o *Outbound) Write(frame []byte) error {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return ErrClosed
	}
	return o.queuedLocked(o.appendLocked(frame))
}

// appendLocked queues frame and counts its bytes, returning what was queued
// before it. o.mu must be held.
func (o *Outbound) appendLocked(frame []byte) (before int) {
	before = o.bytes
	o.queue = append(o.queue, frame)
	o.bytes += len(frame)
	o.node.pending.Add(int64(len(frame)))
	return before
}

// WriteMany queues frames in order; see Session.WriteMany.
func (o *Outbound) WriteMany(frames [][]byte) error {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return ErrClosed
	}
	before := o.bytes
	o.queue = append(o.queue, frames...)
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	o.bytes += n
	o.node.pending.Add(int64(n))
	return o.queuedLocked(before)
}

// WriteLatest queues frame as the newest message of a latest-value
// subscription to topic; see LatestSession.
func (o *Outbound) WriteLatest(topic string, frame []byte) error {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return ErrClosed
	}
	if i, ok := o.latest[topic]; ok {
		// The writer has not taken the older one yet: the newest takes
		// its place in the queue, and its bytes are released.
		delta := len(frame) - len(o.queue[i])
		o.queue[i] = frame
		o.bytes += delta
		o.node.pending.Add(int64(delta))
		o.mu.Unlock()
		o.node.Metrics.Conflated.Add(1)
		return nil
	}
	if o.latest == nil {
		o.latest = make(map[string]int)
	}
	o.latest[topic] = len(o.queue)
	o.appendLocked(frame)
	// At most one frame per topic waits: its volume never makes the client
	// too slow (only other frames over the bound, or a write timeout, do).
	return o.queuedLocked(0)
}

// WriteLatestBarrier queues frame after the topic's latest-value frame; see
// LatestSession.
func (o *Outbound) WriteLatestBarrier(topic string, frame []byte) error {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return ErrClosed
	}
	delete(o.latest, topic)
	return o.queuedLocked(o.appendLocked(frame))
}

// WriteBacklog queues frames without counting them against the bound; see
// Session.WriteBacklog.
func (o *Outbound) WriteBacklog(frames [][]byte) error {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return ErrClosed
	}
	o.queue = append(o.queue, frames...)
	o.backlog = true
	return o.queuedLocked(o.bytes)
}

// queuedLocked starts the writer if needed and unlocks o.mu. before is what
// was queued ahead of the frames just added: a client is too slow when frames
// wait behind others over the bound, not when one batch (a large publish) is
// bigger than the bound on its own.
func (o *Outbound) queuedLocked(before int) error {
	if before > 0 && o.bytes > o.maxBytes {
		o.closeLocked(DisconnectSlow)
		o.mu.Unlock()
		return DisconnectSlow
	}
	start := !o.writing
	o.writing = true
	o.mu.Unlock()
	if start {
		o.startWriter()
	}
	return nil
}

// dropQueueLocked drops what is queued. o.mu must be held.
func (o *Outbound) dropQueueLocked() {
	clear(o.queue)
	o.queue = o.queue[:0]
	clear(o.latest)
	o.dropBytesLocked()
}

// dropBytesLocked forgets the queue's byte count (the frames were taken or
// dropped). o.mu must be held.
func (o *Outbound) dropBytesLocked() {
	o.node.pending.Add(-int64(o.bytes))
	o.bytes = 0
}

// Pending returns the number of frames and bytes queued and not yet taken by
// the writer.
func (o *Outbound) Pending() (frames, bytes int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue), o.bytes
}

// Close writes what is queued, then d; see Session.Close. A slow-consumer
// close drops the queue instead.
func (o *Outbound) Close(d Disconnect) {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return
	}
	o.closeLocked(d)
	o.mu.Unlock()
}

func (o *Outbound) closeLocked(d Disconnect) {
	o.closing = true
	o.closeWith = d
	if d.Code == DisconnectSlow.Code {
		o.dropQueueLocked()
	}
	if !o.writing {
		o.writing = true
		o.startWriter()
	}
}

// Fail records that the connection broke (a read error, say): nothing more
// is written and the connection is aborted.
func (o *Outbound) Fail(err error) {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return
	}
	o.closing = true
	o.closeWith = Disconnect{}
	o.failErr = err
	o.dropQueueLocked()
	writing := o.writing
	o.mu.Unlock()
	if !writing {
		o.conn.Abort()
		o.finish(err)
	}
	// A running writer sees closing and finishes.
}

// Wait blocks until the writer goroutine, if any, has returned.
func (o *Outbound) Wait() { o.wg.Wait() }

func (o *Outbound) startWriter() {
	o.wg.Add(1)
	if o.nb != nil {
		o.node.writers.push(o)
		return
	}
	go o.run(nil)
}

// pass is a pooled writer's turn at o: one batch written without waiting
// for the socket. A session with more queued after it goes to the back of
// the pool's queue, so one busy session cannot hold a writer; one whose
// socket is full, or that closes, continues on a goroutine of its own.
func (o *Outbound) pass() {
	o.mu.Lock()
	if len(o.queue) == 0 {
		if o.closing {
			// The close frame's write may wait: not on a pooled writer.
			o.mu.Unlock()
			go o.run(nil)
			return
		}
		o.writing = false
		o.mu.Unlock()
		o.wg.Done()
		return
	}
	batch, taken, backlog := o.takeLocked()
	o.mu.Unlock()

	finish, err := o.nb.TryWriteFrames(batch)
	if finish != nil {
		go o.finishAndRun(finish, batch, taken, backlog)
		return
	}
	if !o.written(batch, taken, backlog, err) {
		o.wg.Done()
		return
	}
	o.mu.Lock()
	o.recycleLocked(batch)
	if len(o.queue) == 0 && !o.closing {
		o.writing = false
		o.mu.Unlock()
		o.wg.Done()
		return
	}
	o.mu.Unlock()
	o.node.writers.push(o)
}

// finishAndRun writes the rest of a batch that the socket did not take at
// once, then goes on as the session's own writer until the queue is empty.
func (o *Outbound) finishAndRun(finish func() error, batch [][]byte, taken int, backlog bool) {
	if !o.written(batch, taken, backlog, finish()) {
		o.wg.Done()
		return
	}
	o.run(batch)
}

// written accounts for a batch whose write ended with err. On an error it
// closes the session and returns false: the caller's writing is over. It
// takes no lock on success: the caller recycles the batch (recycleLocked)
// under the lock it takes next.
func (o *Outbound) written(batch [][]byte, taken int, backlog bool, err error) bool {
	o.node.pending.Add(-int64(taken))
	if err == nil {
		o.node.Metrics.countWritten(batch, backlog, &o.msgBatches)
	}
	clear(batch)
	if err != nil {
		d := Disconnect{}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			d = DisconnectWriteSlow
		}
		o.mu.Lock()
		o.closing = true
		o.dropQueueLocked()
		o.mu.Unlock()
		o.conn.Abort()
		if d.Code != 0 {
			o.finish(d)
		} else {
			o.finish(err)
		}
		return false
	}
	o.wrote.Store(true)
	return true
}

// recycleLocked keeps a written batch's array for the next queue: the caller
// takes o.mu next anyway, so the recycling costs no lock of its own. o.mu must
// be held.
func (o *Outbound) recycleLocked(batch [][]byte) {
	if batch != nil && o.spare == nil && cap(batch) <= 4096 {
		o.spare = batch[:0]
	}
}

// run is the session's own writer until the queue is empty; done is a batch
// it takes over, already written, whose array it recycles.
func (o *Outbound) run(done [][]byte) {
	defer o.wg.Done()
	for {
		o.mu.Lock()
		o.recycleLocked(done)
		done = nil
		if len(o.queue) == 0 {
			if o.closing {
				d := o.closeWith
				o.mu.Unlock()
				if d.Code == 0 {
					o.conn.Abort()
					o.finish(o.failErr)
					return
				}
				o.conn.WriteClose(d)
				o.finish(d)
				return
			}
			o.writing = false
			o.mu.Unlock()
			return
		}
		batch, taken, backlog := o.takeLocked()
		o.mu.Unlock()

		if !o.written(batch, taken, backlog, o.conn.WriteFrames(batch)) {
			return
		}
		done = batch
	}
}

// takeLocked takes everything queued for one write. The batch leaves the
// queue's bound now but stays in the node's backlog until it is written: a
// writer waiting for the CPU or the socket still holds it. o.mu must be held.
func (o *Outbound) takeLocked() (batch [][]byte, taken int, backlog bool) {
	batch = o.queue
	o.queue = o.spare[:0]
	o.spare = nil
	if len(o.latest) > 0 {
		clear(o.latest)
	}
	taken, o.bytes = o.bytes, 0
	backlog, o.backlog = o.backlog, false
	return batch, taken, backlog
}

// finish marks the session closed once and tells everyone who cares.
func (o *Outbound) finish(cause error) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	o.mu.Unlock()
	if o.ka != nil {
		o.ka.remove(o)
	}
	o.cancel(cause)
	if o.onClose != nil {
		o.onClose(cause)
	}
}
