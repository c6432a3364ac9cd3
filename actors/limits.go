package actors

import (
	"time"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/auth"
)

// Defaults of GuardConfig. docs/security.md lists them with their errors.
const (
	// DefaultHelloTimeout is how long a client that must authenticate and
	// sent no token with its URL has to send hello (then 4009).
	DefaultHelloTimeout = 5 * time.Second
	// DefaultMaxConns bounds a node's client sessions (then 4029 right
	// after the upgrade). It is above what one process's file descriptors
	// allow here (20,000): the limit is for operators who want a lower one.
	DefaultMaxConns = 100000
	// DefaultMaxSubscriptions bounds one connection's subscriptions (then
	// error bad_request).
	DefaultMaxSubscriptions = 1000
	// DefaultCommandRate is how many commands per second one connection
	// may send on average (then error rate_limited).
	DefaultCommandRate = 100
	// DefaultCommandBurst is how many commands a connection may send at
	// once, and how many rejected commands within one second close it
	// (4029).
	DefaultCommandBurst = 200
)

// Disconnects of the guard.
var (
	DisconnectTooManyConns = transport.Disconnect{Code: wire.CloseRateLimited, Reason: "too many connections on this node, try later"}
	DisconnectFlood        = transport.Disconnect{Code: wire.CloseRateLimited, Reason: "too many commands"}
	DisconnectNoHello      = transport.Disconnect{Code: wire.CloseProtocolError, Reason: "no hello in time"}
	DisconnectHelloFirst   = transport.Disconnect{Code: wire.CloseUnauthorized, Reason: "a token is required: the first command must be hello"}
	DisconnectExpired      = transport.Disconnect{Code: wire.CloseUnauthorized, Reason: "token expired"}
)

// commandLimiter meters one connection's commands on its reader goroutine,
// before they reach the actor. It is owned by that goroutine.
type commandLimiter struct {
	bucket auth.Bucket
	// abuse is the number of rejected commands within one second that
	// closes the connection.
	abuse       int
	winStart    time.Time
	winRejected int
}

func newCommandLimiter(rate float64, burst int, now time.Time) *commandLimiter {
	return &commandLimiter{bucket: auth.NewBucket(rate, burst, now), abuse: burst, winStart: now}
}

// allow takes a token for one command. When there is none it reports
// whether the connection has been rejected so often that it must close.
func (l *commandLimiter) allow(now time.Time) (ok, flood bool) {
	if l.bucket.Take(now) {
		return true, false
	}
	if now.Sub(l.winStart) >= time.Second {
		l.winStart, l.winRejected = now, 0
	}
	l.winRejected++
	return false, l.winRejected > l.abuse
}
