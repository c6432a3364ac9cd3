package webrtc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// MaxDatagramSize is the largest frame sent on the datagram channel: it
// fits one SCTP chunk, so one lost packet loses one message.
const MaxDatagramSize = 1200

const (
	// maxBuffered bounds the bytes a session's "topicast" channel holds
	// unacknowledged in SCTP before the writer waits; with the Outbound's
	// own queue it bounds what a slow client costs.
	maxBuffered = 256 << 10
	// maxDatagramBuffered bounds the datagram channel's SCTP buffer:
	// beyond it datagrams wait in the session's drop-oldest queue, so a
	// client that falls behind gets the newest values, not stale ones.
	maxDatagramBuffered = 16 << 10
	// maxQueuedDatagrams bounds the datagrams waiting for the channel.
	maxQueuedDatagrams = 32
	// closeTimeout bounds how long a close waits for its frame to be
	// acknowledged before it closes the peer connection.
	closeTimeout = time.Second
	// readBufSize is a session's initial read buffer; it grows for long
	// messages and shrinks back once they are handled.
	readBufSize = 2048
	// maxIdleReadBuf is the largest read buffer kept between messages.
	maxIdleReadBuf = 16 << 10
	// maxKeptWriteBuf keeps a session from holding a rare huge write buffer.
	maxKeptWriteBuf = 64 << 10
)

// errPeerClosed ends a session whose peer connection failed or closed.
var errPeerClosed = fmt.Errorf("topicast: webrtc: peer connection closed: %w", net.ErrClosed)

// peer is one peer connection, from the offer until it is closed.
type peer struct {
	srv  *Server
	pc   *webrtc.PeerConnection
	info transport.SessionInfo
	log  *slog.Logger
	// timer closes the peer connection if "topicast" is not open in time.
	timer *time.Timer
	// isPending is true while the peer counts in srv.pending.
	isPending atomic.Bool
	closeOnce sync.Once
	// done is closed once the peer connection is closed.
	done chan struct{}

	mu       sync.Mutex
	sess     *session
	mainSeen bool
	dgSeen   bool
	dg       *webrtc.DataChannel
	dgRaw    datachannel.ReadWriteCloser
	dgLow    chan struct{}
}

// negotiate applies offer and returns the answer once ICE gathering is
// complete.
func (p *peer) negotiate(offer string) (string, error) {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", wire.Errorf(wire.CodeBadRequest, "the offer cannot be used: %v", err)
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", wire.Errorf(wire.CodeBadRequest, "the offer cannot be answered: %v", err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("topicast: webrtc: local description: %w", err)
	}
	t := time.NewTimer(gatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
		return "", fmt.Errorf("topicast: webrtc: ICE gathering took over %v", gatherTimeout)
	case <-p.srv.ctx.Done():
		return "", wire.Errorf(wire.CodeUnavailable, "the server is shutting down")
	}
	return p.pc.LocalDescription().SDP, nil
}

// release stops counting p as being set up.
func (p *peer) release() {
	if p.isPending.CompareAndSwap(true, false) {
		p.srv.pending.Add(-1)
	}
}

// close closes the peer connection, once, and forgets it.
func (p *peer) close() {
	p.closeOnce.Do(func() {
		if p.timer != nil {
			p.timer.Stop()
		}
		p.release()
		if err := p.pc.Close(); err != nil {
			p.log.LogAttrs(context.Background(), slog.LevelDebug, "webrtc: closing the peer connection", slog.Any("err", err))
		}
		close(p.done)
		p.srv.forget(p)
	})
}

// expire closes a peer connection whose session never started.
func (p *peer) expire() {
	p.mu.Lock()
	started := p.sess != nil
	p.mu.Unlock()
	if started {
		return
	}
	p.log.LogAttrs(context.Background(), slog.LevelDebug, "webrtc: the topicast channel did not open in time",
		slog.Duration("timeout", p.srv.cfg.ConnectTimeout), slog.String("remote", p.info.RemoteAddr))
	p.close()
}

// onState ends the session, or the peer connection being set up, when the
// connection fails or closes.
func (p *peer) onState(st webrtc.PeerConnectionState) {
	if st != webrtc.PeerConnectionStateFailed && st != webrtc.PeerConnectionStateClosed {
		return
	}
	p.mu.Lock()
	ss := p.sess
	p.mu.Unlock()
	if ss != nil {
		ss.Fail(errPeerClosed)
	}
	// Not on pion's goroutine: closing waits for it.
	go p.close()
}

// onDataChannel takes the client's channels; channels of other labels, and
// second ones of a label, are closed.
func (p *peer) onDataChannel(dc *webrtc.DataChannel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case dc.Label() == ChannelLabel && !p.mainSeen:
		p.mainSeen = true
		dc.OnOpen(func() { p.openSession(dc) })
	case dc.Label() == DatagramChannelLabel && !p.dgSeen:
		p.dgSeen = true
		dc.OnOpen(func() { p.openDatagram(dc) })
	default:
		p.log.LogAttrs(context.Background(), slog.LevelDebug, "webrtc: unexpected data channel closed",
			slog.String("label", dc.Label()))
		go dc.Close() //nolint:errcheck // best effort, the channel is refused
	}
}

// openSession starts the session when "topicast" opens. It runs on a
// goroutine of pion's, which it hands the session's reading to.
func (p *peer) openSession(dc *webrtc.DataChannel) {
	raw, err := dc.Detach()
	if err != nil {
		p.log.LogAttrs(context.Background(), slog.LevelWarn, "webrtc: detaching the topicast channel", slog.Any("err", err))
		p.close()
		return
	}
	s := p.srv
	ss := &session{
		p:       p,
		dc:      dc,
		raw:     raw,
		timeout: s.cfg.WriteTimeout,
		maxSend: maxSendMessage,
		low:     make(chan struct{}, 1),
	}
	if sctp := p.pc.SCTP(); sctp != nil {
		if m := int(sctp.GetCapabilities().MaxMessageSize); m > 0 && m < ss.maxSend {
			ss.maxSend = m
		}
	}
	ss.dgLimit.Store(MaxDatagramSize)
	dc.SetBufferedAmountLowThreshold(maxBuffered / 2)
	dc.OnBufferedAmountLow(func() { signal(ss.low) })
	ss.Init(ss, transport.OutboundConfig{MaxPendingBytes: s.cfg.MaxPendingBytes, Keepalive: s.cfg.Keepalive,
		NodeState: s.cfg.NodeState})

	p.mu.Lock()
	p.sess = ss
	p.mu.Unlock()
	p.release()
	if p.timer != nil {
		p.timer.Stop()
	}
	if !s.sessionOpened(ss) {
		ss.Close(transport.DisconnectShutdown)
		ss.Wait()
		p.close()
		return
	}
	defer func() {
		ss.Wait()
		ss.waitDatagrams()
		s.sessionEnded(ss)
		p.close()
	}()
	handler := s.cfg.Accept(ss)
	if !dc.Ordered() || dc.MaxRetransmits() != nil || dc.MaxPacketLifeTime() != nil {
		ss.Close(transport.Disconnect{Code: wire.CloseProtocolError, Reason: "the topicast channel must be ordered and reliable"})
	}
	cause := ss.readLoop(handler, s.limit)
	handler.HandleClosed(cause)
}

// openDatagram takes the datagram channel. The client never sends on it;
// what it sends anyway is read and dropped, so that it cannot fill the
// association's receive window.
func (p *peer) openDatagram(dc *webrtc.DataChannel) {
	raw, err := dc.Detach()
	if err != nil {
		p.log.LogAttrs(context.Background(), slog.LevelDebug, "webrtc: detaching the datagram channel", slog.Any("err", err))
		return
	}
	low := make(chan struct{}, 1)
	dc.SetBufferedAmountLowThreshold(maxDatagramBuffered / 2)
	dc.OnBufferedAmountLow(func() { signal(low) })
	p.mu.Lock()
	p.dg, p.dgRaw, p.dgLow = dc, raw, low
	p.mu.Unlock()
	buf := make([]byte, 2048)
	for {
		_, _, err := raw.ReadDataChannel(buf)
		switch {
		case errors.Is(err, io.ErrShortBuffer) && len(buf) <= p.srv.limit:
			buf = make([]byte, min(2*len(buf), p.srv.limit+1))
		case err != nil:
			if errors.Is(err, io.ErrShortBuffer) {
				p.mu.Lock()
				ss := p.sess
				p.mu.Unlock()
				if ss != nil {
					ss.Close(transport.DisconnectTooLarge)
				} else {
					p.close()
				}
			}
			return // the channel or the peer connection is closed
		}
	}
}

// datagramChannel returns the datagram channel, nil until it is open.
func (p *peer) datagramChannel() (*webrtc.DataChannel, datachannel.ReadWriteCloser, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dg, p.dgRaw, p.dgLow
}

// signal wakes a waiter of ch without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// session is a WebRTC session: frames on the "topicast" channel, datagram
// subscriptions on "topicast-datagram".
type session struct {
	transport.Outbound
	p       *peer
	dc      *webrtc.DataChannel
	raw     datachannel.ReadWriteCloser
	timeout time.Duration
	// maxSend is the largest message sent: the client's SCTP
	// max-message-size, at most maxSendMessage.
	maxSend int
	// low is signalled when the channel's buffer drains below half of
	// maxBuffered.
	low chan struct{}
	// buf joins frames; owned by the writer (the Outbound calls
	// WriteFrames from one goroutine at a time).
	buf []byte

	dgLimit   atomic.Int64
	dgDropped atomic.Uint64
	dgWG      sync.WaitGroup

	// Guarded by dgMu.
	dgMu      sync.Mutex
	dgQueue   [][]byte
	dgSending bool
}

var (
	_ transport.Session         = (*session)(nil)
	_ transport.DatagramSession = (*session)(nil)
	_ transport.LatestSession   = (*session)(nil)
	_ transport.Conn            = (*session)(nil)
)

func (s *session) Info() *transport.SessionInfo { return &s.p.info }

// errFrameTooLarge fails a write of a frame larger than the client takes.
var errFrameTooLarge = errors.New("topicast: webrtc: frame larger than the client's max-message-size")

// WriteFrames writes frames joined by "\n", in as few channel messages as
// the client's max-message-size allows.
func (s *session) WriteFrames(frames [][]byte) error {
	b := s.buf[:0]
	for _, f := range frames {
		if len(f) > s.maxSend {
			s.p.log.LogAttrs(context.Background(), slog.LevelWarn, "webrtc: a frame is larger than the client accepts",
				slog.Int("frame", len(f)), slog.Int("max_message_size", s.maxSend))
			return errFrameTooLarge
		}
		if len(b) > 0 && len(b)+1+len(f) > s.maxSend {
			if err := s.send(b); err != nil {
				return err
			}
			b = b[:0]
		}
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = append(b, f...)
	}
	err := s.send(b)
	if cap(b) <= maxKeptWriteBuf {
		s.buf = b[:0]
	} else {
		s.buf = nil
	}
	return err
}

// send writes one channel message once the channel's buffer is below
// maxBuffered, waiting at most the write timeout for it.
func (s *session) send(b []byte) error {
	if s.dc.BufferedAmount() > maxBuffered {
		t := time.NewTimer(s.timeout)
		defer t.Stop()
		for s.dc.BufferedAmount() > maxBuffered {
			select {
			case <-s.low:
			case <-t.C:
				return os.ErrDeadlineExceeded
			case <-s.p.done:
				return errPeerClosed
			}
		}
	}
	_, err := s.raw.WriteDataChannel(b, true) // pion copies b
	return err
}

// WriteClose sends d as a close frame, waits up to closeTimeout for the
// client to acknowledge it, then closes the peer connection.
func (s *session) WriteClose(d transport.Disconnect) {
	if _, err := s.raw.WriteDataChannel(wire.AppendCloseFrame(nil, d.Code, d.Reason), true); err == nil {
		deadline := time.Now().Add(closeTimeout)
		for s.dc.BufferedAmount() > 0 && time.Now().Before(deadline) {
			select {
			case <-s.p.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	s.p.close()
}

// Abort closes the peer connection without a close frame: the channel is
// broken, or so full (a write timed out) that the frame would wait behind
// what the client does not read.
func (s *session) Abort() { s.p.close() }

// WriteDatagram queues frame for the datagram channel, and reports false
// (without error) when the frame is too large for one or the client did
// not open that channel, so the caller uses the stream. It never blocks:
// when more than maxQueuedDatagrams wait, the oldest is dropped.
func (s *session) WriteDatagram(frame []byte) (bool, error) {
	if int64(len(frame)) > s.dgLimit.Load() {
		return false, nil
	}
	if s.Context().Err() != nil {
		return false, transport.ErrClosed
	}
	if dc, _, _ := s.p.datagramChannel(); dc == nil {
		return false, nil
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
		s.dgWG.Go(s.sendDatagrams)
	}
	return true, nil
}

// DatagramsDropped returns how many datagrams were dropped because the
// client fell behind or the session closed.
func (s *session) DatagramsDropped() uint64 { return s.dgDropped.Load() }

// sendDatagrams runs while datagrams are queued. It hands the channel one
// datagram at a time while its buffer is below maxDatagramBuffered, so
// that the backlog waits in the drop-oldest queue.
func (s *session) sendDatagrams() {
	dc, raw, low := s.p.datagramChannel()
	for {
		s.dgMu.Lock()
		if len(s.dgQueue) == 0 || s.Context().Err() != nil {
			s.dgDropped.Add(uint64(len(s.dgQueue)))
			clear(s.dgQueue)
			s.dgQueue = s.dgQueue[:0]
			s.dgSending = false
			s.dgMu.Unlock()
			return
		}
		if dc.BufferedAmount() > maxDatagramBuffered {
			s.dgMu.Unlock()
			select {
			case <-low:
			case <-s.p.done:
			case <-s.Context().Done():
			}
			continue
		}
		f := s.dgQueue[0]
		copy(s.dgQueue, s.dgQueue[1:])
		s.dgQueue[len(s.dgQueue)-1] = nil
		s.dgQueue = s.dgQueue[:len(s.dgQueue)-1]
		s.dgMu.Unlock()
		if _, err := raw.WriteDataChannel(f, true); err != nil {
			s.dgDropped.Add(1) // the channel is closed: the loop drains on the session's end
		}
	}
}

func (s *session) waitDatagrams() { s.dgWG.Wait() }

// readLoop reads the client's messages until the session ends and returns
// the cause. A frame longer than limit closes the session with 1009.
func (s *session) readLoop(h transport.Handler, limit int) error {
	buf := make([]byte, readBufSize)
	for {
		n, _, err := s.raw.ReadDataChannel(buf)
		if errors.Is(err, io.ErrShortBuffer) {
			// The message waits for a buffer that holds it; pion does not
			// tell its size.
			if len(buf) > limit {
				return s.tooLarge()
			}
			buf = make([]byte, min(2*len(buf), limit+1))
			continue
		}
		if n > 0 {
			s.MarkRead()
			for line := range bytes.SplitSeq(buf[:n], []byte{'\n'}) {
				if len(line) > limit {
					return s.tooLarge()
				}
				deliver(h, line)
			}
			if len(buf) > maxIdleReadBuf {
				buf = make([]byte, readBufSize)
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				// The client closed its channel: close as it asked.
				s.Close(transport.DisconnectNormal)
				return s.waitClosed()
			}
			s.Fail(err)
			s.p.close() // a writer waiting for the channel stops now
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
