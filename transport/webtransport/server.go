package webtransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// Defaults of Config.
const (
	DefaultAddr          = "127.0.0.1:4433"
	DefaultWriteTimeout  = 10 * time.Second
	DefaultStreamTimeout = 10 * time.Second
)

// Path is the endpoint of WebTransport sessions.
const Path = "/wt"

const (
	// frameSlack is what the protocol allows beyond the data limit for the
	// rest of a frame.
	frameSlack = 4096
	// shutdownTimeout bounds how long Close waits for sessions to send
	// their 1001 before it closes the connections under them.
	shutdownTimeout = 2 * time.Second
	// connIdleTimeout is how long a QUIC connection may carry no session
	// (before the first, or after the last) before the server closes it.
	// The server sends QUIC keep-alives, so without this an abandoned
	// connection would live as long as its client.
	connIdleTimeout = 10 * time.Second
	// keepAlivePeriod keeps QUIC's idle timeout (30 s, negotiated down to
	// the client's) from closing a session between the protocol's
	// heartbeats, which may be 30 s apart.
	keepAlivePeriod = 10 * time.Second
	// Per-connection QUIC stream limits. A session needs two bidirectional
	// streams (CONNECT and the client's stream) and HTTP/3 three
	// unidirectional ones; the rest is slack for a reconnect on the same
	// connection. They bound what a client can park in streams the server
	// never reads (webtransport-go's own stream flow control is
	// incomplete, so it is left off).
	maxIncomingStreams    = 8
	maxIncomingUniStreams = 8
	// Receive windows: clients send small commands, so these bound the
	// memory a client can fill without slowing honest clients.
	maxStreamReceiveWindow     = 1 << 20
	maxConnectionReceiveWindow = 2 << 20
)

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// Addr is the UDP address to listen on, host:port. Empty means
	// DefaultAddr; port 0 picks a free port (see Server.Addr).
	Addr string
	// Accept receives every new session. Required.
	Accept transport.AcceptFunc
	// CheckOrigin decides whether a browser's Origin may connect; refused
	// requests get 403. Nil allows every origin. Requests without Origin
	// are always allowed.
	CheckOrigin func(r *http.Request) bool
	// TLSConfig serves the server's certificate. Nil makes a development
	// certificate (see NewDevCertificate), renewed while the server runs,
	// whose hash CertHash reports.
	TLSConfig *tls.Config
	// MaxMessage is the data limit in bytes; a line longer than it plus
	// 4 KiB closes the session with 1009. Zero means wire.DefaultMaxMessage.
	MaxMessage int
	// MaxPendingBytes bounds each session's outbound queue, in bytes. Zero
	// means transport.DefaultMaxPendingBytes.
	MaxPendingBytes int
	// WriteTimeout bounds each stream write (a blocked write fails after
	// WriteTimeout/2 to WriteTimeout: the deadline moves only when half of it
	// has gone); hitting it closes the session as a slow consumer. Zero means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// StreamTimeout is how long a new session may take to open its
	// stream before it is closed with 4009. Zero means
	// DefaultStreamTimeout.
	StreamTimeout time.Duration
	// Keepalive, if set, pings quiet sessions and closes silent ones.
	Keepalive *transport.Keepalive
	// NodeState is the node's shared transport state: its sessions count
	// in its backlog and metrics. Nil means one of the server's own.
	NodeState *transport.NodeState
	// Logger; nil discards.
	Logger *slog.Logger
}

// withDefaults returns a copy of cfg with defaults applied.
func (cfg Config) withDefaults() Config {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = wire.DefaultMaxMessage
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.StreamTimeout == 0 {
		cfg.StreamTimeout = DefaultStreamTimeout
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
		return errors.New("topicast: webtransport: Config.Accept is required")
	case cfg.MaxMessage < 0, cfg.MaxPendingBytes < 0:
		return errors.New("topicast: webtransport: negative size limit")
	case cfg.WriteTimeout < 0, cfg.StreamTimeout < 0:
		return errors.New("topicast: webtransport: negative timeout")
	}
	return nil
}

// Server serves WebTransport sessions on Path over HTTP/3. Its methods are
// goroutine-safe.
type Server struct {
	cfg     Config
	log     *slog.Logger
	tlsConf *tls.Config
	certs   *certSource // nil with a configured certificate
	h3      *http3.Server
	wts     *webtransport.Server

	// renewAfter is DevCertRenewAfter and connIdle connIdleTimeout; tests
	// shorten them before Start.
	renewAfter, connIdle time.Duration

	// ctx is cancelled by Close: waits for a client's stream end with it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg joins every goroutine the server starts, and the HTTP/3 handlers
	// (they run on goroutines of wts.ServeQUICConn, which wg joins).
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	// Guarded by mu.
	mu       sync.Mutex
	started  bool
	closed   bool
	pconn    net.PacketConn
	ln       *quic.EarlyListener
	sessions map[*session]struct{}
	conns    map[*quic.Conn]*connState
	// connsGone, set by Close, is closed when the last connection is gone.
	connsGone chan struct{}
}

// connState tracks the sessions of one QUIC connection, so that a
// connection left without any is closed. Guarded by Server.mu.
type connState struct {
	conn   *quic.Conn
	active int
	gen    uint64 // counts sessions started, to spot a stale idle timer
	armed  uint64 // gen when the idle timer was armed
	idle   *time.Timer
}

type connKeyType struct{}

// connKey finds a request's QUIC connection in its context.
var connKey connKeyType

// New returns a server for cfg. It makes the development certificate when
// cfg has none, so CertHash is known before Start.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger.With(slog.String("transport", "wt")),
		renewAfter: DevCertRenewAfter,
		connIdle:   connIdleTimeout,
		sessions:   make(map[*session]struct{}),
		conns:      make(map[*quic.Conn]*connState),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	base := cfg.TLSConfig
	if base == nil {
		s.certs = new(certSource)
		if err := s.certs.renew(time.Now()); err != nil {
			return nil, err
		}
		// GetCertificate, not Certificates: a renewed certificate reaches
		// new handshakes without a restart.
		base = &tls.Config{GetCertificate: s.certs.getCertificate, MinVersion: tls.VersionTLS13}
	}
	s.tlsConf = http3.ConfigureTLSConfig(base)

	mux := http.NewServeMux()
	mux.HandleFunc(Path, s.serveWT)
	s.h3 = &http3.Server{
		TLSConfig: s.tlsConf,
		Handler:   mux,
		Logger:    s.log,
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			return context.WithValue(ctx, connKey, c)
		},
	}
	webtransport.ConfigureHTTP3Server(s.h3)
	s.wts = &webtransport.Server{
		H3: s.h3,
		// serveWT checks origins itself, to answer 403.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return s, nil
}

func quicConfig() *quic.Config {
	return &quic.Config{
		// webtransport-go v0.13.0 refuses connections without both.
		EnableDatagrams:                  true,
		EnableStreamResetPartialDelivery: true,
		KeepAlivePeriod:                  keepAlivePeriod,
		MaxIncomingStreams:               maxIncomingStreams,
		MaxIncomingUniStreams:            maxIncomingUniStreams,
		MaxStreamReceiveWindow:           maxStreamReceiveWindow,
		MaxConnectionReceiveWindow:       maxConnectionReceiveWindow,
	}
}

// Start listens on Config.Addr and serves in the background until Close.
// ctx bounds only the setting up of the socket.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return transport.ErrClosed
	}
	if s.started {
		return errors.New("topicast: webtransport: server already started")
	}
	var lc net.ListenConfig
	pconn, err := lc.ListenPacket(ctx, "udp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("topicast: webtransport: listen: %w", err)
	}
	// Our own listener rather than wts.ListenAndServe: Start returns with
	// the port bound, connections are joined on Close, and their errors
	// go to our logger.
	ln, err := quic.ListenEarly(pconn, s.tlsConf, quicConfig())
	if err != nil {
		_ = pconn.Close() // the listen error is the one to report
		return fmt.Errorf("topicast: webtransport: listen: %w", err)
	}
	s.started, s.pconn, s.ln = true, pconn, ln
	s.wg.Go(s.acceptLoop)
	if s.certs != nil {
		s.wg.Go(s.renewLoop)
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "webtransport listening", slog.String("url", s.urlLocked()))
	return nil
}

// ListenAndServe starts the server and serves until ctx is done, then
// closes it.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// Addr returns the UDP address the server listens on (with the actual
// port when Config.Addr had port 0), or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pconn == nil {
		return nil
	}
	return s.pconn.LocalAddr()
}

// URL returns the URL clients open, such as https://127.0.0.1:4433/wt, or
// "" before Start. An unspecified listen address is reported as 127.0.0.1.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.urlLocked()
}

// urlLocked is URL; s.mu must be held.
func (s *Server) urlLocked() string {
	if s.pconn == nil {
		return ""
	}
	a, ok := s.pconn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return ""
	}
	host := "127.0.0.1"
	if !a.IP.IsUnspecified() {
		host = a.IP.String()
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(a.Port)) + Path
}

// CertHash returns the lower-case hex SHA-256 of the development
// certificate now served, or "" when Config.TLSConfig was set. It changes
// when the certificate is renewed.
func (s *Server) CertHash() string {
	if s.certs == nil {
		return ""
	}
	return s.certs.cur.Load().hash
}

// Close closes every session with 1001 and waits up to 2 s for the closes
// to go out and the clients to close their connections; then it closes the
// remaining connections and the socket, and waits for the goroutines of the
// server and its handlers to return. (A few goroutines of quic-go's HTTP/3
// layer end on their own just after their connection has closed.) Calls
// after the first return its result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	s.mu.Lock()
	s.closed = true
	live := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		live = append(live, ss)
	}
	for _, cs := range s.conns {
		cs.idle.Stop()
	}
	s.connsGone = make(chan struct{})
	if len(s.conns) == 0 {
		close(s.connsGone)
	}
	started, ln, pconn := s.started, s.ln, s.pconn
	s.mu.Unlock()

	for _, ss := range live {
		ss.Close(transport.DisconnectShutdown)
	}
	deadline := time.NewTimer(shutdownTimeout)
	defer deadline.Stop()
	for _, ss := range live {
		select {
		case <-ss.Context().Done():
		case <-deadline.C:
		}
	}
	// A session's close travels on its CONNECT stream, and closing the
	// connection would discard it if not yet sent: give clients, which
	// close their connection when their session ends, until the deadline
	// to do so.
	if len(live) > 0 {
		select {
		case <-s.connsGone:
		case <-deadline.C:
		}
	}

	s.cancel()
	if !started {
		return nil
	}
	// wts.Close closes the connections before the socket, so that their
	// CONNECTION_CLOSE frames go out.
	err := s.wts.Close()
	if lerr := ln.Close(); lerr != nil && err == nil {
		err = lerr
	}
	if perr := pconn.Close(); perr != nil && err == nil {
		err = perr
	}
	s.wg.Wait()
	return err
}

func (s *Server) acceptLoop() {
	for {
		conn, err := s.ln.Accept(s.ctx)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.LogAttrs(s.ctx, slog.LevelError, "webtransport accept failed", slog.Any("err", err))
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = conn.CloseWithError(0, "server shutting down") // nothing to report on a connection we refuse
			continue
		}
		cs := &connState{conn: conn}
		cs.idle = time.AfterFunc(s.connIdle, func() { s.closeIdleConn(cs) })
		s.conns[conn] = cs
		s.mu.Unlock()
		s.wg.Go(func() { s.serveConn(cs) })
	}
}

func (s *Server) serveConn(cs *connState) {
	err := s.wts.ServeQUICConn(cs.conn)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.LogAttrs(s.ctx, slog.LevelDebug, "webtransport connection failed",
			slog.String("remote", cs.conn.RemoteAddr().String()), slog.Any("err", err))
	}
	// ServeQUICConn returns early on some errors with the connection open.
	_ = cs.conn.CloseWithError(0, "") // closing is all that is left to do
	s.mu.Lock()
	cs.idle.Stop()
	delete(s.conns, cs.conn)
	if s.connsGone != nil && len(s.conns) == 0 {
		close(s.connsGone)
	}
	s.mu.Unlock()
}

// closeIdleConn is the idle timer of a connection: it closes the
// connection if it still carries no session.
func (s *Server) closeIdleConn(cs *connState) {
	s.mu.Lock()
	if s.closed || cs.active > 0 || cs.gen != cs.armed {
		s.mu.Unlock()
		return
	}
	// Joined by Close: closed is false, so Close has not started waiting.
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	_ = cs.conn.CloseWithError(0, "no webtransport session") // nothing to do if it fails
}

// sessionStarted counts a session on its connection; false means the
// server is closing.
func (s *Server) sessionStarted(conn *quic.Conn) (*connState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	cs := s.conns[conn]
	if cs != nil {
		cs.active++
		cs.gen++
		cs.idle.Stop()
	}
	return cs, true
}

func (s *Server) sessionEnded(cs *connState) {
	if cs == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs.active--
	if cs.active == 0 && !s.closed {
		cs.armed = cs.gen
		cs.idle.Reset(s.connIdle)
	}
}

var sessionSeq atomic.Uint64

// serveWT upgrades a request on Path and serves the session until it ends.
// It runs on a goroutine of wts.ServeQUICConn.
func (s *Server) serveWT(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") != "" && s.cfg.CheckOrigin != nil && !s.cfg.CheckOrigin(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	sess, err := s.wts.Upgrade(w, r)
	if err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "webtransport upgrade failed",
			slog.String("remote", r.RemoteAddr), slog.Any("err", err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	conn, _ := r.Context().Value(connKey).(*quic.Conn)
	cs, ok := s.sessionStarted(conn)
	if !ok {
		_ = sess.CloseWithError(webtransport.SessionErrorCode(wire.CloseGoingAway), transport.DisconnectShutdown.Reason) // returns nil
		return
	}
	defer s.sessionEnded(cs)
	s.serveSession(r, sess)
}

// serveSession waits for the client's stream, hands the session to Accept
// and reads until the session ends.
func (s *Server) serveSession(r *http.Request, sess *webtransport.Session) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.StreamTimeout)
	str, err := sess.AcceptStream(ctx)
	cancel()
	if err != nil {
		switch {
		case s.ctx.Err() != nil:
			_ = sess.CloseWithError(webtransport.SessionErrorCode(wire.CloseGoingAway), transport.DisconnectShutdown.Reason) // returns nil
		case ctx.Err() != nil:
			_ = sess.CloseWithError(webtransport.SessionErrorCode(wire.CloseProtocolError), "no stream opened in time") // returns nil
		}
		// Otherwise the client closed the session: nothing to answer.
		return
	}
	id := "wt-" + strconv.FormatUint(sessionSeq.Add(1), 10)
	ss := &session{
		sess:    sess,
		str:     str,
		timeout: s.cfg.WriteTimeout,
		log:     s.log.With(slog.String("conn_id", id)),
		info: transport.SessionInfo{
			ID:         id,
			Transport:  "wt",
			RemoteAddr: r.RemoteAddr,
			Token:      r.URL.Query().Get("token"),
			Origin:     r.Header.Get("Origin"),
		},
	}
	ss.dgLimit.Store(MaxDatagramSize)
	ss.Init(ss, transport.OutboundConfig{MaxPendingBytes: s.cfg.MaxPendingBytes, Keepalive: s.cfg.Keepalive,
		NodeState: s.cfg.NodeState})

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ss.Close(transport.DisconnectShutdown)
		ss.Wait()
		return
	}
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()

	var extra sync.WaitGroup
	defer func() {
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
		ss.Wait()
		ss.waitDatagrams()
		extra.Wait()
	}()
	defer func() {
		// http3 recovers a handler's panic: end the session first, or
		// its goroutines would outlive it.
		if p := recover(); p != nil {
			ss.Fail(fmt.Errorf("topicast: webtransport: handler panicked: %v", p))
			panic(p)
		}
	}()
	extra.Go(ss.rejectExtraStreams)
	handler := s.cfg.Accept(ss)
	cause := ss.readLoop(handler, s.cfg.MaxMessage+frameSlack)
	handler.HandleClosed(cause)
}
