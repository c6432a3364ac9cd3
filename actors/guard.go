package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/auth"
)

// GuardConfig configures a Guard: who may connect and how much a client may
// ask. Zero values mean the defaults; negative numbers disable a limit.
type GuardConfig struct {
	// TokenSecret signs client tokens (JWT, HS256). Empty means no token
	// is needed: every client may subscribe and publish everywhere.
	TokenSecret []byte
	// HelloTimeout is how long a client has to send hello when a token is
	// required and none came with its URL. Zero means DefaultHelloTimeout.
	HelloTimeout time.Duration
	// MaxConns bounds the node's sessions that went through the guard.
	// Zero means DefaultMaxConns; negative means no limit.
	MaxConns int
	// MaxSubscriptions bounds one connection's subscriptions. Zero means
	// DefaultMaxSubscriptions; negative means no limit.
	MaxSubscriptions int
	// CommandRate is the commands per second a connection may send on
	// average. Zero means DefaultCommandRate; negative means no limit.
	CommandRate float64
	// CommandBurst is how many commands a connection may send at once, and
	// how many rejected ones within a second close it (4029). Zero means
	// DefaultCommandBurst.
	CommandBurst int
	// Now tells the time for token expiry; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

func (c GuardConfig) withDefaults() GuardConfig {
	if c.HelloTimeout == 0 {
		c.HelloTimeout = DefaultHelloTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if c.CommandRate == 0 {
		c.CommandRate = DefaultCommandRate
	}
	if c.CommandBurst == 0 {
		c.CommandBurst = DefaultCommandBurst
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Guard admits sessions and makes their connection actors enforce tokens
// and limits. It is goroutine-safe.
//
// What does not need a connection actor lives in transport/auth: counting
// sessions (auth.ConnLimit) and authorizing HTTP clients
// (Verifier().AuthorizeRequest).
type Guard struct {
	cfg      GuardConfig
	verifier *auth.Verifier // nil when no token is needed
	conns    *auth.ConnLimit
}

// NewGuard returns a guard for cfg with its defaults applied.
func NewGuard(cfg GuardConfig) *Guard {
	cfg = cfg.withDefaults()
	g := &Guard{cfg: cfg, conns: auth.NewConnLimit(cfg.MaxConns)}
	if len(cfg.TokenSecret) > 0 {
		g.verifier = auth.NewVerifier(cfg.TokenSecret, cfg.Now)
	}
	return g
}

// TokensRequired reports whether clients need a token.
func (g *Guard) TokensRequired() bool { return g.verifier != nil }

// Verifier returns the token verifier, nil when no token is needed. Its
// AuthorizeRequest checks HTTP clients (SSE, polling, history), and allows
// everything when it is nil.
func (g *Guard) Verifier() *auth.Verifier { return g.verifier }

// Conns returns the number of sessions admitted and not yet ended.
func (g *Guard) Conns() int { return g.conns.Count() }

// guardedHandler is a handler that enforces the guard itself, a connection
// actor's: Wrap hands it the guard instead of counting it from outside, and
// it releases the session's count when the session ends.
type guardedHandler interface {
	transport.Handler
	attachGuard(g *Guard, s transport.Session)
}

// Wrap returns an AcceptFunc that admits each session (closing it with
// 4029 when the node has MaxConns already), hands it to accept (a node's
// Accept, which starts its connection actor) and attaches the guard to it.
func (g *Guard) Wrap(accept transport.AcceptFunc) transport.AcceptFunc {
	return func(s transport.Session) transport.Handler {
		if !g.conns.Acquire() {
			g.logRefused(s)
			s.Close(DisconnectTooManyConns)
			return refusedHandler{}
		}
		h := accept(s)
		if gh, ok := h.(guardedHandler); ok {
			gh.attachGuard(g, s)
			return gh
		}
		return &countedHandler{Handler: h, g: g}
	}
}

func (g *Guard) logRefused(s transport.Session) {
	if g.cfg.Logger.Enabled(context.Background(), slog.LevelDebug) {
		g.cfg.Logger.LogAttrs(context.Background(), slog.LevelDebug, "connection refused: node full",
			slog.String("conn_id", s.Info().ID), slog.Int("max_conns", g.cfg.MaxConns))
	}
}

// release gives back the count of a session admitted by Wrap.
func (g *Guard) release() { g.conns.Release() }

// refusedHandler ignores a session refused at accept.
type refusedHandler struct{}

func (refusedHandler) HandleFrame([]byte) {}
func (refusedHandler) HandleClosed(error) {}

// countedHandler releases the guard's count for a handler that is not a
// connection actor's.
type countedHandler struct {
	transport.Handler
	g *Guard
}

func (h *countedHandler) HandleClosed(err error) {
	h.Handler.HandleClosed(err)
	h.g.release()
}
