package actors

import (
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// DefaultRequestTimeout bounds a connection's wait for a topic actor.
const DefaultRequestTimeout = 5 * time.Second

// ConnConfig configures connection actors.
type ConnConfig struct {
	// MaxMessage is the largest data of a pub, in bytes. Zero means
	// wire.DefaultMaxMessage.
	MaxMessage int
	// RequestTimeout bounds a pub's wait for its topic. Zero means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// OnClosed, if set, is called when a connection actor stops.
	OnClosed func(info *transport.SessionInfo, cause error)
	// Namespaces may forbid subscription options and clients' pub, and
	// allow presence.
	Namespaces Namespaces
	// NodeName prefixes the connection ids of presence members, which
	// makes them unique in the cluster.
	NodeName string
	Logger   *slog.Logger
}

func (c ConnConfig) withDefaults() ConnConfig {
	if c.MaxMessage == 0 {
		c.MaxMessage = wire.DefaultMaxMessage
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Conns starts connection actors and keeps the set of live ones. It is
// goroutine-safe.
type Conns struct {
	system    *actor.ActorSystem
	publisher Publisher
	relays    *Relays
	cfg       ConnConfig

	mu    sync.Mutex
	live  map[transport.Session]struct{}
	empty chan struct{} // closed when live becomes empty; nil while it is
}

// NewConns returns a starter of connection actors that subscribe through
// relays and publish through publisher.
func NewConns(system *actor.ActorSystem, publisher Publisher, relays *Relays, cfg ConnConfig) *Conns {
	return &Conns{system: system, publisher: publisher, relays: relays, cfg: cfg.withDefaults(),
		live: make(map[transport.Session]struct{})}
}

// Accept starts the connection actor of s and returns the handler that feeds
// it what the client sends. It is a transport.AcceptFunc.
func (cs *Conns) Accept(s transport.Session) transport.Handler {
	cs.mu.Lock()
	cs.live[s] = struct{}{}
	cs.mu.Unlock()
	a := &connActor{conns: cs, sess: s, subs: make(map[string]struct{}), entered: make(map[string]struct{}),
		pubs: pubQueue{sess: s, publisher: cs.publisher, cfg: &cs.cfg}}
	pid := cs.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }))
	a.ref = &ConnRef{Session: s, PID: pid}
	return &connHandler{root: cs.system.Root, pid: pid, maxData: cs.cfg.MaxMessage}
}

// Len returns the number of live connections.
func (cs *Conns) Len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.live)
}

// CloseAll closes every live session with d and returns a channel that is
// closed once all their actors have stopped.
func (cs *Conns) CloseAll(d transport.Disconnect) <-chan struct{} {
	cs.mu.Lock()
	sessions := make([]transport.Session, 0, len(cs.live))
	for s := range cs.live {
		sessions = append(sessions, s)
	}
	done := make(chan struct{})
	if len(cs.live) == 0 {
		close(done)
	} else {
		cs.empty = done
	}
	cs.mu.Unlock()
	for _, s := range sessions {
		s.Close(d)
	}
	return done
}

func (cs *Conns) remove(s transport.Session) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.live, s)
	if len(cs.live) == 0 && cs.empty != nil {
		close(cs.empty)
		cs.empty = nil
	}
}

// connHandler decodes frames on the session's reader goroutine, so actors
// get parsed commands, and parsing runs in parallel across connections.
type connHandler struct {
	root    *actor.RootContext
	pid     *actor.PID
	maxData int

	// Set by attach before the first frame; owned by the reader after.
	guard   *Guard
	sess    transport.Session
	limiter *commandLimiter // nil: no rate limit
	flooded bool            // closed for too many commands: drop the rest
}

var _ transport.CommandHandler = (*connHandler)(nil)

type sessionClosed struct{ err error }

type badFrame struct{ err *wire.Error }

func (h *connHandler) HandleFrame(frame []byte) {
	if h.flooded {
		return
	}
	// Meter before decoding: a flooding client must cost as little as
	// possible, and a refused command needs no parse beyond its id.
	if h.limiter != nil && !h.allow(frame) {
		return
	}
	cmd, err := wire.DecodeCommand(frame, h.maxData)
	if err != nil {
		h.root.Send(h.pid, &badFrame{err: wire.AsError(err)})
		return
	}
	h.root.Send(h.pid, cmd)
}

// HandleCommand takes a command an adapter built on its client's behalf
// (SSE and polling subscribe so), metered like a frame; see
// transport.CommandHandler.
func (h *connHandler) HandleCommand(cmd *wire.Command) {
	if h.flooded || (h.limiter != nil && !h.allowID(cmd.ID)) {
		return
	}
	h.root.Send(h.pid, cmd)
}

func (h *connHandler) HandleClosed(err error) {
	h.root.Send(h.pid, &sessionClosed{err: err})
	if h.guard != nil {
		h.guard.release()
	}
}

// allow meters one command: over the rate it answers rate_limited (echoing
// the frame's id, read without a full decode), and closes with 4029 a client
// that keeps going.
func (h *connHandler) allow(frame []byte) bool { return h.meter(frame, 0) }

// allowID is allow for a command of the given id.
func (h *connHandler) allowID(id uint64) bool { return h.meter(nil, id) }

// meter is allow and allowID: the refused command's id is id, or read from
// frame when frame is set.
func (h *connHandler) meter(frame []byte, id uint64) bool {
	ok, flood := h.limiter.allow(time.Now())
	switch {
	case ok:
		return true
	case flood:
		h.flooded = true
		h.sess.Close(DisconnectFlood)
	default:
		if frame != nil {
			id = wire.PeekID(frame)
		}
		_ = h.sess.Write(wire.AppendError(nil, &wire.Error{Code: wire.CodeRateLimited, ID: id,
			Message: "too many commands, slow down"})) // a closed session needs no error
	}
	return false
}

// connActor is one client session: its subscriptions and its commands.
type connActor struct {
	conns *Conns
	sess  transport.Session
	ref   *ConnRef
	// subs is the set of subscribed topics.
	subs map[string]struct{}
	// entered is the set of topics where the connection is a presence
	// member.
	entered map[string]struct{}
	closed  bool
	// auth holds the token and limits of the guard, if any.
	auth connAuth
	// pubs publishes the client's pubs in order, off the actor.
	pubs pubQueue
}

func (a *connActor) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *wire.Command:
		a.onCommand(c, msg)
	case *badFrame:
		a.onBadFrame(msg)
	case *SubscribeFailed:
		delete(a.subs, msg.Topic)
	case *sessionClosed:
		a.onSessionClosed(c, msg)
	case *guardAttached:
		a.onGuardAttached(c, msg)
	case *helloTimeout:
		a.onHelloTimeout()
	case *tokenExpired:
		a.onTokenExpired(msg)
	case *actor.Touched:
		a.onRelayDone(c, msg.Who)
	case *actor.Terminated:
		a.onRelayDone(c, msg.Who)
	case *actor.Stopped:
		a.auth.stopTimers()
	}
}

func (a *connActor) write(frame []byte) {
	_ = a.sess.Write(frame) // a failed write has closed the session; sessionClosed follows
}

func (a *connActor) fail(id uint64, code wire.ErrorCode, msg string) {
	a.write(wire.AppendError(nil, &wire.Error{Code: code, Message: msg, ID: id}))
}

func (a *connActor) onBadFrame(msg *badFrame) {
	if a.closed {
		return
	}
	if errors.Is(msg.err, wire.ErrMalformed) {
		a.sess.Close(transport.Disconnect{Code: wire.CloseProtocolError, Reason: "malformed frame"})
		return
	}
	if a.auth.awaitingHello {
		a.sess.Close(DisconnectHelloFirst)
		return
	}
	a.write(wire.AppendError(nil, msg.err))
}

func (a *connActor) onCommand(c actor.Context, cmd *wire.Command) {
	if a.closed || !a.gate(c, cmd) {
		return
	}
	switch cmd.Op {
	case wire.OpSub:
		a.onSub(cmd)
	case wire.OpUnsub:
		a.onUnsub(cmd)
	case wire.OpPub:
		a.onPub(cmd)
	case wire.OpEnter:
		a.onEnter(cmd)
	case wire.OpLeave:
		a.onLeave(cmd)
	case wire.OpPresence:
		a.onPresence(cmd)
	case wire.OpHello, wire.OpRefresh:
		a.write(wire.AppendOK(nil, cmd.ID))
	case wire.OpPing:
		a.write(wire.PongFrame)
	case wire.OpPong:
	}
}

func (a *connActor) onSub(cmd *wire.Command) {
	if _, ok := a.subs[cmd.Topic]; ok {
		a.fail(cmd.ID, wire.CodeBadRequest, "already subscribed to "+cmd.Topic)
		return
	}
	if !a.auth.allowSub(cmd.Topic) {
		a.fail(cmd.ID, wire.CodeForbidden, "the token does not allow subscribing to "+cmd.Topic)
		return
	}
	if n := a.auth.maxSubs(); n > 0 && len(a.subs) >= n {
		a.fail(cmd.ID, wire.CodeBadRequest, "too many subscriptions: at most "+strconv.Itoa(n)+" per connection")
		return
	}
	if e := a.conns.cfg.Namespaces.checkSub(cmd); e != nil {
		a.write(wire.AppendError(nil, e))
		return
	}
	if cmd.Presence {
		if e := a.conns.cfg.Namespaces.CheckPresence(cmd); e != nil {
			a.write(wire.AppendError(nil, e))
			return
		}
	}
	if cmd.Datagram {
		if _, ok := a.sess.(transport.DatagramSession); !ok {
			a.fail(cmd.ID, wire.CodeBadRequest, "datagram delivery needs WebTransport")
			return
		}
	}
	if cmd.Latest {
		if _, ok := a.sess.(transport.LatestSession); !ok {
			a.fail(cmd.ID, wire.CodeBadRequest, "latest-value subscriptions need WebSocket, WebTransport or SSE")
			return
		}
	}
	a.subs[cmd.Topic] = struct{}{}
	a.conns.relays.send(cmd.Topic, &relaySubscribe{conn: a.ref, id: cmd.ID, since: cmd.Since,
		datagram: cmd.Datagram, latest: cmd.Latest, delta: cmd.Delta, presence: cmd.Presence})
}

func (a *connActor) onUnsub(cmd *wire.Command) {
	if _, ok := a.subs[cmd.Topic]; !ok {
		a.fail(cmd.ID, wire.CodeBadRequest, "not subscribed to "+cmd.Topic)
		return
	}
	delete(a.subs, cmd.Topic)
	// The relay answers ok once it has removed the session, so no msg of
	// the topic follows the ok.
	a.conns.relays.send(cmd.Topic, &relayUnsubscribe{conn: a.ref, id: cmd.ID, reply: true})
}

func (a *connActor) onPub(cmd *wire.Command) {
	if wire.IsSystemTopic(cmd.Topic) {
		a.fail(cmd.ID, wire.CodeForbidden, "only the server publishes to "+wire.SystemPrefix+" topics")
		return
	}
	if !a.auth.allowPub(cmd.Topic) {
		a.fail(cmd.ID, wire.CodeForbidden, "the token does not allow publishing to "+cmd.Topic)
		return
	}
	if ok, n := a.conns.cfg.Namespaces.clientPublish(cmd.Topic); !ok {
		a.fail(cmd.ID, wire.CodeForbidden, "the namespace "+n.Pattern+" does not allow clients to publish")
		return
	}
	if !a.pubs.push(queuedPub{id: cmd.ID, topic: cmd.Topic, data: cmd.Data}) {
		a.fail(cmd.ID, wire.CodeRateLimited, "too many publishes waiting for their topics, slow down")
	}
}

func (a *connActor) onSessionClosed(c actor.Context, msg *sessionClosed) {
	if a.closed {
		return
	}
	a.closed = true
	for topic := range a.subs {
		a.conns.relays.send(topic, &relayUnsubscribe{conn: a.ref})
	}
	a.subs = nil
	for topic := range a.entered {
		a.conns.relays.send(topic, &relayLeave{conn: a.ref})
	}
	a.entered = nil
	if f := a.conns.cfg.OnClosed; f != nil {
		f(a.sess.Info(), msg.err)
	}
	a.conns.remove(a.sess)
	c.Stop(c.Self())
}
