package webrtc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// Defaults of Config.
const (
	DefaultUDPAddr        = "127.0.0.1:4434"
	DefaultWriteTimeout   = 10 * time.Second
	DefaultConnectTimeout = 15 * time.Second
	DefaultMaxPending     = 1024
)

// Path is the signalling endpoint: POST an offer, get the answer.
const Path = "/v1/webrtc"

// Labels of the data channels the client opens.
const (
	ChannelLabel         = "topicast"
	DatagramChannelLabel = "topicast-datagram"
)

// MaxOfferSize is the largest SDP offer accepted.
const MaxOfferSize = 64 << 10

const (
	// frameSlack is what the protocol allows beyond the data limit for the
	// rest of a frame.
	frameSlack = 4096
	// maxSendMessage caps the channel messages the server sends: browsers
	// take 256 KiB, and larger ones would hold the association's other
	// channel (datagrams) back for longer.
	maxSendMessage = 64 << 10
	// shutdownTimeout bounds how long Close waits for sessions to send
	// their 1001 before it closes their peer connections.
	shutdownTimeout = 2 * time.Second
	// gatherTimeout bounds ICE gathering for an answer. The server gathers
	// host candidates on its UDP mux only, which takes no network round
	// trip.
	gatherTimeout = 5 * time.Second
	// ICE timeouts of the server's agents: a path silent for
	// iceDisconnected is disconnected, for iceFailed failed (the session
	// ends); consent checks every iceKeepalive.
	iceDisconnected = 5 * time.Second
	iceFailed       = 15 * time.Second
	iceKeepalive    = 2 * time.Second
	// sctpRTOMax caps SCTP's retransmission timeout. SCTP's minimum is 1 s
	// (RFC 4960), so a lost packet at the tail of a burst, which no later
	// packet reveals, stalls the channel for a second; measured through
	// 5% loss (test/webrtc_test.go), the cap took the reliable channel's
	// longest stall from 1.08 s to 0.44-0.50 s and the datagram channel's newest
	// value age p99 from 188 ms to 31-37 ms. Paths slower than the cap retransmit
	// needlessly, at the cost of bandwidth, not order.
	sctpRTOMax = 400 * time.Millisecond
)

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// UDPAddr is the UDP address every peer connection shares, host:port.
	// Empty means DefaultUDPAddr; port 0 picks a free port (see UDPAddr).
	UDPAddr string
	// Accept receives every new session. Required.
	Accept transport.AcceptFunc
	// CheckOrigin decides whether a browser's Origin may connect; refused
	// offers get 403. Nil allows every origin. Requests without Origin are
	// always allowed.
	CheckOrigin func(r *http.Request) bool
	// TokensRequired refuses offers without a token (401).
	TokensRequired bool
	// Authorize checks the offer's token (?token= or Authorization:
	// Bearer), answering a *wire.Error to refuse it. Nil accepts every
	// token; the session's guard checks it again, and for its expiry.
	Authorize func(r *http.Request) error
	// Conns reports the node's admitted sessions, every transport counted,
	// and MaxConns is the node's maximum (0: none): an offer that would
	// exceed it, counting the peer connections being set up, gets 503.
	Conns    func() int
	MaxConns int
	// MaxPending bounds the peer connections being set up (offer answered,
	// "topicast" not open yet). Zero means DefaultMaxPending.
	MaxPending int
	// PublicIPs replace the address of the server's candidates (1:1 NAT).
	PublicIPs []string
	// ICEServers are the STUN and TURN URLs clients should use; the server
	// reports them and uses none itself.
	ICEServers []string
	// MaxMessage is the data limit in bytes; a frame longer than it plus
	// 4 KiB closes the session with 1009. Zero means wire.DefaultMaxMessage.
	MaxMessage int
	// MaxPendingBytes bounds each session's outbound queue, in bytes. Zero
	// means transport.DefaultMaxPendingBytes.
	MaxPendingBytes int
	// WriteTimeout bounds how long a write waits for the client's channel
	// to drain; hitting it closes the session as a slow consumer. Zero
	// means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// ConnectTimeout bounds the time from the answer to the "topicast"
	// channel's opening. Zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Keepalive, if set, pings quiet sessions and closes silent ones.
	Keepalive *transport.Keepalive
	// NodeState is the node's shared transport state. Nil means one of the
	// server's own.
	NodeState *transport.NodeState
	// Logger; nil discards.
	Logger *slog.Logger
}

func (cfg Config) withDefaults() Config {
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = DefaultUDPAddr
	}
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = wire.DefaultMaxMessage
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.NodeState == nil {
		cfg.NodeState = new(transport.NodeState)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

func (cfg Config) validate() error {
	switch {
	case cfg.Accept == nil:
		return errors.New("topicast: webrtc: Config.Accept is required")
	case cfg.MaxMessage < 0, cfg.MaxPendingBytes < 0, cfg.MaxPending < 0:
		return errors.New("topicast: webrtc: negative limit")
	case cfg.WriteTimeout < 0, cfg.ConnectTimeout < 0:
		return errors.New("topicast: webrtc: negative timeout")
	}
	for _, u := range cfg.ICEServers {
		if _, err := stun.ParseURI(u); err != nil {
			return fmt.Errorf("topicast: webrtc: ICE server %q: %w", u, err)
		}
	}
	for _, ip := range cfg.PublicIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("topicast: webrtc: public IP %q is not an IP address", ip)
		}
	}
	return nil
}

// Server answers offers on Path and serves the sessions of the peer
// connections they set up. It is an http.Handler; its methods are
// goroutine-safe.
type Server struct {
	cfg   Config
	log   *slog.Logger
	udp   net.PacketConn
	mux   *ice.UDPMuxDefault
	api   *webrtc.API
	limit int // the longest frame accepted: MaxMessage plus slack

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	pending atomic.Int64

	mu       sync.Mutex
	closed   bool
	peers    map[*peer]struct{}
	sessions map[*session]struct{}
}

// sessionSeq numbers sessions within the process.
var sessionSeq atomic.Uint64

// New listens on cfg.UDPAddr and returns a server ready for offers.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	udp, err := net.ListenPacket("udp", cfg.UDPAddr)
	if err != nil {
		return nil, fmt.Errorf("topicast: webrtc: %w", err)
	}
	logs := newLoggerFactory(cfg.Logger)
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: udp, Logger: logs.NewLogger("udpmux")})
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		udp:      udp,
		mux:      mux,
		limit:    cfg.MaxMessage + frameSlack,
		peers:    make(map[*peer]struct{}),
		sessions: make(map[*session]struct{}),
	}
	var se webrtc.SettingEngine
	se.LoggerFactory = logs
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetIncludeLoopbackCandidate(true)
	// Browsers hide their host addresses behind mDNS names; the server
	// never needs to resolve them (it learns the client's address from its
	// checks) and must not answer multicast queries.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(iceDisconnected, iceFailed, iceKeepalive)
	se.DetachDataChannels()
	se.SetSCTPMaxMessageSize(uint32(s.limit))
	se.SetSCTPRTOMax(sctpRTOMax)
	if len(cfg.PublicIPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			_ = mux.Close()
			return nil, fmt.Errorf("topicast: webrtc: public IPs: %w", err)
		}
	}
	s.api = webrtc.NewAPI(webrtc.WithSettingEngine(se))
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// UDPAddr returns the address of the UDP socket every peer connection
// shares.
func (s *Server) UDPAddr() net.Addr { return s.udp.LocalAddr() }

// ICEServers returns the STUN and TURN URLs clients should use.
func (s *Server) ICEServers() []string { return s.cfg.ICEServers }

// ServeHTTP answers an offer POSTed to Path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	offer, err := s.readOffer(w, r)
	if err != nil {
		transport.WriteHTTPError(w, err)
		return
	}
	p, answer, err := s.answer(r, offer)
	if err != nil {
		e := (*wire.Error)(nil)
		switch {
		case !errors.As(err, &e):
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "webrtc: answering an offer failed",
				slog.String("remote", r.RemoteAddr), slog.Any("err", err))
		case e.Code == wire.CodeUnavailable:
			w.Header().Set("Retry-After", "1")
		}
		transport.WriteHTTPError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	if _, err := io.WriteString(w, answer); err != nil {
		// The client is gone before it got the answer: nothing will
		// connect, so do not wait for the timeout.
		p.close()
	}
}

// readOffer checks an offer request and returns its SDP.
func (s *Server) readOffer(w http.ResponseWriter, r *http.Request) (string, error) {
	if r.Header.Get("Origin") != "" && s.cfg.CheckOrigin != nil && !s.cfg.CheckOrigin(r) {
		return "", wire.Errorf(wire.CodeForbidden, "origin not allowed")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/sdp" {
		return "", wire.Errorf(wire.CodeBadRequest, "an offer is sent with Content-Type: application/sdp")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxOfferSize))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return "", wire.Errorf(wire.CodeTooLarge, "the offer is larger than %d bytes", MaxOfferSize)
		}
		return "", wire.Errorf(wire.CodeBadRequest, "reading the offer: %v", err)
	}
	if s.cfg.TokensRequired && transport.RequestToken(r) == "" {
		return "", wire.Errorf(wire.CodeUnauthorized, "a token is required: ?token= or Authorization: Bearer")
	}
	if s.cfg.Authorize != nil {
		if err := s.cfg.Authorize(r); err != nil {
			return "", err
		}
	}
	if err := checkOffer(body); err != nil {
		return "", err
	}
	return string(body), nil
}

// checkOffer reports a *wire.Error (bad_request) unless body is an SDP
// offer for data channels only.
func checkOffer(body []byte) error {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(string(body)); err != nil {
		return wire.Errorf(wire.CodeBadRequest, "the body is not an SDP offer: %v", err)
	}
	app := false
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "application" {
			return wire.Errorf(wire.CodeBadRequest, "the offer has a %s section: topicast takes data channels only", m.MediaName.Media)
		}
		app = true
	}
	if !app {
		return wire.Errorf(wire.CodeBadRequest, "the offer has no data channel section: create the %q data channel before the offer", ChannelLabel)
	}
	return nil
}

// admit counts one more peer connection being set up, or answers why it
// cannot be.
func (s *Server) admit() error {
	n := s.pending.Add(1)
	switch {
	case n > int64(s.cfg.MaxPending):
	case s.cfg.MaxConns > 0 && s.cfg.Conns != nil && int64(s.cfg.Conns())+n > int64(s.cfg.MaxConns):
	default:
		return nil
	}
	s.pending.Add(-1)
	return wire.Errorf(wire.CodeUnavailable, "the node is full: try again later")
}

// answer makes the peer connection of offer and returns its answer, with
// every candidate in it.
func (s *Server) answer(r *http.Request, offer string) (*peer, string, error) {
	if err := s.admit(); err != nil {
		return nil, "", err
	}
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		s.pending.Add(-1)
		return nil, "", err
	}
	id := "rtc-" + strconv.FormatUint(sessionSeq.Add(1), 10)
	p := &peer{
		srv:  s,
		pc:   pc,
		done: make(chan struct{}),
		info: transport.SessionInfo{
			ID:         id,
			Transport:  "webrtc",
			RemoteAddr: r.RemoteAddr,
			Token:      transport.RequestToken(r),
			Origin:     r.Header.Get("Origin"),
		},
		log: s.log.With(slog.String("conn_id", id)),
	}
	p.isPending.Store(true)
	if !s.track(p) {
		p.release()
		_ = pc.Close()
		return nil, "", wire.Errorf(wire.CodeUnavailable, "the server is shutting down")
	}
	pc.OnDataChannel(p.onDataChannel)
	pc.OnConnectionStateChange(p.onState)
	answer, err := p.negotiate(offer)
	if err != nil {
		p.close()
		return nil, "", err
	}
	p.timer = time.AfterFunc(s.cfg.ConnectTimeout, p.expire)
	return p, answer, nil
}

// track adds p to the server's peers, unless the server is closed.
func (s *Server) track(p *peer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.peers[p] = struct{}{}
	s.wg.Add(1)
	return true
}

// forget removes p once its peer connection is closed.
func (s *Server) forget(p *peer) {
	s.mu.Lock()
	delete(s.peers, p)
	s.mu.Unlock()
	s.wg.Done()
}

// Close ends every session with 1001 (waiting up to two seconds for their
// close frames), closes every peer connection and the UDP socket, and
// waits for the goroutines of all.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.Close(transport.DisconnectShutdown)
	}
	deadline := time.NewTimer(shutdownTimeout)
	defer deadline.Stop()
	for _, ss := range sessions {
		select {
		case <-ss.p.done:
		case <-deadline.C:
		}
	}
	s.cancel()
	s.mu.Lock()
	peers := make([]*peer, 0, len(s.peers))
	for p := range s.peers {
		peers = append(peers, p)
	}
	s.mu.Unlock()
	for _, p := range peers {
		p.close()
	}
	s.wg.Wait()
	return s.mux.Close() // closes the UDP socket
}

// sessionOpened and sessionEnded keep the sessions that Close ends.
func (s *Server) sessionOpened(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions[ss] = struct{}{}
	return true
}

func (s *Server) sessionEnded(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
}

// Pending returns the number of peer connections being set up.
func (s *Server) Pending() int { return int(s.pending.Load()) }

// Sessions returns the number of open sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
