package loadbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/topicast/topicast/sdk/wire"
)

const (
	// subID is the id of the only command a subscriber sends.
	subID = 1
	// readBufferSize is small because there is one buffer per connection
	// and deliveries are small; bigger payloads bypass the buffer anyway.
	readBufferSize = 2048
	// maxMessageSize bounds one WebSocket message, which may coalesce many
	// frames; it only protects the bench from a runaway peer.
	maxMessageSize = 16 << 20
	// writeTimeout bounds the rare writes of a subscriber (sub, pongs).
	writeTimeout = 5 * time.Second
)

// aLongTimeAgo is a deadline in the past, which makes blocked I/O return.
var aLongTimeAgo = time.Unix(1, 0)

// errNotSubscribed is the reason of a connection whose sub was not answered.
var errNotSubscribed = errors.New("loadbench: no reply to sub")

// subscriber is one WebSocket connection, WebTransport session or WebRTC
// peer connection, subscribed to one topic.
type subscriber struct {
	topic int
	node  int      // index in Config.URLs
	conn  net.Conn // WebSocket; nil otherwise
	wt    *wtLink  // WebTransport; nil otherwise
	rtc   *rtcLink // WebRTC; nil otherwise
	hist  *Histogram
	base  time.Time // start of the run, for lastDelivery

	wmu sync.Mutex // guards writes to conn or wt: the reader answers pings while Run closes

	// closing is set by Run before it ends the connection, so that the
	// reader does not count the end as a disconnect.
	closing atomic.Bool
	// delivered mirrors check.delivered for the progress bar and the drain.
	delivered atomic.Int64

	// Owned by the goroutine reading conn: the connect worker, then the
	// reader. Run reads them after that goroutine ended.
	rd           wsutil.Reader
	buf          []byte
	check        seqChecker
	subscribed   bool
	subErr       error
	lastDelivery time.Duration // since base
	resets       int64
	badFrames    int64
	ended        string // the error frame that ended the subscription
	readErr      error  // why reading stopped, nil when Run ended it
}

// dialSubscriber connects subscriber i (numbered over all processes of the
// run) to its node and subscribes it, all within cfg.DialTimeout.
func dialSubscriber(ctx context.Context, cfg *Config, i int, topics []string, hist *Histogram, base time.Time) (*subscriber, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	d := ws.Dialer{Timeout: cfg.DialTimeout}
	if src := cfg.sourceAddr(i); src != nil {
		nd := net.Dialer{LocalAddr: src}
		d.NetDial = nd.DialContext
	}
	conn, br, _, err := d.Dial(ctx, cfg.subscribeURL(i))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s := &subscriber{topic: i % len(topics), node: i % max(len(cfg.URLs), 1), conn: conn, hist: hist, base: base}
	// br holds what the server sent right after the handshake, if anything,
	// and must then be read first.
	var src io.Reader = br
	if br == nil {
		src = bufio.NewReaderSize(conn, readBufferSize)
	}
	s.rd = wsutil.Reader{
		Source:         src,
		State:          ws.StateClientSide,
		MaxMessageSize: maxMessageSize,
		OnIntermediate: s.onControl,
	}
	// The dialer's deadline covered the handshake only; this one covers
	// the sub reply, and makes a cancelled run give up at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })
	err = s.subscribe(topics[s.topic])
	if !stop() && err == nil {
		// The deadline may have poisoned the connection after the reply.
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil && !s.subscribed && s.subErr == nil {
			err = fmt.Errorf("%w: %w", errNotSubscribed, ctx.Err())
		}
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return s, nil
}

func (s *subscriber) subscribe(topic string) error {
	frame := wire.AppendSub(make([]byte, 0, 64), 1, topic, nil)
	if err := s.write(ws.OpText, frame, time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	for !s.subscribed {
		msg, err := s.readMessage()
		if err != nil {
			return err
		}
		wire.EachFrame(msg, s.handleFrame)
		if s.subErr != nil {
			return s.subErr
		}
	}
	return nil
}

// readLoop reads deliveries until the connection ends.
func (s *subscriber) readLoop() {
	switch {
	case s.wt != nil:
		defer s.wt.release()
	case s.rtc != nil:
		defer s.rtc.release()
	default:
		defer s.conn.Close()
	}
	for {
		msg, err := s.readMessage()
		if err != nil {
			if !s.closing.Load() {
				s.readErr = err
			}
			return
		}
		wire.EachFrame(msg, s.handleFrame)
	}
}

// readMessage returns the next data message, answering control frames on
// the way; over WebTransport, the lines received so far; over WebRTC, the
// next channel message. The slice is valid until the next call.
func (s *subscriber) readMessage() ([]byte, error) {
	if s.wt != nil {
		return s.wt.lines.read()
	}
	if s.rtc != nil {
		return s.rtc.read()
	}
	for {
		h, err := s.rd.NextFrame()
		if err != nil {
			return nil, err
		}
		if h.OpCode.IsControl() {
			if err := s.onControl(h, &s.rd); err != nil {
				return nil, err
			}
			continue
		}
		s.buf = s.buf[:0]
		for {
			if len(s.buf) == cap(s.buf) {
				s.buf = append(s.buf, make([]byte, max(cap(s.buf), 1024))...)[:len(s.buf)]
			}
			n, err := s.rd.Read(s.buf[len(s.buf):cap(s.buf)])
			s.buf = s.buf[:len(s.buf)+n]
			if err == io.EOF {
				return s.buf, nil
			}
			if err != nil {
				return nil, err
			}
		}
	}
}

// onControl answers a WebSocket control frame read from r.
func (s *subscriber) onControl(h ws.Header, r io.Reader) error {
	var p [ws.MaxControlFramePayloadSize]byte
	if h.Length > int64(len(p)) {
		return ws.ErrProtocolControlPayloadOverflow
	}
	payload := p[:h.Length]
	if _, err := io.ReadFull(r, payload); err != nil {
		return err
	}
	switch h.OpCode {
	case ws.OpPing:
		return s.write(ws.OpPong, payload, time.Now().Add(writeTimeout))
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(payload)
		if !s.closing.Load() {
			// Echo the code, as RFC 6455 asks. A failure changes nothing:
			// the connection ends either way.
			s.write(ws.OpClose, payload[:min(len(payload), 2)], time.Now().Add(writeTimeout))
		}
		return wsutil.ClosedError{Code: code, Reason: reason}
	}
	return nil
}

// write sends one frame as one Write, so that frames of the reader and of
// Run never interleave.
func (s *subscriber) write(op ws.OpCode, payload []byte, deadline time.Time) error {
	if s.wt != nil {
		return s.writeWT(op, payload, deadline)
	}
	if s.rtc != nil {
		return s.writeRTC(op, payload, deadline)
	}
	b, err := ws.CompileFrame(ws.MaskFrame(ws.NewFrame(op, true, payload)))
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err = s.conn.Write(b)
	return err
}

// handleFrame accounts one server frame.
func (s *subscriber) handleFrame(frame []byte) {
	switch string(frameOp(frame)) {
	case wire.OpMsg:
		s.onMsg(frame)
	case wire.OpPing:
		// A failed write shows up as a read error soon after.
		s.write(ws.OpText, wire.PongFrame, time.Now().Add(writeTimeout))
	case wire.OpOK:
		env := envelope(frame)
		if id, _ := uintAfter(env, keyID); id == subID && !s.subscribed {
			head, _ := uintAfter(env, keySeq)
			s.check.start(head)
			s.subscribed = true
		}
	case wire.OpError:
		if id, _ := uintAfter(envelope(frame), keyID); id == subID && !s.subscribed {
			s.subErr = errors.New(errorMessage(frame))
		} else if s.ended == "" {
			s.ended = errorMessage(frame)
		}
	case wire.OpReset:
		if seq, ok := uintAfter(frame, keySeq); ok && s.subscribed {
			s.check.reset(seq)
			s.resets++
		}
	}
}

func (s *subscriber) onMsg(frame []byte) {
	seq, sent, ok := parseMsg(frame)
	if !ok {
		s.badFrames++
		return
	}
	if !s.subscribed {
		// Without since the server sends nothing before the reply.
		s.badFrames++
		return
	}
	before := s.check.delivered
	s.check.observe(seq)
	if s.check.delivered == before {
		return // a duplicate: its latency would count twice
	}
	now := time.Now()
	s.delivered.Store(s.check.delivered)
	s.lastDelivery = now.Sub(s.base)
	if sent > 0 {
		s.hist.Record(time.Duration(now.UnixNano() - sent))
	}
}

// close ends the connection: with a close frame and a short wait for the
// server's echo when graceful, at once otherwise. The reader goroutine then
// closes conn.
func (s *subscriber) close(graceful bool, deadline time.Time) {
	if s.wt != nil {
		s.closeWT()
		return
	}
	if s.rtc != nil {
		s.closeRTC()
		return
	}
	s.closing.Store(true)
	if !graceful {
		s.conn.SetReadDeadline(aLongTimeAgo)
		return
	}
	// On failure the read deadline below still ends the reader.
	s.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""), deadline)
	s.conn.SetReadDeadline(deadline)
}
