package transport

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/topicast/topicast/sdk/wire"
)

// Disconnect is how a session ends: a close code and a short reason, sent to
// the client as the WebSocket close frame or WebTransport session error. It
// implements error.
type Disconnect struct {
	Code   wire.DisconnectCode
	Reason string
}

// MaxReasonLen is the longest close reason: a WebSocket control frame holds
// 125 bytes, two of which are the code.
const MaxReasonLen = 123

func (d Disconnect) Error() string {
	return fmt.Sprintf("topicast: disconnect %d (%s): %s", d.Code, d.Code, d.Reason)
}

// Is makes every Disconnect match net.ErrClosed, so that callers can test for
// a closed connection without knowing why it closed.
func (d Disconnect) Is(target error) bool { return target == net.ErrClosed }

// Disconnects the server uses.
var (
	DisconnectShutdown  = Disconnect{wire.CloseGoingAway, "server shutting down"}
	DisconnectSilent    = Disconnect{wire.CloseGoingAway, "no traffic from the client for too long"}
	DisconnectSlow      = Disconnect{wire.CloseSlowConsumer, "slow consumer: outbound queue full"}
	DisconnectWriteSlow = Disconnect{wire.CloseSlowConsumer, "slow consumer: write timed out"}
	DisconnectTooLarge  = Disconnect{wire.CloseTooLarge, "frame too large"}
	DisconnectProtocol  = Disconnect{wire.CloseProtocolError, "protocol error"}
	DisconnectNormal    = Disconnect{wire.CloseNormal, ""}
)

// ErrClosed is returned by writes to a session that is closed or closing.
var ErrClosed = fmt.Errorf("topicast: session closed: %w", net.ErrClosed)

// AsDisconnect returns the Disconnect inside err, if any.
func AsDisconnect(err error) (Disconnect, bool) {
	var d Disconnect
	ok := errors.As(err, &d)
	return d, ok
}

// Session is one client connection as the server's actors see it, whatever
// its transport. All methods are goroutine-safe and never block on the
// network.
type Session interface {
	// Write queues one frame. The session keeps a reference to frame until it
	// is written: callers must not modify it afterwards (frames are shared by
	// every subscriber of a message).
	Write(frame []byte) error
	// WriteMany queues several frames at once, in order.
	WriteMany(frames [][]byte) error
	// WriteBacklog queues frames like WriteMany, but they do not count
	// against the slow-consumer bound: a recovery may send a topic's whole
	// history at once, which the history's own bounds limit.
	WriteBacklog(frames [][]byte) error
	// Close writes what is queued (unless the close is for a slow consumer),
	// then sends d and closes the connection. It does not wait.
	Close(d Disconnect)
	// Context is cancelled when the session has closed; its cause is the
	// Disconnect or the connection error.
	Context() context.Context
	// Info describes the session. It does not change after accept.
	Info() *SessionInfo
}

// DatagramSession is a Session that can also send unreliable datagrams
// (WebTransport).
type DatagramSession interface {
	Session
	// WriteDatagram sends frame as one datagram if it fits, and reports
	// false (without error) when it does not, so the caller can use Write.
	WriteDatagram(frame []byte) (bool, error)
}

// LatestSession is a Session that serves latest-value subscriptions
// (PROTOCOL.md 1.1, "mode":"latest"): of the frames written with
// WriteLatest for one topic, at most the newest waits in the queue, so a
// slow client gets fresh values and that topic's volume never closes it as
// a slow consumer. The adapters that embed Outbound are LatestSessions.
type LatestSession interface {
	Session
	// WriteLatest queues frame, replacing the topic's frame still waiting
	// in the queue, if any (its bytes are released).
	WriteLatest(topic string, frame []byte) error
	// WriteLatestBarrier queues frame (a reset, say) like Write, and makes
	// the topic's next WriteLatest queue after it: no message replaces one
	// that waits ahead of frame, which would overtake it.
	WriteLatestBarrier(topic string, frame []byte) error
}

// SessionInfo describes a session.
type SessionInfo struct {
	// ID is unique within the node.
	ID string
	// Transport names the adapter: "ws", "wt", "sse", "poll", "grpc",
	// "webrtc".
	Transport string
	// RemoteAddr is the client's address as the server saw it.
	RemoteAddr string
	// Token is the token from the URL (?token=), if any.
	Token string
	// Origin is the Origin header of the upgrade, if any.
	Origin string
	// Service marks the session of a backend service that proved an API
	// key (gRPC Subscribe): it needs no client token, and its
	// subscriptions are not held to a token's patterns.
	Service bool
}

// Handler receives what a client sends on a session. Adapters call its
// methods from the session's reader; they must not block.
type Handler interface {
	// HandleFrame is called with each frame (one line, no line end). The
	// handler must copy frame if it keeps it.
	HandleFrame(frame []byte)
	// HandleClosed is called once, after the last HandleFrame, when the
	// session has ended; err is the cause.
	HandleClosed(err error)
}

// AcceptFunc takes a new session and returns the Handler for its frames.
type AcceptFunc func(s Session) Handler

// CommandHandler is a Handler that also takes commands as values: adapters
// that act on their client's behalf (SSE and long polling subscribe for it)
// hand it the command they built, with no JSON frame in between. The
// connection actors' handler implements it.
type CommandHandler interface {
	Handler
	// HandleCommand is HandleFrame for a command already decoded and
	// valid; the handler owns cmd. It must not block.
	HandleCommand(cmd *wire.Command)
}

// Subscribe hands h the sub command of topic (since nil: no recovery) as
// the client's command id: as a value when h is a CommandHandler, as the
// frame a client would send otherwise. latest asks for a latest-value
// subscription.
func Subscribe(h Handler, id uint64, topic string, since *wire.Position, latest bool) {
	if ch, ok := h.(CommandHandler); ok {
		if cmd, err := wire.SubCommand(id, topic, since); err == nil {
			cmd.Latest = latest
			ch.HandleCommand(cmd)
			return
		}
		// Not valid: the handler answers the frame as it would a client's.
	}
	h.HandleFrame(wire.AppendSubCommand(nil, &wire.Command{Op: wire.OpSub, ID: id, Topic: topic, Since: since, Latest: latest}))
}
