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
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/wire"
)

// Defaults of Config.
const (
	DefaultMaxMessage   = 65536
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
	// it plus 4 KiB closes the session with 1009. Zero means DefaultMaxMessage.
	MaxMessage int
	// MaxPendingBytes bounds each session's outbound queue; zero means
	// transport.DefaultMaxPendingBytes.
	MaxPendingBytes int
	// WriteTimeout bounds each write; hitting it closes the session as a slow
	// consumer. Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Keepalive, if set, pings quiet sessions and closes silent ones.
	Keepalive *transport.Keepalive
	// Logger; nil discards.
	Logger *slog.Logger
}

// Handler is the http.Handler of GET /ws. It is goroutine-safe.
type Handler struct {
	cfg Config
}

// NewHandler returns a handler with cfg's defaults applied.
func NewHandler(cfg Config) *Handler {
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg}
}

var sessionSeq atomic.Uint64

// ServeHTTP upgrades the request and serves the session until it ends.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") != "" && h.cfg.CheckOrigin != nil && !h.cfg.CheckOrigin(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		h.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "websocket upgrade failed", slog.Any("err", err))
		return
	}
	// Keep what the HTTP server read ahead, then read with a small buffer
	// of our own rather than holding the server's 4 KiB one.
	var src io.Reader = conn
	if n := rw.Reader.Buffered(); n > 0 {
		ahead, _ := rw.Reader.Peek(n) // n bytes are buffered: Peek cannot fail
		src = io.MultiReader(bytes.NewReader(bytes.Clone(ahead)), conn)
	}
	s := &session{
		conn:    conn,
		timeout: h.cfg.WriteTimeout,
		info: transport.SessionInfo{
			ID:         "ws-" + strconv.FormatUint(sessionSeq.Add(1), 10),
			Transport:  "ws",
			RemoteAddr: r.RemoteAddr,
			Token:      r.URL.Query().Get("token"),
			Origin:     r.Header.Get("Origin"),
		},
	}
	s.Init(s, transport.OutboundConfig{MaxPendingBytes: h.cfg.MaxPendingBytes, Keepalive: h.cfg.Keepalive})
	handler := h.cfg.Accept(s)
	cause := s.readLoop(bufio.NewReaderSize(src, 512), handler, int64(h.cfg.MaxMessage+frameSlack))
	// The close frame, if any, is written by the Outbound's writer: wait
	// for it before the connection goes.
	<-s.Context().Done()
	_ = conn.Close() // already closed when the session failed
	handler.HandleClosed(cause)
}

// session is one WebSocket connection.
type session struct {
	transport.Outbound
	conn    net.Conn
	timeout time.Duration
	info    transport.SessionInfo

	// wmu serializes writes: the Outbound's writer and the reader's control
	// replies (pong).
	wmu sync.Mutex
}

var _ transport.Session = (*session)(nil)

func (s *session) Info() *transport.SessionInfo { return &s.info }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf keeps the pool from holding on to rare huge buffers.
const maxPooledBuf = 256 << 10

// WriteFrames writes frames joined by "\n" as one text message, header and
// payload in one write.
func (s *session) WriteFrames(frames [][]byte) error {
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
	s.wmu.Lock()
	err := s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
	if err == nil {
		_, err = s.conn.Write(b)
	}
	s.wmu.Unlock()
	if cap(b) <= maxPooledBuf {
		*bp = b[:0]
		bufPool.Put(bp)
	}
	return err
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
	if s.conn.SetWriteDeadline(time.Now().Add(closeTimeout)) == nil {
		_, _ = s.conn.Write(frame) // best effort: the connection closes either way
	}
	s.wmu.Unlock()
	if hc, ok := s.conn.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(closeTimeout))
}

// Abort closes the connection without a close frame.
func (s *session) Abort() { _ = s.conn.Close() }

func (s *session) writeControl(op ws.OpCode, payload []byte) error {
	frame := append(appendHeader(make([]byte, 0, 2+len(payload)), op, len(payload)), payload...)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
		return err
	}
	_, err := s.conn.Write(frame)
	return err
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

// readLoop reads messages until the session ends and returns the cause.
func (s *session) readLoop(br *bufio.Reader, h transport.Handler, limit int64) error {
	var msg []byte
	for {
		hdr, err := ws.ReadHeader(br)
		if err != nil {
			return s.readFailed(err)
		}
		s.MarkRead()
		if hdr.OpCode.IsControl() {
			if hdr.Length > 125 || !hdr.Fin {
				s.Close(transport.DisconnectProtocol)
				return s.drain(br)
			}
			payload := make([]byte, hdr.Length)
			if _, err := io.ReadFull(br, payload); err != nil {
				return s.readFailed(err)
			}
			if hdr.Masked {
				ws.Cipher(payload, hdr.Mask, 0)
			}
			switch hdr.OpCode {
			case ws.OpPing:
				if err := s.writeControl(ws.OpPong, payload); err != nil {
					return s.readFailed(err)
				}
			case ws.OpClose:
				code, _ := ws.ParseCloseFrameData(payload)
				// Answer with the client's code, as RFC 6455 asks, after
				// what is already queued.
				reply := transport.DisconnectNormal
				if code != 0 && !code.IsProtocolReserved() {
					reply.Code = wire.DisconnectCode(code)
				}
				s.Close(reply) // a no-op when the server started the close
				<-s.Context().Done()
				return s.cause()
			}
			continue
		}
		if int64(len(msg))+hdr.Length > limit {
			s.Close(transport.DisconnectTooLarge)
			return s.drain(br)
		}
		start := len(msg)
		msg = append(msg, make([]byte, hdr.Length)...)
		if _, err := io.ReadFull(br, msg[start:]); err != nil {
			return s.readFailed(err)
		}
		if hdr.Masked {
			ws.Cipher(msg[start:], hdr.Mask, 0)
		}
		if !hdr.Fin {
			continue
		}
		wire.EachFrame(msg, h.HandleFrame)
		if cap(msg) > 16<<10 {
			msg = nil // do not keep a large buffer for an idle connection
		} else {
			msg = msg[:0]
		}
	}
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
