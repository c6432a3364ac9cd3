package sdk

import (
	"errors"
	"fmt"
	"net"

	"github.com/topicast/topicast/sdk/wire"
)

// Sentinel errors of the SDK. Match them with errors.Is.
var (
	// ErrClosed is returned by calls on a Client or Publisher after Close.
	ErrClosed = fmt.Errorf("topicast: client closed: %w", net.ErrClosed)
	// ErrConnectionLost is returned by a call whose connection ended before
	// the server answered: a Publish whose outcome is unknown, for one. The
	// cause (a *CloseError, a network error) is wrapped too.
	ErrConnectionLost = fmt.Errorf("topicast: connection lost: %w", net.ErrClosed)
	// ErrServerSilent is the cause of a disconnect when the server sent
	// nothing for Config.SilenceTimeout.
	ErrServerSilent = errors.New("topicast: server silent for too long")
	// ErrAlreadySubscribed is returned by Subscribe for a topic the client
	// is already subscribed to.
	ErrAlreadySubscribed = errors.New("topicast: already subscribed")
	// ErrSubscriptionEnded is returned by Enter on a Subscription that
	// ended (Unsubscribe, or the server ended it), and by an Enter waiting
	// for its answer when the subscription ends.
	ErrSubscriptionEnded = errors.New("topicast: subscription ended")
	// ErrMessageTooLarge is the cause of a disconnect when the server sent a
	// message longer than Config.MaxReadBytes.
	ErrMessageTooLarge = errors.New("topicast: message from the server too large")
	// ErrUnsupportedURL is returned by Dial for a URL that no transport
	// dials (ws:// and wss:// for WebSocket, https:// for WebTransport,
	// http:// and https:// ending in /v1/webrtc for WebRTC are supported).
	ErrUnsupportedURL = errors.New("topicast: unsupported URL")
)

// CloseError is how the server ended a connection: the WebSocket close code
// (the same number as a WebTransport session error code) and its reason.
// Code.Reconnect reports whether the client reconnects after it. It matches
// net.ErrClosed with errors.Is.
type CloseError struct {
	Code   wire.DisconnectCode
	Reason string
}

// Error describes the close for logs.
func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("topicast: server closed the connection: %d (%s)", uint16(e.Code), e.Code)
	}
	return fmt.Sprintf("topicast: server closed the connection: %d (%s): %s", uint16(e.Code), e.Code, e.Reason)
}

// Is makes a CloseError match net.ErrClosed.
func (e *CloseError) Is(target error) bool { return target == net.ErrClosed }

// closeNoStatus is the code of a close frame without a code (RFC 6455 1005).
const closeNoStatus wire.DisconnectCode = 1005
