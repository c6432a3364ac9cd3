package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/auth"
)

// guardAttached gives a connection actor its guard. The adapter starts
// reading only after Accept returns, so it arrives before any command.
type guardAttached struct{ g *Guard }

// helloTimeout fires when a client has not sent hello in time.
type helloTimeout struct{}

// tokenExpired fires when the token of generation gen expires.
type tokenExpired struct{ gen uint64 }

var _ guardedHandler = (*connHandler)(nil)

// attachGuard makes h meter commands and tells its actor about g. It runs
// on the goroutine that will read the session, before it reads.
func (h *connHandler) attachGuard(g *Guard, s transport.Session) {
	h.guard, h.sess = g, s
	if g.cfg.CommandRate > 0 {
		h.limiter = newCommandLimiter(g.cfg.CommandRate, g.cfg.CommandBurst, time.Now())
	}
	h.root.Send(h.pid, &guardAttached{g: g})
}

// connAuth is a connection actor's view of its guard.
type connAuth struct {
	guard *Guard
	// service is set for a session opened with an API key
	// (SessionInfo.Service): no token is asked of it.
	service bool
	// claims is nil until the client has authenticated, and always nil
	// when no token is needed.
	claims *auth.Claims
	// awaitingHello is set while a token is required and none came yet.
	awaitingHello bool
	// started is set once a command other than ping was handled.
	started     bool
	helloTimer  *time.Timer
	expiryTimer *time.Timer
	expiryGen   uint64
	// revokes holds, per relay (PID.Id), the error frames of revoked
	// subscriptions waiting for the relay to have removed them.
	revokes map[string][][]byte
}

// required reports whether the connection's commands need claims.
func (ca *connAuth) required() bool {
	return ca.guard != nil && ca.guard.verifier != nil && !ca.service
}

// allowSub and allowPub check the claims; without a token requirement
// everything is allowed.
func (ca *connAuth) allowSub(topic string) bool {
	return !ca.required() || (ca.claims != nil && ca.claims.Subscribe.Allow(topic))
}

func (ca *connAuth) allowPub(topic string) bool {
	return !ca.required() || (ca.claims != nil && ca.claims.Publish.Allow(topic))
}

// maxSubs is the subscription limit, 0 for none.
func (ca *connAuth) maxSubs() int {
	if ca.guard == nil || ca.guard.cfg.MaxSubscriptions < 0 {
		return 0
	}
	return ca.guard.cfg.MaxSubscriptions
}

func (ca *connAuth) stopTimers() {
	if ca.helloTimer != nil {
		ca.helloTimer.Stop()
	}
	if ca.expiryTimer != nil {
		ca.expiryTimer.Stop()
	}
}

func (a *connActor) onGuardAttached(c actor.Context, msg *guardAttached) {
	a.auth.guard = msg.g
	a.auth.service = a.sess.Info().Service
	if !a.auth.required() || a.closed {
		return
	}
	if tok := a.sess.Info().Token; tok != "" {
		claims, err := msg.g.verifier.Verify(tok)
		if err != nil {
			a.closeUnauthorized(err)
			return
		}
		a.setClaims(c, claims)
		return
	}
	a.auth.awaitingHello = true
	self, root := c.Self(), c.ActorSystem().Root
	a.auth.helloTimer = time.AfterFunc(msg.g.cfg.HelloTimeout, func() { root.Send(self, &helloTimeout{}) })
}

func (a *connActor) closeUnauthorized(err error) {
	a.logAuth("unauthorized", err)
	reason := wire.AsError(err).Message
	a.sess.Close(transport.Disconnect{Code: wire.CloseUnauthorized, Reason: reason})
}

func (a *connActor) logAuth(msg string, err error) {
	l := a.auth.guard.cfg.Logger
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	info := a.sess.Info()
	l.LogAttrs(context.Background(), slog.LevelDebug, msg, slog.String("conn_id", info.ID),
		slog.String("transport", info.Transport), slog.String("reason", wire.AsError(err).Message))
}

// setClaims puts claims in force and arms the expiry timer.
func (a *connActor) setClaims(c actor.Context, claims *auth.Claims) {
	a.auth.claims = claims
	a.auth.awaitingHello = false
	if a.auth.helloTimer != nil {
		a.auth.helloTimer.Stop()
		a.auth.helloTimer = nil
	}
	if a.auth.expiryTimer != nil {
		a.auth.expiryTimer.Stop()
	}
	a.auth.expiryGen++
	gen := a.auth.expiryGen
	self, root := c.Self(), c.ActorSystem().Root
	d := claims.Expires.Sub(a.auth.guard.cfg.Now())
	a.auth.expiryTimer = time.AfterFunc(max(d, 0), func() { root.Send(self, &tokenExpired{gen: gen}) })
}

func (a *connActor) onHelloTimeout() {
	if a.closed || !a.auth.awaitingHello {
		return
	}
	a.sess.Close(DisconnectNoHello)
}

func (a *connActor) onTokenExpired(msg *tokenExpired) {
	if a.closed || msg.gen != a.auth.expiryGen {
		return // a refresh came first
	}
	a.sess.Close(DisconnectExpired)
}

// gate runs before every command and reports whether the command goes on.
// It enforces "hello first" and answers hello and refresh.
func (a *connActor) gate(c actor.Context, cmd *wire.Command) bool {
	first := !a.auth.started
	if cmd.Op != wire.OpPing {
		a.auth.started = true
	}
	if !a.auth.required() {
		return true // hello and refresh are answered ok by onCommand
	}
	if a.auth.awaitingHello {
		switch cmd.Op {
		case wire.OpPing:
			return true
		case wire.OpHello:
			a.onHello(c, cmd)
		default:
			a.sess.Close(DisconnectHelloFirst)
		}
		return false
	}
	if a.auth.claims == nil {
		return false // the token was refused: the session is closing
	}
	switch cmd.Op {
	case wire.OpHello:
		if !first {
			a.fail(cmd.ID, wire.CodeBadRequest, "hello must be the first command")
			return false
		}
		a.onHello(c, cmd) // replaces the token of the URL
		return false
	case wire.OpRefresh:
		a.onRefresh(c, cmd)
		return false
	}
	return true
}

func (a *connActor) onHello(c actor.Context, cmd *wire.Command) {
	claims, err := a.auth.guard.verifier.Verify(cmd.Token)
	if err != nil {
		a.closeUnauthorized(err)
		return
	}
	a.setClaims(c, claims)
	a.write(wire.AppendOK(nil, cmd.ID))
}

// onRefresh replaces the token. A bad one is an error and leaves the old
// one in force; subscriptions the new claims no longer allow end with an
// error frame naming their topic.
func (a *connActor) onRefresh(c actor.Context, cmd *wire.Command) {
	claims, err := a.auth.guard.verifier.Verify(cmd.Token)
	if err != nil {
		e := wire.AsError(err)
		a.logAuth("refresh refused", err)
		a.fail(cmd.ID, wire.CodeUnauthorized, e.Message)
		return
	}
	if claims.Subject != a.auth.claims.Subject {
		a.fail(cmd.ID, wire.CodeUnauthorized, "the new token is for another sub")
		return
	}
	a.setClaims(c, claims)
	var revoked []string
	for topic := range a.subs {
		if !claims.Subscribe.Allow(topic) {
			revoked = append(revoked, topic)
		}
	}
	for _, topic := range revoked {
		delete(a.subs, topic)
		a.conns.relays.send(topic, &relayUnsubscribe{conn: a.ref})
	}
	// Presence needs subscribe permission too: the memberships it no
	// longer allows end (the client's subscription error says so, or
	// nothing when it entered without subscribing).
	for topic := range a.entered {
		if !claims.Subscribe.Allow(topic) {
			delete(a.entered, topic)
			a.conns.relays.send(topic, &relayLeave{conn: a.ref})
		}
	}
	a.write(wire.AppendOK(nil, cmd.ID))
	for _, topic := range revoked {
		a.revoked(c, topic)
	}
}

// revoked tells the client that its subscription to topic ended, once the
// relay has removed it, so no msg of topic follows the error frame.
func (a *connActor) revoked(c actor.Context, topic string) {
	frame := wire.AppendError(nil, &wire.Error{Code: wire.CodeForbidden, Topic: topic,
		Message: "the refreshed token does not allow subscribing to " + topic})
	pid := a.conns.relays.pidOf(topic)
	if pid == nil {
		a.write(frame) // the relay has stopped: it handled the unsubscribe
		return
	}
	// The relay answers a Touch after every message sent to it before; if
	// it stops first (it does when its last subscriber leaves) the Touch
	// is dropped, but the watch then reports Terminated.
	if a.auth.revokes == nil {
		a.auth.revokes = make(map[string][][]byte)
	}
	if _, ok := a.auth.revokes[pid.Id]; !ok {
		c.Watch(pid)
		c.Request(pid, &actor.Touch{})
	}
	a.auth.revokes[pid.Id] = append(a.auth.revokes[pid.Id], frame)
}

// onRelayDone writes the revocations that waited for relay who.
func (a *connActor) onRelayDone(c actor.Context, who *actor.PID) {
	frames, ok := a.auth.revokes[who.Id]
	if !ok {
		return
	}
	delete(a.auth.revokes, who.Id)
	c.Unwatch(who)
	if !a.closed {
		_ = a.sess.WriteMany(frames) // a failed write has closed the session
	}
}

// pidOf returns the relay of topic, or nil when it has none.
func (r *Relays) pidOf(topic string) *actor.PID {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.m[topic]; e != nil {
		return e.pid
	}
	return nil
}
