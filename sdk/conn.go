package sdk

import (
	"sync"
	"sync/atomic"
	"time"
)

// maxJoinedBytes bounds the frames the writer joins into one message, far
// below the server's limit on a message (--max-message plus 4 KiB). A
// larger frame goes alone.
const maxJoinedBytes = 4096

// conn is one connection and its writer queue. The client's run loop owns
// it: it starts the reader and the writer, and joins them through wg.
type conn struct {
	tc  transportConn
	url string
	wg  sync.WaitGroup

	// done is closed by fail; cause is set before.
	done     chan struct{}
	failOnce sync.Once
	cause    error

	// Unix nanoseconds of the last data read and the last write done.
	lastRead  atomic.Int64
	lastWrite atomic.Int64
	// gotFrame is set once the server sent a frame.
	gotFrame atomic.Bool

	wake chan struct{}
	// Guarded by mu.
	mu    sync.Mutex
	queue [][]byte
}

func newConn(tc transportConn, url string) *conn {
	cn := &conn{tc: tc, url: url, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	now := time.Now().UnixNano()
	cn.lastRead.Store(now)
	cn.lastWrite.Store(now)
	return cn
}

// enqueue queues frame for the writer. It never blocks; frames queued after
// the connection failed are dropped.
func (cn *conn) enqueue(frame []byte) {
	cn.mu.Lock()
	cn.queue = append(cn.queue, frame)
	cn.mu.Unlock()
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// fail ends the connection with cause, once, and aborts the transport so
// that the reader and the writer return.
func (cn *conn) fail(cause error) {
	cn.failOnce.Do(func() {
		cn.cause = cause
		close(cn.done)
		cn.tc.abort()
	})
}

// writeLoop is the connection's writer goroutine.
func (cn *conn) writeLoop() {
	defer cn.wg.Done()
	var batch [][]byte
	for {
		select {
		case <-cn.done:
			return
		case <-cn.wake:
		}
		cn.mu.Lock()
		batch, cn.queue = cn.queue, batch[:0]
		cn.mu.Unlock()
		for i := 0; i < len(batch); {
			n, size := i+1, len(batch[i])
			for n < len(batch) && size+1+len(batch[n]) <= maxJoinedBytes {
				size += 1 + len(batch[n])
				n++
			}
			if err := cn.tc.writeFrames(batch[i:n]); err != nil {
				cn.fail(err)
				return
			}
			cn.lastWrite.Store(time.Now().UnixNano())
			i = n
		}
		clear(batch)
		batch = batch[:0]
	}
}
