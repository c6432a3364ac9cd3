package poll

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// Defaults and limits of Config.
const (
	DefaultMaxTopics   = 32
	DefaultTimeout     = 25 * time.Second
	DefaultMaxTimeout  = 60 * time.Second
	DefaultMaxMessages = 1000
	// attempts bounds how often one poll goes back to the history after
	// a topic changed epoch while it waited.
	attempts = 3
)

// History is what the handler needs of a node to answer at once: a topic's
// retained messages after a seq (at most limit, limit <= 0: all), with the
// topic's epoch and head. cluster.Node implements it.
type History interface {
	History(ctx context.Context, topic string, since uint64, limit int) (*wire.History, error)
}

// Config configures the long-polling handler.
type Config struct {
	// Accept receives the short-lived session of each poll that waits.
	// Required.
	Accept transport.AcceptFunc
	// History reads retained messages. Required.
	History History
	// CheckOrigin decides whether a browser's Origin may poll (others get
	// 403). Nil allows every origin. Requests without Origin are always
	// allowed.
	CheckOrigin func(r *http.Request) bool
	// Authorize, if set, checks the client's token (?token= or
	// Authorization: Bearer) for the topics; its *wire.Error is the answer
	// (401 unauthorized, 403 forbidden).
	Authorize func(r *http.Request, topics []string) error
	// MaxTopics is the most topics one poll names. Zero means
	// DefaultMaxTopics.
	MaxTopics int
	// DefaultTimeout is the wait when the request gives no timeout. Zero
	// means DefaultTimeout.
	DefaultTimeout time.Duration
	// MaxTimeout is the longest wait; longer timeouts are cut to it. Zero
	// means DefaultMaxTimeout.
	MaxTimeout time.Duration
	// MaxMessages bounds the messages of one answer read from history; the
	// next poll gets the rest. Zero means DefaultMaxMessages.
	MaxMessages int
	// MaxPendingBytes bounds what a waiting poll collects before it
	// answers; zero means transport.DefaultMaxPendingBytes.
	MaxPendingBytes int
	// Logger; nil discards.
	Logger *slog.Logger
}

// Handler is the http.Handler of GET /v1/poll. It is goroutine-safe.
type Handler struct {
	cfg Config
}

// NewHandler returns a handler with cfg's defaults applied.
func NewHandler(cfg Config) *Handler {
	if cfg.MaxTopics == 0 {
		cfg.MaxTopics = DefaultMaxTopics
	}
	if cfg.DefaultTimeout == 0 {
		cfg.DefaultTimeout = DefaultTimeout
	}
	if cfg.MaxTimeout == 0 {
		cfg.MaxTimeout = DefaultMaxTimeout
	}
	cfg.DefaultTimeout = min(cfg.DefaultTimeout, cfg.MaxTimeout)
	if cfg.MaxMessages == 0 {
		cfg.MaxMessages = DefaultMaxMessages
	}
	if cfg.MaxPendingBytes == 0 {
		cfg.MaxPendingBytes = transport.DefaultMaxPendingBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg}
}

// poll is the state of one request.
type poll struct {
	topics []string
	// cur is where the client is in each topic: the input cursor, moved
	// past every message the answer carries. Topics it does not name yet
	// start at their heads.
	cur       wire.Cursor
	messages  [][]byte
	truncated bool
}

// ServeHTTP answers one poll.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	topics, err := transport.CheckTopicRequest(r, h.cfg.CheckOrigin, h.cfg.MaxTopics, h.cfg.Authorize)
	if err != nil {
		transport.WriteHTTPError(w, err)
		return
	}
	q := r.URL.Query()
	timeout, err := h.parseTimeout(q.Get("timeout"))
	if err != nil {
		transport.WriteHTTPError(w, err)
		return
	}
	p := &poll{topics: topics}
	if s := q.Get("cursor"); s != "" {
		in, err := wire.DecodeCursor(s)
		if err != nil {
			transport.WriteHTTPError(w, err)
			return
		}
		for _, t := range topics {
			if pos, ok := in.Get(t); ok {
				_ = p.cur.Set(t, pos) // valid: it was decoded
			}
		}
	}
	deadline := time.Now().Add(timeout)
	ctx := r.Context()
	for attempt := 1; ; attempt++ {
		if err := h.read(ctx, p); err != nil {
			transport.WriteHTTPError(w, err)
			return
		}
		if len(p.messages) > 0 || p.truncated || !time.Now().Before(deadline) {
			break
		}
		again, err := h.wait(ctx, r, p, deadline)
		if err != nil {
			transport.WriteHTTPError(w, err)
			return
		}
		if !again || attempt == attempts {
			break
		}
	}
	if ctx.Err() != nil {
		return // the client is gone
	}
	writeAnswer(w, p)
}

// parseTimeout reads timeout= in seconds, cut to [0, MaxTimeout].
func (h *Handler) parseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return h.cfg.DefaultTimeout, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return 0, wire.Errorf(wire.CodeBadRequest, "timeout must be a number of seconds")
	}
	if f <= 0 {
		return 0, nil
	}
	if f >= h.cfg.MaxTimeout.Seconds() {
		return h.cfg.MaxTimeout, nil
	}
	return time.Duration(f * float64(time.Second)), nil
}

// read adds what each topic retains after the client's position, and
// finds the heads of the topics the client has no position in.
func (h *Handler) read(ctx context.Context, p *poll) error {
	for _, t := range p.topics {
		pos, known := p.cur.Get(t)
		if !known {
			hist, err := h.cfg.History.History(ctx, t, math.MaxUint64, 0)
			if err != nil {
				return err
			}
			if err := p.cur.Set(t, wire.Position{Epoch: hist.Epoch, Seq: hist.Head}); err != nil {
				return wire.Errorf(wire.CodeInternal, "topic %s: %s", t, wire.AsError(err).Message)
			}
			continue
		}
		room := h.cfg.MaxMessages - len(p.messages)
		if room <= 0 {
			continue
		}
		hist, err := h.cfg.History.History(ctx, t, pos.Seq, room)
		if err != nil {
			return err
		}
		if hist.Epoch != pos.Epoch {
			// The topic restarted: its retained messages all came after
			// the client's, but some may be missing.
			p.truncated = true
			if hist, err = h.cfg.History.History(ctx, t, 0, room); err != nil {
				return err
			}
			pos = wire.Position{Epoch: hist.Epoch}
		}
		if hist.Truncated || pos.Seq > hist.Head {
			p.truncated = true
		}
		if len(hist.Frames) == 0 {
			pos.Seq = min(pos.Seq, hist.Head)
			if hist.Truncated {
				pos.Seq = hist.Head
			}
		}
		if err := p.cur.Set(t, pos); err != nil {
			return wire.Errorf(wire.CodeInternal, "topic %s: %s", t, wire.AsError(err).Message)
		}
		for _, f := range hist.Frames {
			p.cur.Advance(f)
			p.messages = append(p.messages, f)
		}
	}
	return nil
}

// wait subscribes from the client's positions through a short-lived
// session and collects what comes until there is something to answer, the
// deadline passes or the session is closed. It reports whether the poll
// should read the history again (a topic changed epoch).
func (h *Handler) wait(ctx context.Context, r *http.Request, p *poll, deadline time.Time) (again bool, err error) {
	s := newSession(r, h.cfg.MaxPendingBytes)
	handler := h.cfg.Accept(s)
	defer func() {
		s.Close(transport.DisconnectNormal)
		handler.HandleClosed(nil)
	}()
	for i, t := range p.topics {
		pos, _ := p.cur.Get(t)
		transport.Subscribe(handler, uint64(i+1), t, &pos, false)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	broken := make([]bool, len(p.topics))
	var subErr *wire.Error
	var frames [][]byte
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case <-timer.C:
			return false, nil
		case <-s.Context().Done():
			// Closed by the server (shutdown): answer what there is.
			frames = s.take(frames[:0])
			p.collect(frames, broken)
			return false, nil
		case <-s.signal:
		}
		frames = s.take(frames[:0])
		for _, f := range frames {
			switch wire.Kind(f) {
			case wire.FrameOK:
				rep, ok := wire.ParseOK(f)
				if ok && rep.ID >= 1 && rep.ID <= uint64(len(p.topics)) && rep.Recovery != wire.Recovered {
					// The position is gone (the topic changed epoch since
					// read, or trimmed it): read the history again.
					broken[rep.ID-1] = true
					again = true
				}
			case wire.FrameReset:
				if h, ok := wire.ParseHead(f); ok {
					if i := p.index(h.Topic); i >= 0 {
						broken[i] = true
						again = true
					}
				}
			case wire.FrameError:
				e, ok := wire.ParseError(f)
				if !ok {
					continue
				}
				if e.ID >= 1 && e.ID <= uint64(len(p.topics)) {
					broken[e.ID-1] = true
					if subErr == nil {
						subErr = &wire.Error{Code: e.Code, Message: e.Message}
					}
				} else if i := slices.Index(p.topics, e.Topic); i >= 0 {
					broken[i] = true
					again = true
				}
			case wire.FrameMsg:
				p.collectOne(f, broken)
			}
		}
		switch {
		case len(p.messages) > 0 || s.isFull():
			return false, nil
		case again:
			return true, nil
		case subErr != nil:
			return false, subErr
		}
	}
}

// collect adds the msg frames of topics that are not broken.
func (p *poll) collect(frames [][]byte, broken []bool) {
	for _, f := range frames {
		p.collectOne(f, broken)
	}
}

// collectOne adds f if it is a msg frame of a topic that is not broken.
func (p *poll) collectOne(f []byte, broken []bool) {
	h, ok := wire.ParseHead(f)
	if !ok || h.Kind != wire.FrameMsg {
		return
	}
	if i := p.index(h.Topic); i >= 0 && !broken[i] {
		p.cur.AdvanceTo(&h)
		p.messages = append(p.messages, f)
	}
}

// index returns the index of topic in the poll's topics, or -1.
func (p *poll) index(topic []byte) int {
	for k, t := range p.topics {
		if t == string(topic) {
			return k
		}
	}
	return -1
}

// writeAnswer writes {"messages":[...],"cursor":"...","truncated":...}.
func writeAnswer(w http.ResponseWriter, p *poll) {
	n := 64 + 300*len(p.topics)
	for _, m := range p.messages {
		n += len(m) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"messages":[`...)
	for i, m := range p.messages {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m...)
	}
	b = append(b, `],"cursor":"`...)
	b = p.cur.AppendEncoded(b)
	b = append(b, `","truncated":`...)
	b = strconv.AppendBool(b, p.truncated)
	b = append(b, '}')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b) // the client may be gone
}

var sessionSeq atomic.Uint64

// session is the short-lived session of a waiting poll: it collects the
// frames the connection actor and the relays write, for the handler to
// read. It is goroutine-safe and never blocks.
type session struct {
	info   transport.SessionInfo
	ctx    context.Context
	cancel context.CancelCauseFunc
	signal chan struct{}
	max    int

	mu     sync.Mutex
	frames [][]byte
	bytes  int
	full   bool
	closed bool
}

var _ transport.Session = (*session)(nil)

func newSession(r *http.Request, max int) *session {
	s := &session{signal: make(chan struct{}, 1), max: max}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.info = transport.SessionInfo{
		ID:         "poll-" + strconv.FormatUint(sessionSeq.Add(1), 10),
		Transport:  "poll",
		RemoteAddr: r.RemoteAddr,
		Token:      transport.RequestToken(r),
		Origin:     r.Header.Get("Origin"),
	}
	return s
}

func (s *session) Info() *transport.SessionInfo { return &s.info }
func (s *session) Context() context.Context     { return s.ctx }

// Write queues frame for the handler.
func (s *session) Write(frame []byte) error { return s.add(frame) }

// WriteMany queues frames in order.
func (s *session) WriteMany(frames [][]byte) error { return s.add(frames...) }

// WriteBacklog queues frames in order.
func (s *session) WriteBacklog(frames [][]byte) error { return s.add(frames...) }

// add appends frames until the session holds max bytes, and then drops
// every later frame: the answer's cursor covers only what it carries, so
// what is dropped comes with the next poll.
func (s *session) add(frames ...[]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return transport.ErrClosed
	}
	for _, f := range frames {
		if s.full {
			break
		}
		s.frames = append(s.frames, f)
		s.bytes += len(f)
		s.full = s.bytes >= s.max
	}
	select {
	case s.signal <- struct{}{}:
	default:
	}
	return nil
}

// take moves the queued frames to dst.
func (s *session) take(dst [][]byte) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	dst = append(dst, s.frames...)
	clear(s.frames)
	s.frames = s.frames[:0]
	return dst
}

func (s *session) isFull() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.full
}

// Close ends the session; the handler answers with what it has.
func (s *session) Close(d transport.Disconnect) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.cancel(d)
}
