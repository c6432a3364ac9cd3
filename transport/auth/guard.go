package auth

import (
	"net/http"
	"sync/atomic"

	"github.com/topicast/topicast/sdk/wire"
)

// AuthorizeRequest checks an HTTP client request (SSE, long polling,
// history): its token (?token= or Authorization: Bearer, see FromRequest)
// must be valid (else a *wire.Error unauthorized, 401) and allow
// subscribing to every one of topics (else forbidden, 403). A nil
// *Verifier, the one of a server that needs no token, allows everything,
// so v.AuthorizeRequest can be handed to the HTTP transports either way.
func (v *Verifier) AuthorizeRequest(r *http.Request, topics []string) error {
	return v.AuthorizeToken(FromRequest(r), topics)
}

// AuthorizeToken is AuthorizeRequest for a token already taken from its
// request (gRPC metadata, say): valid, and allowing every one of topics.
func (v *Verifier) AuthorizeToken(token string, topics []string) error {
	if v == nil {
		return nil
	}
	claims, err := v.Verify(token)
	if err != nil {
		return err
	}
	for _, t := range topics {
		if !claims.Subscribe.Allow(t) {
			return wire.Errorf(wire.CodeForbidden, "the token does not allow subscribing to %s", t)
		}
	}
	return nil
}

// ConnLimit counts a node's admitted client sessions against a maximum. It
// is goroutine-safe.
type ConnLimit struct {
	max int64 // <= 0: no limit
	n   atomic.Int64
}

// NewConnLimit returns a limit of max sessions; max <= 0 means no limit
// (sessions are still counted).
func NewConnLimit(max int) *ConnLimit { return &ConnLimit{max: int64(max)} }

// Acquire counts one more session and reports whether it fits under the
// maximum. A session that does not fit is not counted; one that fits must
// be given back with Release when it ends.
func (l *ConnLimit) Acquire() bool {
	n := l.n.Add(1)
	if l.max > 0 && n > l.max {
		l.n.Add(-1)
		return false
	}
	return true
}

// Release gives back a session counted by Acquire.
func (l *ConnLimit) Release() { l.n.Add(-1) }

// Count returns the number of sessions acquired and not yet released.
func (l *ConnLimit) Count() int { return int(l.n.Load()) }

// Max returns the maximum, <= 0 for none.
func (l *ConnLimit) Max() int { return int(l.max) }
