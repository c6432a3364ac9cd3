package sse

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// Defaults of Config.
const (
	DefaultMaxTopics      = 32
	DefaultWriteTimeout   = 10 * time.Second
	DefaultKeepaliveEvery = 15 * time.Second
	// closeTimeout bounds the last write of a stream.
	closeTimeout = 2 * time.Second
)

// Config configures the SSE handler.
type Config struct {
	// Accept receives every new session. Required.
	Accept transport.AcceptFunc
	// CheckOrigin decides whether a browser's Origin may open a stream
	// (others get 403). Nil allows every origin. Requests without Origin are
	// always allowed.
	CheckOrigin func(r *http.Request) bool
	// Authorize, if set, checks the client's token (?token= or
	// Authorization: Bearer) for the topics before the stream starts; its
	// *wire.Error is the answer (401 unauthorized, 403 forbidden).
	Authorize func(r *http.Request, topics []string) error
	// MaxTopics is the most topics one stream subscribes to. Zero means
	// DefaultMaxTopics.
	MaxTopics int
	// MaxPendingBytes bounds each stream's outbound queue in bytes, and
	// the live messages it holds back before its ready event (recovered
	// ones do not count, as in the queue); zero means
	// transport.DefaultMaxPendingBytes.
	MaxPendingBytes int
	// WriteTimeout bounds each write; hitting it ends the stream as a slow
	// consumer. Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// KeepaliveEvery is how long a stream may stay quiet before it gets a
	// ": keepalive" comment. Zero means DefaultKeepaliveEvery.
	KeepaliveEvery time.Duration
	// NodeState is the node's shared transport state: its sessions count
	// in its backlog and metrics. Nil means one of the handler's own.
	NodeState *transport.NodeState
	// Logger; nil discards.
	Logger *slog.Logger
}

// Handler is the http.Handler of GET /v1/sse. It is goroutine-safe.
type Handler struct {
	cfg Config
}

// NewHandler returns a handler with cfg's defaults applied.
func NewHandler(cfg Config) *Handler {
	if cfg.MaxTopics == 0 {
		cfg.MaxTopics = DefaultMaxTopics
	}
	if cfg.MaxPendingBytes == 0 {
		cfg.MaxPendingBytes = transport.DefaultMaxPendingBytes
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.KeepaliveEvery == 0 {
		cfg.KeepaliveEvery = DefaultKeepaliveEvery
	}
	if cfg.NodeState == nil {
		cfg.NodeState = new(transport.NodeState)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg}
}

var sessionSeq atomic.Uint64

// keepaliveFrame is queued like a frame; the writer turns it into a comment.
// Frames of the protocol start with '{', so it cannot be mistaken for one.
var keepaliveFrame = []byte(": keepalive")

// ServeHTTP validates the request, then streams until the client goes or
// the session is closed.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	topics, err := transport.CheckTopicRequest(r, h.cfg.CheckOrigin, h.cfg.MaxTopics, h.cfg.Authorize)
	if err != nil {
		transport.WriteHTTPError(w, err)
		return
	}
	q := r.URL.Query()
	// A browser that reconnects sends Last-Event-ID with the URL it first
	// opened, cursor= included: the header is the newer position.
	var cursor *wire.Cursor
	if s := r.Header.Get("Last-Event-ID"); s != "" {
		if cursor, err = wire.DecodeCursor(s); err != nil {
			transport.WriteHTTPError(w, wire.Errorf(wire.CodeBadRequest, "Last-Event-ID: %s", wire.AsError(err).Message))
			return
		}
	} else if s := q.Get("cursor"); s != "" {
		if cursor, err = wire.DecodeCursor(s); err != nil {
			transport.WriteHTTPError(w, err)
			return
		}
	}
	var latest bool
	switch q.Get("mode") {
	case "":
	case wire.ModeLatest:
		latest = true
	default:
		transport.WriteHTTPError(w, wire.Errorf(wire.CodeBadRequest, `mode must be "latest" or absent`))
		return
	}

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // tell proxies not to buffer the stream
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		h.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "sse flush failed", slog.Any("err", err))
		return
	}

	s := &session{
		w:       w,
		rc:      rc,
		timeout: h.cfg.WriteTimeout,
		topics:  topics,
		pos:     make([]topicState, len(topics)),
		maxHeld: h.cfg.MaxPendingBytes,
		info: transport.SessionInfo{
			ID:         "sse-" + strconv.FormatUint(sessionSeq.Add(1), 10),
			Transport:  "sse",
			RemoteAddr: r.RemoteAddr,
			Token:      transport.RequestToken(r),
			Origin:     r.Header.Get("Origin"),
		},
	}
	for i, topic := range topics {
		if cursor != nil {
			if p, ok := cursor.Get(topic); ok {
				s.pos[i].resume, s.pos[i].since = true, p
			}
		}
	}
	// SSE sessions are not given to the Keepalive: the client never sends,
	// so the silence rule would close every one of them.
	s.Init(s, transport.OutboundConfig{MaxPendingBytes: h.cfg.MaxPendingBytes, NodeState: h.cfg.NodeState})
	handler := h.cfg.Accept(s)
	for i, topic := range topics {
		var since *wire.Position
		if s.pos[i].resume {
			since = &s.pos[i].since
		}
		transport.Subscribe(handler, uint64(i+1), topic, since, latest)
	}

	tick := time.NewTicker(h.cfg.KeepaliveEvery)
	defer tick.Stop()
	done := r.Context().Done()
	for done != nil {
		select {
		case <-done:
			s.Fail(context.Cause(r.Context()))
			done = nil
		case <-s.Context().Done():
			done = nil
		case <-tick.C:
			if !s.wrote.Swap(false) {
				_ = s.Write(keepaliveFrame) // fails only when the session is closing
			}
		}
	}
	<-s.Context().Done()
	s.Wait() // the writer must be gone before the ResponseWriter is
	handler.HandleClosed(s.cause())
}

// topicState is what a stream knows of one topic before it is ready.
type topicState struct {
	resume    bool          // the cursor named the topic: "recovered" goes in ready
	since     wire.Position // where the cursor was in the topic
	answered  bool
	epoch     string
	seq       uint64
	recovered bool
}

// session is one SSE stream.
type session struct {
	transport.Outbound
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	topics  []string
	maxHeld int
	info    transport.SessionInfo

	// wrote is set by the writer and swapped by the keepalive ticker.
	wrote atomic.Bool
	// backlog counts the bytes given to WriteBacklog: they may be held
	// back beyond maxHeld.
	backlog atomic.Int64

	// Owned by the Outbound's writer (one goroutine at a time).
	pos       []topicState
	answered  int
	ready     bool
	ended     bool
	held      [][]byte
	heldBytes int
	cursor    wire.Cursor
	buf       []byte
}

var (
	_ transport.Session = (*session)(nil)
	_ transport.Conn    = (*session)(nil)
)

func (s *session) Info() *transport.SessionInfo { return &s.info }

// WriteBacklog queues recovered messages; see transport.Session.
func (s *session) WriteBacklog(frames [][]byte) error {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	s.backlog.Add(int64(n)) // before the writer can see the frames
	return s.Outbound.WriteBacklog(frames)
}

// maxKeptBuf keeps a stream from holding on to a rare huge buffer.
const maxKeptBuf = 256 << 10

// WriteFrames turns frames into events and writes and flushes them at once.
func (s *session) WriteFrames(frames [][]byte) error {
	b := s.buf[:0]
	for _, f := range frames {
		b = s.appendEvent(b, f)
	}
	var err error
	if len(b) > 0 {
		err = s.write(b, s.timeout)
	}
	if cap(b) <= maxKeptBuf {
		s.buf = b[:0]
	} else {
		s.buf = nil
	}
	return err
}

func (s *session) write(b []byte, timeout time.Duration) error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	if err := s.rc.Flush(); err != nil {
		return err
	}
	s.wrote.Store(true)
	return nil
}

// WriteClose ends the stream: the handler returns once the session is
// finished. What was queued has been written already.
func (s *session) WriteClose(transport.Disconnect) {
	// The server still writes the end of the chunked body: bound it.
	_ = s.rc.SetWriteDeadline(time.Now().Add(closeTimeout))
}

// Abort ends the stream; net/http drops a connection whose write failed.
func (s *session) Abort() {}

func (s *session) cause() error {
	err := context.Cause(s.Context())
	if d, ok := transport.AsDisconnect(err); ok {
		return d
	}
	return err
}

// appendEvent appends the event for frame, if any, to b.
func (s *session) appendEvent(b, f []byte) []byte {
	if s.ended || len(f) == 0 {
		return b
	}
	if f[0] == ':' {
		return append(append(b, f...), "\n\n"...)
	}
	if wire.IsMsg(f) { // the common case, tested inline
		if !s.ready {
			return s.hold(b, f)
		}
		s.cursor.Advance(f)
		return appendData(s.appendID(append(b, "id: "...)), f)
	}
	switch wire.Kind(f) {
	case wire.FrameReset:
		if !s.ready {
			return s.hold(b, f)
		}
		s.cursor.Advance(f)
		return appendData(s.appendID(append(b, "event: reset\nid: "...)), f)
	case wire.FrameOK:
		return s.onOK(b, f)
	case wire.FrameError:
		return s.onError(b, f)
	}
	return b // pong: the client sends no ping over SSE
}

func (s *session) appendID(b []byte) []byte {
	return append(s.cursor.AppendEncoded(b), '\n')
}

func appendData(b, f []byte) []byte {
	b = append(b, "data: "...)
	b = append(b, f...)
	return append(b, "\n\n"...)
}

// hold keeps a frame that came before the ready event.
func (s *session) hold(b, f []byte) []byte {
	s.held = append(s.held, f)
	s.heldBytes += len(f)
	if int64(s.heldBytes) > int64(s.maxHeld)+s.backlog.Load() {
		s.ended = true
		s.held = nil
		s.Close(transport.DisconnectSlow)
	}
	return b
}

// onOK records a sub's answer; the last one makes the stream ready.
func (s *session) onOK(b, f []byte) []byte {
	r, ok := wire.ParseOK(f)
	if !ok || r.ID == 0 || r.ID > uint64(len(s.topics)) {
		return b
	}
	p := &s.pos[r.ID-1]
	if p.answered {
		return b
	}
	p.answered, p.epoch, p.seq, p.recovered = true, string(r.Epoch), r.Seq, r.Recovery == wire.Recovered
	s.answered++
	if s.answered < len(s.topics) {
		return b
	}
	for i, t := range s.topics {
		// A recovered topic's missed messages follow its ok: until they
		// are written, the stream is where the cursor was.
		p := wire.Position{Epoch: s.pos[i].epoch, Seq: s.pos[i].seq}
		if s.pos[i].resume && s.pos[i].recovered {
			p = s.pos[i].since
		}
		if err := s.cursor.Set(t, p); err != nil {
			// The server's own epoch is not valid: nothing can resume this.
			s.ended = true
			s.Close(transport.Disconnect{Code: wire.CloseNormal, Reason: "bad epoch"})
			return b
		}
	}
	s.ready = true
	b = append(b, "event: ready\nid: "...)
	b = s.appendID(b)
	b = append(b, `data: {"topics":{`...)
	for i, t := range s.topics {
		if i > 0 {
			b = append(b, ',')
		}
		p := &s.pos[i]
		b = wire.AppendString(b, t)
		b = append(b, `:{"epoch":`...)
		b = wire.AppendString(b, p.epoch)
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, p.seq, 10)
		if p.resume {
			b = append(b, `,"recovered":`...)
			b = strconv.AppendBool(b, p.recovered)
		}
		b = append(b, '}')
	}
	b = append(b, "}}\n\n"...)
	held := s.held
	s.held, s.heldBytes = nil, 0
	for _, h := range held {
		b = s.appendEvent(b, h)
	}
	return b
}

// onError passes an error frame on as an "error" event. A sub that failed
// before the stream was ready ends the stream: the client reconnects (a
// browser does on its own) and tries again.
func (s *session) onError(b, f []byte) []byte {
	b = appendData(append(b, "event: error\n"...), f)
	if s.ready {
		return b
	}
	if e, ok := wire.ParseError(f); ok && e.ID != 0 && e.ID <= uint64(len(s.topics)) {
		s.ended = true
		s.held = nil
		s.Close(transport.Disconnect{Code: wire.CloseNormal, Reason: "subscription failed"})
	}
	return b
}
