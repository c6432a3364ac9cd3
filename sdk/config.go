package sdk

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/topicast/topicast/sdk/wire"
)

// Defaults of Config.
const (
	DefaultMinBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff     = 10 * time.Second
	DefaultDialTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultPingAfter      = 25 * time.Second
	DefaultSilenceTimeout = 60 * time.Second
	DefaultMaxMessage     = wire.DefaultMaxMessage // the server's default --max-message
	DefaultMaxReadBytes   = 64 << 20
)

// Config configures a Client. The zero value is usable: every zero field
// means its default; for durations, negative means disabled where the field
// says so.
type Config struct {
	// FallbackURLs are more server URLs, tried in turn after the one given
	// to Dial: Dial tries each once, and the client moves to the next one
	// after a failed connection attempt or a 1001 (server going away).
	FallbackURLs []string
	// Token, if set, is called before every connection attempt; a non-empty
	// result is sent in a hello frame, first on the connection. An error
	// counts as a failed attempt.
	Token func(ctx context.Context) (string, error)
	// Header holds extra HTTP headers for the WebSocket upgrade, the
	// WebTransport CONNECT request and WebRTC's requests (the offer and
	// GET /v1/info).
	Header http.Header
	// TLSConfig is used for wss://, WebTransport (https://) and https://
	// WebRTC URLs (for the offer; the data channels have DTLS of their
	// own, bound to the answer); nil means the defaults of crypto/tls (the
	// system's roots). Set RootCAs to trust a private CA. For
	// WebTransport, NextProtos is replaced by h3.
	TLSConfig *tls.Config
	// CertHash, if set, pins the WebTransport server's certificate: the
	// lower-case hex SHA-256 of its leaf certificate (DER), as GET /v1/info
	// reports it for the server's development certificate (colons and
	// upper case are accepted). A pinned certificate is accepted whoever
	// signed it and whatever its names, as browsers do with
	// serverCertificateHashes; any other certificate is refused. It does
	// not apply to WebSocket and WebRTC URLs.
	CertHash string
	// ICEServers are the STUN and TURN servers of WebRTC connections, as
	// URLs (stun:stun.example.com:3478, turn:turn.example.com?transport=udp;
	// TURN credentials are not supported). Empty means the ones the server
	// lists in GET /v1/info (webrtc.iceServers), asked once per server
	// (again after a network error): none if it lists none or answers an
	// error, which is enough when the client reaches the server's
	// addresses directly.
	ICEServers []string
	// KeepFrames sets Message.Frame, the msg frame exactly as the server
	// sent it, for tools that pass frames on unchanged. It costs a copy of
	// every frame. (With Delta, a message that came as a delta keeps the
	// delta frame.)
	KeepFrames bool
	// Delta asks the server for fossil deltas ("delta":"fossil", protocol
	// 1.1) on every subscription except Datagram and Latest ones: a message
	// whose data differs little from the one before travels as the
	// difference. The client rebuilds each message's data before handing
	// it over, so handlers see no difference; it keeps the last data of
	// each such subscription. A delta that does not apply (it cannot happen
	// with a conforming server) is reported as an EventError, and the
	// client reconnects and recovers the message whole.
	Delta bool

	// MinBackoff and MaxBackoff bound the wait before a reconnection
	// attempt: the n-th consecutive attempt waits a random time in
	// [0, min(MaxBackoff, MinBackoff*2^n)] ("full jitter"). Zero means
	// DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// DialTimeout bounds one connection attempt (TCP, TLS and upgrade for
	// WebSocket; QUIC, TLS, CONNECT and stream for WebTransport; ICE
	// gathering, the offer, ICE, DTLS and SCTP until the channel opens for
	// WebRTC). Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// WriteTimeout bounds one write to the server; hitting it drops the
	// connection (then the client reconnects). Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// PingAfter is how long the connection may be quiet (nothing sent, or
	// nothing received) before the client sends a ping. Zero means
	// DefaultPingAfter; negative disables client pings.
	PingAfter time.Duration
	// SilenceTimeout is how long the server may send nothing before the
	// client drops the connection as dead and reconnects. Zero means
	// DefaultSilenceTimeout; negative disables it.
	SilenceTimeout time.Duration
	// MaxMessage is the largest data, in compacted bytes, that Publish
	// sends; larger data gets a *wire.Error with wire.CodeTooLarge without
	// reaching the server (which would close the connection for a too large
	// frame). Set it to the server's --max-message. Zero means
	// DefaultMaxMessage; negative disables the check.
	MaxMessage int
	// MaxReadBytes bounds one message from the server in bytes (a
	// WebSocket message or WebRTC channel message may carry many frames;
	// over WebTransport it bounds one line). Zero means DefaultMaxReadBytes.
	MaxReadBytes int

	// OnEvent, if set, receives the client's events (connected,
	// disconnected, reset...). It is called on the goroutine that calls
	// message handlers, in order with them, and must not block for long.
	OnEvent func(Event)
	// Logger receives debug logs of connections; nil discards.
	Logger *slog.Logger
}

// withDefaults returns a copy of c with the defaults applied.
func (c Config) withDefaults() Config {
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.PingAfter == 0 {
		c.PingAfter = DefaultPingAfter
	}
	if c.SilenceTimeout == 0 {
		c.SilenceTimeout = DefaultSilenceTimeout
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.MaxReadBytes == 0 {
		c.MaxReadBytes = DefaultMaxReadBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks a config that has its defaults.
func (c *Config) validate() error {
	if c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff {
		return fmt.Errorf("topicast: backoff must satisfy 0 <= MinBackoff <= MaxBackoff, got %v and %v",
			c.MinBackoff, c.MaxBackoff)
	}
	if c.DialTimeout < 0 || c.WriteTimeout < 0 || c.MaxReadBytes < 0 {
		return errors.New("topicast: DialTimeout, WriteTimeout and MaxReadBytes must not be negative")
	}
	if c.CertHash != "" {
		if _, err := parseCertHash(c.CertHash); err != nil {
			return err
		}
	}
	return nil
}

// checkURL accepts the URLs a transport can dial.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w %q: %w", ErrUnsupportedURL, raw, err)
	}
	switch {
	case u.Scheme == "ws" || u.Scheme == "wss":
		return nil
	case u.Scheme == "https" || isWebRTCURL(u):
		if u.Host == "" {
			return fmt.Errorf("%w %q: no host", ErrUnsupportedURL, raw)
		}
		return nil
	default:
		return fmt.Errorf("%w %q: the URL must be ws:// or wss:// (WebSocket), https:// (WebTransport), "+
			"or http:// or https:// ending in %s (WebRTC)", ErrUnsupportedURL, raw, rtcPath)
	}
}
