package webtransport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/webtransport-go"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// MaxDatagramSize is the largest frame WriteDatagram sends as a datagram.
// QUIC datagrams must fit in one packet: quic-go allows about 1,400 bytes
// on loopback but Chromium reports 1,215, so larger frames go over the
// stream.
const MaxDatagramSize = 1200

const (
	// extraStreamCode resets streams a client opens beyond its first.
	extraStreamCode webtransport.StreamErrorCode = webtransport.StreamErrorCode(wire.CloseProtocolError)
	// maxQueuedDatagrams bounds the datagrams waiting for the sender; on
	// overflow the oldest is dropped (datagram subscriptions are "latest
	// wins").
	maxQueuedDatagrams = 32
	// datagramPrefixMax is the most the HTTP/3 layer adds in front of a
	// datagram (the quarter stream ID, a varint).
	datagramPrefixMax = 8
	// readBufSize is a session's initial read buffer; it grows to the line
	// limit for long lines and shrinks back once they are handled.
	readBufSize = 2048
	// maxIdleReadBuf is the largest read buffer kept between lines.
	maxIdleReadBuf = 16 << 10
	// maxPooledBuf keeps the write pool from holding on to rare huge
	// buffers.
	maxPooledBuf = 256 << 10
)

// session is one WebTransport session: the client's bidirectional stream
// carries NDJSON frames both ways, datagrams carry datagram subscriptions.
type session struct {
	transport.Outbound
	sess    *webtransport.Session
	str     *webtransport.Stream
	timeout time.Duration
	info    transport.SessionInfo
	log     *slog.Logger

	// deadline is the stream's write deadline, owned by the writer (the
	// Outbound calls WriteFrames from one goroutine at a time).
	deadline time.Time

	// writeTimedOut makes Abort report a slow consumer (4008) rather than
	// close without a code.
	writeTimedOut atomic.Bool

	// dgLimit is the largest frame sent as a datagram: MaxDatagramSize,
	// lowered if quic-go ever finds it too large for the path.
	dgLimit   atomic.Int64
	dgDropped atomic.Uint64
	dgWG      sync.WaitGroup

	// Guarded by dgMu.
	dgMu      sync.Mutex
	dgQueue   [][]byte
	dgSpare   [][]byte
	dgSending bool
}

var (
	_ transport.Session         = (*session)(nil)
	_ transport.DatagramSession = (*session)(nil)
	_ transport.Conn            = (*session)(nil)
)

func (s *session) Info() *transport.SessionInfo { return &s.info }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// WriteFrames writes frames, each followed by "\n", in one stream write.
func (s *session) WriteFrames(frames [][]byte) error {
	n := len(frames)
	for _, f := range frames {
		n += len(f)
	}
	bp := bufPool.Get().(*[]byte)
	b := slices.Grow((*bp)[:0], n)
	for _, f := range frames {
		b = append(b, f...)
		b = append(b, '\n')
	}
	err := s.renewDeadline()
	if err == nil {
		_, err = s.str.Write(b)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.writeTimedOut.Store(true)
	}
	if cap(b) <= maxPooledBuf {
		*bp = b[:0]
		bufPool.Put(bp)
	}
	return err
}

// renewDeadline keeps the write deadline between half the write timeout and
// the whole of it ahead, as the WebSocket adapter does: setting it takes two
// locks and wakes the stream's writer, so it is moved only when half of it
// has gone, and a blocked write fails after timeout/2 to timeout.
func (s *session) renewDeadline() error {
	now := time.Now()
	if s.deadline.Sub(now) >= s.timeout/2 {
		return nil
	}
	s.deadline = now.Add(s.timeout)
	return s.str.SetWriteDeadline(s.deadline)
}

// WriteClose closes the session with d's code and reason. A WebTransport
// session close resets its streams, so frames written just before may not
// reach the client.
func (s *session) WriteClose(d transport.Disconnect) {
	reason := d.Reason
	if len(reason) > transport.MaxReasonLen {
		reason = reason[:transport.MaxReasonLen]
	}
	_ = s.sess.CloseWithError(webtransport.SessionErrorCode(d.Code), reason) // always nil
}

// Abort closes the session without a protocol close code, or with 4008 when
// a write timed out: unlike a WebSocket, the close travels on another stream
// than the one that is stuck.
func (s *session) Abort() {
	if s.writeTimedOut.Load() {
		s.WriteClose(transport.DisconnectWriteSlow)
		return
	}
	_ = s.sess.CloseWithError(0, "") // always nil
}

// WriteDatagram sends frame as one QUIC datagram (no newline). It reports
// false, without error, when frame is larger than MaxDatagramSize (or than
// what the path was found to carry), so the caller writes it to the stream.
// It never blocks: datagrams are handed to a sender goroutine, and when more
// than maxQueuedDatagrams wait the oldest is dropped.
func (s *session) WriteDatagram(frame []byte) (bool, error) {
	if int64(len(frame)) > s.dgLimit.Load() {
		return false, nil
	}
	if s.Context().Err() != nil {
		return false, transport.ErrClosed
	}
	s.dgMu.Lock()
	if len(s.dgQueue) >= maxQueuedDatagrams {
		copy(s.dgQueue, s.dgQueue[1:])
		s.dgQueue = s.dgQueue[:len(s.dgQueue)-1]
		s.dgDropped.Add(1)
	}
	s.dgQueue = append(s.dgQueue, frame)
	start := !s.dgSending
	s.dgSending = true
	s.dgMu.Unlock()
	if start {
		// quic-go's SendDatagram blocks while its own queue is full
		// (congestion), so it runs here and not in the caller (an actor).
		s.dgWG.Go(s.sendDatagrams)
	}
	return true, nil
}

// DatagramsDropped returns how many datagrams were dropped because the
// client fell behind, the path could not carry them or the session closed.
func (s *session) DatagramsDropped() uint64 { return s.dgDropped.Load() }

// sendDatagrams runs while datagrams are queued.
func (s *session) sendDatagrams() {
	for {
		s.dgMu.Lock()
		batch := s.dgQueue
		if len(batch) == 0 || s.Context().Err() != nil || s.sess.Context().Err() != nil {
			s.dgDropped.Add(uint64(len(batch)))
			clear(batch)
			s.dgQueue = batch[:0]
			s.dgSending = false
			s.dgMu.Unlock()
			return
		}
		s.dgQueue = s.dgSpare[:0]
		s.dgSpare = nil
		s.dgMu.Unlock()

		for i, f := range batch {
			err := s.sess.SendDatagram(f)
			if err == nil {
				continue
			}
			var tooLarge *quic.DatagramTooLargeError
			if !errors.As(err, &tooLarge) {
				// The session is gone: its reader reports why.
				s.dgDropped.Add(uint64(len(batch) - i))
				break
			}
			// Too late to hand it back to the caller: drop it and send
			// frames this large over the stream from now on.
			s.dgDropped.Add(1)
			limit := min(tooLarge.MaxDatagramPayloadSize-datagramPrefixMax, int64(len(f)-1))
			s.dgLimit.Store(max(limit, 0))
		}
		clear(batch)
		s.dgMu.Lock()
		s.dgSpare = batch[:0]
		s.dgMu.Unlock()
	}
}

func (s *session) waitDatagrams() { s.dgWG.Wait() }

// rejectExtraStreams resets every bidirectional stream the client opens
// after its first, until the session ends: the protocol uses one.
// Unidirectional streams are never accepted; the QUIC stream limit and
// receive windows bound what they can hold.
func (s *session) rejectExtraStreams() {
	for {
		str, err := s.sess.AcceptStream(context.Background())
		if err != nil {
			return // the session is closed
		}
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.LogAttrs(context.Background(), slog.LevelDebug, "webtransport: extra stream reset")
		}
		str.CancelRead(extraStreamCode)
		str.CancelWrite(extraStreamCode)
	}
}

// readLoop reads NDJSON frames from the stream until the session ends and
// returns the cause. A line longer than limit closes the session with 1009.
func (s *session) readLoop(h transport.Handler, limit int) error {
	buf := make([]byte, readBufSize)
	start, end := 0, 0 // buf[start:end] is the unfinished line
	for {
		if end == len(buf) {
			switch {
			case start > 0:
				end = copy(buf, buf[start:end])
				start = 0
			default: // the unfinished line fills buf: it is not over limit yet
				nb := make([]byte, min(2*len(buf), limit+1))
				end = copy(nb, buf[start:end])
				buf = nb
			}
		}
		n, err := s.str.Read(buf[end:])
		if n > 0 {
			s.MarkRead()
			scan := end
			end += n
			for {
				i := bytes.IndexByte(buf[scan:end], '\n')
				if i < 0 {
					break
				}
				line := buf[start : scan+i]
				start, scan = scan+i+1, scan+i+1
				if len(line) > limit {
					return s.tooLarge()
				}
				deliver(h, line)
			}
			if end-start > limit {
				return s.tooLarge()
			}
			if start == end {
				start, end = 0, 0
				if len(buf) > maxIdleReadBuf {
					buf = make([]byte, readBufSize) // do not keep a long line's buffer for an idle session
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				// The client finished its stream: take its last line, then
				// close as it asked.
				deliver(h, buf[start:end])
				s.Close(transport.DisconnectNormal)
				return s.waitClosed()
			}
			s.Fail(err)
			return s.waitClosed()
		}
	}
}

// deliver hands one line to h, without "\r" and unless it is blank.
func deliver(h transport.Handler, line []byte) {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(bytes.TrimSpace(line)) > 0 {
		h.HandleFrame(line)
	}
}

func (s *session) tooLarge() error {
	s.Close(transport.DisconnectTooLarge)
	return s.waitClosed()
}

// waitClosed waits for the session to finish closing (the Outbound sends
// the close after what is queued) and returns the cause.
func (s *session) waitClosed() error {
	<-s.Context().Done()
	cause := context.Cause(s.Context())
	if d, ok := transport.AsDisconnect(cause); ok {
		return d
	}
	return cause
}
