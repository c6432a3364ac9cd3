package websocket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// Defaults of Config.
const (
	DefaultWriteTimeout = 10 * time.Second
	// closeTimeout bounds the write of a close frame.
	closeTimeout = 2 * time.Second
	// frameSlack is what the protocol allows beyond the data limit for the
	// rest of a frame.
	frameSlack = 4096
)

// Config configures the WebSocket handler.
type Config struct {
	// Accept receives every new session. Required.
	Accept transport.AcceptFunc
	// CheckOrigin decides whether a browser's Origin may connect. Nil
	// allows every origin. Requests without Origin are always allowed.
	CheckOrigin func(r *http.Request) bool
	// MaxMessage is the data limit in bytes; a WebSocket message longer than
	// it plus 4 KiB closes the session with 1009. Zero means wire.DefaultMaxMessage.
	MaxMessage int
	// MaxPendingBytes bounds each session's outbound queue; zero means
	// transport.DefaultMaxPendingBytes.
	MaxPendingBytes int
	// WriteTimeout bounds each write; hitting it closes the session as a slow
	// consumer. Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Keepalive, if set, pings quiet sessions and closes silent ones.
	Keepalive *transport.Keepalive
	// NodeState is the node's shared transport state: its sessions count
	// in its backlog and metrics, and its pooled writers write them. Nil
	// means one of the handler's own.
	NodeState *transport.NodeState
	// Logger; nil discards.
	Logger *slog.Logger
}

// Handler is the http.Handler of GET /ws. It is goroutine-safe.
type Handler struct {
	cfg    Config
	poller *poller // nil where the platform has none: one reader goroutine per session then
}

// NewHandler returns a handler with cfg's defaults applied.
func NewHandler(cfg Config) *Handler {
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = wire.DefaultMaxMessage
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.NodeState == nil {
		cfg.NodeState = new(transport.NodeState)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg}
	p, err := newPoller()
	if err != nil {
		cfg.Logger.Warn("websocket: no event poller, one reader goroutine per connection", slog.Any("err", err))
	} else {
		h.poller = p
	}
	return h
}

var sessionSeq atomic.Uint64

// ServeHTTP upgrades the request and serves the session until it ends.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") != "" && h.cfg.CheckOrigin != nil && !h.cfg.CheckOrigin(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if !isUpgrade(r) {
		// gobwas/ws hijacks the connection before it looks at the request:
		// answered there, a plain GET /ws would cost the client its
		// keep-alive connection. Answered here, it costs nothing.
		http.Error(w, "not a WebSocket upgrade: GET with Connection: Upgrade and Upgrade: websocket expected", http.StatusBadRequest)
		return
	}
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		if conn != nil {
			// Hijacked: ws wrote the refusal on it, and nobody else will
			// close it.
			conn.Close()
		}
		h.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "websocket upgrade failed", slog.Any("err", err))
		return
	}
	s := &session{
		conn:    conn,
		timeout: h.cfg.WriteTimeout,
		limit:   int64(h.cfg.MaxMessage + frameSlack),
		info: transport.SessionInfo{
			ID:         "ws-" + strconv.FormatUint(sessionSeq.Add(1), 10),
			Transport:  "ws",
			RemoteAddr: r.RemoteAddr,
			Token:      r.URL.Query().Get("token"),
			Origin:     r.Header.Get("Origin"),
		},
	}
	// Keep what the HTTP server read ahead; the server's own buffers go
	// with its goroutine when this handler returns.
	if n := rw.Reader.Buffered(); n > 0 {
		ahead, _ := rw.Reader.Peek(n) // n bytes are buffered: Peek cannot fail
		s.ahead = bytes.Clone(ahead)
	}
	// The first reader owns the session from the start: a write that fails
	// before it runs must not end a session that has no handler yet.
	s.reading.Store(true)
	var out transport.Conn = s
	if sc, ok := s.conn.(syscall.Conn); ok && canWriteNonblocking {
		if raw, err := sc.SyscallConn(); err == nil {
			s.raw = raw
			s.writeNow = func(fd uintptr) bool {
				s.wn, s.werr = writeNonblocking(fd, s.wbuf)
				return true // never wait for the socket here
			}
			out = nonblockingSession{s}
		}
	}
	s.Init(out, transport.OutboundConfig{MaxPendingBytes: h.cfg.MaxPendingBytes, Keepalive: h.cfg.Keepalive,
		NodeState: h.cfg.NodeState})
	s.handler = h.cfg.Accept(s)
	if h.poller != nil {
		if err := h.poller.add(s); err == nil {
			// A first pass reads what came with the upgrade and arms the
			// poller; after that a goroutine exists only while the client
			// has sent something.
			go s.readPass()
			return
		}
	}
	s.readBlocking()
}

// isUpgrade reports whether r asks for a WebSocket upgrade at all (RFC 6455
// section 4.1: GET, a Connection header with the upgrade token, Upgrade:
// websocket). The rest of the handshake (key, version) is ws's to check.
func isUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && hasToken(r.Header, "Connection", "upgrade") && hasToken(r.Header, "Upgrade", "websocket")
}

// hasToken reports whether a comma-separated header of h holds token,
// ignoring case.
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Close stops the poller that serves idle connections. Sessions still open
// end with it. Close is for tests and shutdown; call it after every session
// was closed.
func (h *Handler) Close() error {
	if h.poller == nil {
		return nil
	}
	return h.poller.close()
}

// session is one WebSocket connection.
type session struct {
	transport.Outbound
	conn    net.Conn
	raw     syscall.RawConn // conn's file descriptor; nil for a TLS connection
	timeout time.Duration
	info    transport.SessionInfo
	limit   int64
	handler transport.Handler

	// Owned by the reader (one at a time: the poller arms a session once).
	ahead   []byte // bytes the HTTP server read ahead of the upgrade
	msg     []byte // a message being put together from fragments
	pollID  uint64 // the session's key in the poller; 0 when not polled
	poller  *poller
	endOnce sync.Once
	// reading is held by whoever reads the connection or ends the
	// session: a reader pass, or the writer's side when the connection
	// broke while no reader ran (a closed fd gets no epoll event).
	reading atomic.Bool

	// wmu serializes writes: the Outbound's writer and the reader's control
	// replies (pong).
	wmu sync.Mutex
	// deadline is the write deadline set last. Guarded by wmu.
	deadline time.Time
	// writeNow writes wbuf without waiting and leaves the result in wn and
	// werr: made once per session, so that a non-blocking write allocates
	// no closure. The three are guarded by wmu.
	writeNow func(fd uintptr) bool
	wbuf     []byte
	wn       int
	werr     error
}

var _ transport.Session = (*session)(nil)

func (s *session) Info() *transport.SessionInfo { return &s.info }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf keeps the pool from holding on to rare huge buffers.
const maxPooledBuf = 256 << 10

// WriteFrames writes frames joined by "\n" as one text message, header and
// payload in one write.
func (s *session) WriteFrames(frames [][]byte) error {
	bp, b := encodeFrames(frames)
	s.wmu.Lock()
	return s.writeRestUnlock(bp, b, b)
}

// writeRestUnlock writes rest, the unwritten end of the pooled message b,
// blocking with a deadline; then it releases s.wmu, which the caller holds,
// and the buffer.
func (s *session) writeRestUnlock(bp *[]byte, b, rest []byte) error {
	err := s.renewDeadlineLocked()
	if err == nil {
		_, err = s.conn.Write(rest)
	}
	s.wmu.Unlock()
	putBuf(bp, b)
	return err
}

// nonblockingSession is a session whose socket can be written without
// waiting: the pooled writers serve it (see transport.NonblockingConn).
type nonblockingSession struct{ *session }

// TryWriteFrames writes the message WriteFrames would, as far as the socket
// takes it now. When part is left, s.wmu stays held and the buffer kept
// until finish has written the rest; when another write holds s.wmu, all of
// it is left to finish.
func (s nonblockingSession) TryWriteFrames(frames [][]byte) (finish func() error, err error) {
	bp, b := encodeFrames(frames)
	if !s.wmu.TryLock() {
		// A control frame is being written, and that write may wait for a
		// full socket: the pooled writer must not wait with it.
		return func() error {
			s.wmu.Lock()
			return s.writeRestUnlock(bp, b, b)
		}, nil
	}
	// A deadline left from an earlier blocking write must not fail this
	// one: the runtime checks it before every write.
	if err := s.renewDeadlineLocked(); err != nil {
		s.wmu.Unlock()
		putBuf(bp, b)
		return nil, err
	}
	s.wbuf = b
	err = s.raw.Write(s.writeNow)
	n, werr := s.wn, s.werr
	s.wbuf, s.werr = nil, nil
	if err == nil {
		err = werr
	}
	if err != nil || n == len(b) {
		s.wmu.Unlock()
		putBuf(bp, b)
		return nil, err
	}
	partialWrites.Add(1)
	return func() error { return s.writeRestUnlock(bp, b, b[n:]) }, nil
}

// partialWrites counts the writes that the socket took only part of.
var partialWrites atomic.Uint64

// encodeFrames joins frames by "\n" into one text message, header
// included, in a pooled buffer.
func encodeFrames(frames [][]byte) (*[]byte, []byte) {
	n := len(frames) - 1
	for _, f := range frames {
		n += len(f)
	}
	bp := bufPool.Get().(*[]byte)
	b := appendHeader((*bp)[:0], ws.OpText, n)
	for i, f := range frames {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, f...)
	}
	return bp, b
}

func putBuf(bp *[]byte, b []byte) {
	if cap(b) <= maxPooledBuf {
		*bp = b[:0]
		bufPool.Put(bp)
	}
}

// WriteClose sends the close frame and half-closes the connection. The
// reader then sees the client's close reply (or EOF, or closeTimeout) and the
// connection is closed after it: closing at once, with unread input, would
// make the kernel send a reset that can destroy the close frame in flight.
func (s *session) WriteClose(d transport.Disconnect) {
	reason := d.Reason
	if len(reason) > transport.MaxReasonLen {
		reason = reason[:transport.MaxReasonLen]
	}
	body := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(body, uint16(d.Code))
	body = append(body, reason...)
	frame := append(appendHeader(make([]byte, 0, 4+len(body)), ws.OpClose, len(body)), body...)
	s.wmu.Lock()
	s.deadline = time.Now().Add(closeTimeout)
	if s.conn.SetWriteDeadline(s.deadline) == nil {
		_, _ = s.conn.Write(frame) // best effort: the connection closes either way
	}
	s.wmu.Unlock()
	if hc, ok := s.conn.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(closeTimeout))
	// A polled session has no reader waiting for the deadline: end it
	// ourselves if the client does not answer in time.
	time.AfterFunc(closeTimeout, func() { s.endUnlessReading(context.Cause(s.Context())) })
}

// Abort closes the connection without a close frame.
func (s *session) Abort() {
	_ = s.conn.Close()
	go s.endUnlessReading(nil)
}

// endUnlessReading ends the session if no reader runs; a running reader
// fails on the closed connection and ends it itself, after its last frame.
func (s *session) endUnlessReading(cause error) {
	if s.reading.CompareAndSwap(false, true) {
		s.end(cause)
		return
	}
	_ = s.conn.Close()
}

func (s *session) writeControl(op ws.OpCode, payload []byte) error {
	frame := append(appendHeader(make([]byte, 0, 2+len(payload)), op, len(payload)), payload...)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.renewDeadlineLocked(); err != nil {
		return err
	}
	_, err := s.conn.Write(frame)
	return err
}

// renewDeadlineLocked keeps a write deadline between half the write timeout
// and the whole of it ahead. Moving a deadline costs a runtime timer update,
// so it is moved only when half of it has gone: a blocked write fails after
// timeout/2 to timeout. s.wmu must be held.
func (s *session) renewDeadlineLocked() error {
	now := time.Now()
	if s.deadline.Sub(now) >= s.timeout/2 {
		return nil
	}
	s.deadline = now.Add(s.timeout)
	return s.conn.SetWriteDeadline(s.deadline)
}

// appendHeader appends an unmasked, final frame header (server frames are
// never masked).
func appendHeader(b []byte, op ws.OpCode, n int) []byte {
	b = append(b, 0x80|byte(op))
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// Read implements io.Reader for the pooled bufio.Reader: first what came
// with the upgrade, then the connection.
func (s *session) Read(p []byte) (int, error) {
	if len(s.ahead) > 0 {
		n := copy(p, s.ahead)
		s.ahead = s.ahead[n:]
		if len(s.ahead) == 0 {
			s.ahead = nil
		}
		return n, nil
	}
	return s.conn.Read(p)
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// readReady reads every frame the client has sent, then arms the poller
// again; it ends the session when the connection does.
func (s *session) readReady() {
	if !s.reading.CompareAndSwap(false, true) {
		return // the session is ending
	}
	s.readPass()
}

// readPass is readReady for a caller that holds s.reading.
func (s *session) readPass() {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(s)
	for {
		if done, cause := s.readFrame(br); done {
			br.Reset(nil)
			readerPool.Put(br)
			s.end(cause)
			return
		}
		if br.Buffered() == 0 && len(s.ahead) == 0 {
			break
		}
	}
	br.Reset(nil)
	readerPool.Put(br)
	s.reading.Store(false)
	if err := s.poller.arm(s); err != nil {
		// The connection closed meanwhile: whoever holds reading ends it.
		s.endUnlessReading(s.readFailed(err))
	}
}

// readBlocking reads frames on the calling goroutine until the session
// ends: the way without a poller.
func (s *session) readBlocking() {
	br := bufio.NewReaderSize(s, 512)
	for {
		if done, cause := s.readFrame(br); done {
			s.end(cause)
			return
		}
	}
}

// end finishes the session once: the close frame, if any, is written by the
// Outbound's writer, so it waits for that before the connection goes.
func (s *session) end(cause error) {
	s.endOnce.Do(func() {
		if s.poller != nil {
			s.poller.remove(s)
		}
		<-s.Context().Done()
		_ = s.conn.Close() // already closed when the session failed
		if cause == nil {
			cause = s.cause()
		}
		s.handler.HandleClosed(cause)
	})
}

// readFrame reads one frame and handles it. done reports that the session
// has ended, with its cause.
func (s *session) readFrame(br *bufio.Reader) (done bool, cause error) {
	hdr, err := ws.ReadHeader(br)
	if err != nil {
		return true, s.readFailed(err)
	}
	s.MarkRead()
	if hdr.OpCode.IsControl() {
		if hdr.Length > 125 || !hdr.Fin {
			s.Close(transport.DisconnectProtocol)
			return true, s.drain(br)
		}
		payload := make([]byte, hdr.Length)
		if _, err := io.ReadFull(br, payload); err != nil {
			return true, s.readFailed(err)
		}
		if hdr.Masked {
			ws.Cipher(payload, hdr.Mask, 0)
		}
		switch hdr.OpCode {
		case ws.OpPing:
			if err := s.writeControl(ws.OpPong, payload); err != nil {
				return true, s.readFailed(err)
			}
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(payload)
			// Answer with the client's code, as RFC 6455 asks, after what
			// is already queued.
			reply := transport.DisconnectNormal
			if code != 0 && !code.IsProtocolReserved() {
				reply.Code = wire.DisconnectCode(code)
			}
			s.Close(reply) // a no-op when the server started the close
			<-s.Context().Done()
			return true, s.cause()
		}
		return false, nil
	}
	if int64(len(s.msg))+hdr.Length > s.limit {
		s.Close(transport.DisconnectTooLarge)
		return true, s.drain(br)
	}
	start := len(s.msg)
	s.msg = append(s.msg, make([]byte, hdr.Length)...)
	if _, err := io.ReadFull(br, s.msg[start:]); err != nil {
		return true, s.readFailed(err)
	}
	if hdr.Masked {
		ws.Cipher(s.msg[start:], hdr.Mask, 0)
	}
	if !hdr.Fin {
		return false, nil
	}
	wire.EachFrame(s.msg, s.handler.HandleFrame)
	s.msg = nil // an idle connection keeps no buffer
	return false, nil
}

// drain discards what the client still sends until it closes, or until the
// read deadline that WriteClose sets, so the connection ends without a reset.
func (s *session) drain(br *bufio.Reader) error {
	_, _ = io.Copy(io.Discard, br) // ends with EOF or the deadline
	<-s.Context().Done()
	return s.cause()
}

func (s *session) readFailed(err error) error {
	s.Fail(err)
	// Fail finishes the session, now or once the writer stops.
	<-s.Context().Done()
	return s.cause()
}

func (s *session) cause() error {
	if s.Context().Err() == nil {
		return nil
	}
	if d, ok := transport.AsDisconnect(contextCause(s)); ok {
		return d
	}
	return contextCause(s)
}

func contextCause(s *session) error { return context.Cause(s.Context()) }
