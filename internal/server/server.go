package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/metrics"
	"github.com/topicast/topicast/internal/tlsreload"
	jsclient "github.com/topicast/topicast/sdk/js"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/auth"
	"github.com/topicast/topicast/transport/grpcapi"
	"github.com/topicast/topicast/transport/httpapi"
	"github.com/topicast/topicast/transport/poll"
	"github.com/topicast/topicast/transport/sse"
	"github.com/topicast/topicast/transport/webrtc"
	"github.com/topicast/topicast/transport/websocket"
	"github.com/topicast/topicast/transport/webtransport"
)

//go:embed web
var webFS embed.FS

// DefaultDrainTimeout bounds Close when the config leaves it zero.
const DefaultDrainTimeout = 10 * time.Second

// Config configures a Server. Zero values mean the defaults of the packages
// each field is handed to.
type Config struct {
	// HTTPAddr is the HTTP listen address; "127.0.0.1:0" picks a free port.
	HTTPAddr string
	// Node configures the cluster node.
	Node cluster.Config
	// MaxQueue bounds each client's outbound queue in bytes.
	MaxQueue int
	// MaxBacklog is the delivery backlog in bytes above which HTTP publishes
	// wait (httpapi.Config.MaxBacklog).
	MaxBacklog int64
	// WriteTimeout bounds one write to a client.
	WriteTimeout time.Duration
	// Keepalive configures heartbeats.
	Keepalive transport.KeepaliveConfig
	// APIKeys guard POST /v1/publish when set.
	APIKeys []string
	// PublishRate bounds POST /v1/publish in messages per second per API
	// key (all publishers share one budget without keys); over it the
	// answer is 429 with Retry-After. Zero means
	// httpapi.DefaultPublishRate; negative means no limit.
	PublishRate float64
	// PublishBurst is how many messages a key may publish at once. Zero
	// means httpapi.DefaultPublishBurst.
	PublishBurst int
	// Guard sets the client token secret (none: open to all) and the
	// per-node and per-connection limits of WebSocket and WebTransport
	// clients; zero values mean the defaults of actors.GuardConfig.
	Guard actors.GuardConfig
	// AllowedOrigins are browser origins allowed besides the server's own
	// and localhost.
	AllowedOrigins []string
	// WTAddr is the UDP address of WebTransport (HTTP/3); empty disables it.
	WTAddr string
	// WebRTCUDPAddr is the UDP address every WebRTC peer connection shares;
	// empty disables WebRTC (POST /v1/webrtc answers 404).
	WebRTCUDPAddr string
	// WebRTCICEServers are the STUN and TURN URLs WebRTC clients should
	// use, reported by /v1/info.
	WebRTCICEServers []string
	// WebRTCPublicIPs replace the address of the server's WebRTC
	// candidates behind a 1:1 NAT.
	WebRTCPublicIPs []string
	// TLS serves the certificate of --tls-cert and --tls-key, reloaded
	// while the server runs, on the HTTP listener (HTTPS with HTTP/2) and
	// on WebTransport. Nil means plain HTTP, and a development certificate
	// for WebTransport whose hash /v1/info reports: it names only loopback
	// addresses, and browsers accept it only pinned by that hash.
	TLS *tlsreload.Reloader
	// DrainTimeout bounds Close. Zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// DisableGRPC turns off the gRPC API (topicast.v1.Publisher, served
	// under /topicast.v1.Publisher/ on the HTTP port, and the unencrypted
	// HTTP/2 that gRPC needs there).
	DisableGRPC bool
	// StatsInterval is how often the node publishes its stats to
	// StatsTopic. Zero means DefaultStatsInterval; negative, never.
	StatsInterval time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Server is a running node with its listeners.
type Server struct {
	cfg    Config
	logger *slog.Logger
	node   *cluster.Node
	guard  *actors.Guard
	ka     *transport.Keepalive
	http   *http.Server
	wt     *webtransport.Server
	rtc    *webrtc.Server
	ws     *websocket.Handler
	ln     net.Listener
	served chan error

	metrics *metrics.Metrics
	stats   *statsPublisher // nil when off
	// stopTLS ends the goroutine that watches the certificate files, and
	// tlsDone is closed when it has; both nil without Config.TLS.
	stopTLS context.CancelFunc
	tlsDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start starts the node and its listeners and returns once they accept
// clients.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	s := &Server{cfg: cfg.withDefaults(), served: make(chan error, 1)}
	s.logger = s.cfg.Logger
	if err := s.startNode(ctx); err != nil {
		return nil, err
	}
	w := s.sessionWiring()
	if err := s.startWebTransport(ctx, w); err != nil {
		s.abort()
		return nil, err
	}
	if err := s.startWebRTC(w); err != nil {
		s.abort()
		return nil, err
	}
	mux, err := s.routes(w)
	if err != nil {
		s.abort()
		return nil, err
	}
	s.serveHTTP(mux)
	s.watchTLS()
	s.startStats()
	s.logSecurity()
	s.logListening()
	return s, nil
}

// withDefaults returns c with the defaults of Start applied: a logger shared
// with the node and the guard, and the drain timeout.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Guard.Logger == nil {
		c.Guard.Logger = c.Logger
	}
	c.Node.Logger = c.Logger
	return c
}

// startNode makes the cluster node, listens on the HTTP address and starts
// the node. The node's OnConnClosed also counts and logs each closed
// connection in s.metrics (made by sessionWiring, before any session).
func (s *Server) startNode(ctx context.Context) error {
	nodeCfg := s.cfg.Node
	onClosed := nodeCfg.OnConnClosed
	nodeCfg.OnConnClosed = func(info *transport.SessionInfo, cause error) {
		connClosed(s.logger, s.metrics, info, cause)
		if onClosed != nil {
			onClosed(info, cause)
		}
	}
	node, err := cluster.New(nodeCfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.HTTPAddr, err)
	}
	if err := node.Start(ctx); err != nil {
		_ = ln.Close() // the start error is the one to report
		return err
	}
	s.cfg.Node, s.node, s.ln = nodeCfg, node, ln
	return nil
}

// wiring is what every adapter of the node is given.
type wiring struct {
	// accept counts, guards and starts a session's connection actor.
	accept transport.AcceptFunc
	// state is the node's transport state, shared by its sessions; the
	// publish backpressure and the metrics read it.
	state      *transport.NodeState
	origins    *transport.OriginPolicy
	maxMessage int
}

// sessionWiring makes the metrics, the guard and the keepalive of the
// node's sessions, and the accept function that the adapters share.
func (s *Server) sessionWiring() wiring {
	state := s.node.NodeState()
	mc := metrics.Config{Node: s.node, NodeState: state, Version: cluster.Version}
	if s.cfg.TLS != nil { // a nil *Reloader in the interface would not be nil
		mc.TLS = s.cfg.TLS
	}
	s.metrics = metrics.New(mc)
	s.guard = actors.NewGuard(s.cfg.Guard)
	s.ka = transport.NewKeepalive(s.cfg.Keepalive)
	return wiring{
		accept:     s.guard.Wrap(countAccept(s.logger, s.metrics, s.node.Accept)),
		state:      state,
		origins:    transport.NewOriginPolicy(s.cfg.AllowedOrigins),
		maxMessage: s.cfg.Node.Topic.Namespaces.MaxMessage(cmp.Or(s.cfg.Node.MaxMessage, wire.DefaultMaxMessage)),
	}
}

// startWebTransport starts the HTTP/3 server of WebTransport, if WTAddr is
// set.
func (s *Server) startWebTransport(ctx context.Context, w wiring) error {
	if s.cfg.WTAddr == "" {
		return nil
	}
	var tlsConf *tls.Config // nil: the development certificate
	if s.cfg.TLS != nil {
		// The same reloader as HTTPS: http3 clones this configuration but
		// keeps its GetCertificate, so a reload reaches QUIC handshakes too.
		tlsConf = s.cfg.TLS.Config()
		tlsConf.MinVersion = tls.VersionTLS13
	}
	wt, err := webtransport.New(webtransport.Config{
		Addr:            s.cfg.WTAddr,
		Accept:          w.accept,
		CheckOrigin:     w.origins.Allow,
		TLSConfig:       tlsConf,
		MaxMessage:      w.maxMessage,
		MaxPendingBytes: s.cfg.MaxQueue,
		WriteTimeout:    s.cfg.WriteTimeout,
		Keepalive:       s.ka,
		NodeState:       w.state,
		Logger:          s.logger,
	})
	if err == nil {
		s.wt = wt
		err = wt.Start(ctx)
	}
	if err != nil {
		return fmt.Errorf("webtransport on %s: %w", s.cfg.WTAddr, err)
	}
	return nil
}

// startWebRTC listens on the UDP address of WebRTC, if WebRTCUDPAddr is
// set; its offers come to POST /v1/webrtc.
func (s *Server) startWebRTC(w wiring) error {
	if s.cfg.WebRTCUDPAddr == "" {
		return nil
	}
	var authorize func(*http.Request) error
	if v := s.guard.Verifier(); v != nil {
		authorize = func(r *http.Request) error { return v.AuthorizeRequest(r, nil) }
	}
	rtc, err := webrtc.New(webrtc.Config{
		UDPAddr:         s.cfg.WebRTCUDPAddr,
		Accept:          w.accept,
		CheckOrigin:     w.origins.Allow,
		TokensRequired:  s.guard.TokensRequired(),
		Authorize:       authorize,
		Conns:           s.guard.Conns,
		MaxConns:        s.cfg.Guard.MaxConns,
		PublicIPs:       s.cfg.WebRTCPublicIPs,
		ICEServers:      s.cfg.WebRTCICEServers,
		MaxMessage:      w.maxMessage,
		MaxPendingBytes: s.cfg.MaxQueue,
		WriteTimeout:    s.cfg.WriteTimeout,
		Keepalive:       s.ka,
		NodeState:       w.state,
		Logger:          s.logger,
	})
	if err != nil {
		return fmt.Errorf("webrtc on %s: %w", s.cfg.WebRTCUDPAddr, err)
	}
	s.rtc = rtc
	return nil
}

// routes returns the mux of the HTTP port: WebSocket, the HTTP API, SSE,
// polling, the web client, metrics and, when asked for, pprof.
func (s *Server) routes(w wiring) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	s.ws = websocket.NewHandler(websocket.Config{
		Accept:          w.accept,
		CheckOrigin:     w.origins.Allow,
		MaxMessage:      w.maxMessage,
		MaxPendingBytes: s.cfg.MaxQueue,
		WriteTimeout:    s.cfg.WriteTimeout,
		Keepalive:       s.ka,
		NodeState:       w.state,
		Logger:          s.logger,
	})
	mux.Handle("GET /ws", s.ws)
	api := s.httpAPI(w)
	api.Register(mux)
	if s.rtc != nil {
		mux.Handle("POST "+webrtc.Path, api.CORS(s.rtc))
	}
	s.routeHTTPClients(mux, api, w)
	s.routeGRPC(mux, api, w)
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, err
	}
	mux.Handle("GET /", http.FileServerFS(web))
	mux.Handle("GET /topicast.js", api.CORS(jsclient.Handler()))
	mux.Handle("GET /topicast.d.ts", api.CORS(jsclient.DeclarationsHandler()))
	mux.Handle("GET /metrics", s.metrics.Handler())
	s.routePprof(mux)
	return mux, nil
}

// httpAPI returns the publish, history and info endpoints.
func (s *Server) httpAPI(w wiring) *httpapi.API {
	return httpapi.New(httpapi.Config{
		Backend:         s.node,
		Info:            s.Info,
		APIKeys:         s.cfg.APIKeys,
		AuthorizeClient: s.guard.Verifier().AuthorizeRequest,
		PublishLimiter:  publishLimiter(s.cfg.PublishRate, s.cfg.PublishBurst),
		Origins:         w.origins,
		MaxMessage:      w.maxMessage,
		MaxBacklog:      s.cfg.MaxBacklog,
		NodeState:       w.state,
		Logger:          s.logger,
	})
}

// routeHTTPClients adds the clients that stay on HTTP/1.1 and HTTP/2: SSE
// and polling, whose tokens the guard's verifier checks.
func (s *Server) routeHTTPClients(mux *http.ServeMux, api *httpapi.API, w wiring) {
	authorize := s.guard.Verifier().AuthorizeRequest
	mux.Handle("GET /v1/sse", api.CORS(sse.NewHandler(sse.Config{
		Accept:          w.accept,
		Authorize:       authorize,
		CheckOrigin:     w.origins.Allow,
		MaxPendingBytes: s.cfg.MaxQueue,
		WriteTimeout:    s.cfg.WriteTimeout,
		NodeState:       w.state,
		Logger:          s.logger,
	})))
	mux.Handle("GET /v1/poll", api.CORS(poll.NewHandler(poll.Config{
		Accept:          w.accept,
		Authorize:       authorize,
		History:         s.node,
		CheckOrigin:     w.origins.Allow,
		MaxPendingBytes: s.cfg.MaxQueue,
		Logger:          s.logger,
	})))
}

// routeGRPC mounts the gRPC API, unless it is off. It publishes through
// api, the node's one publish path, so its keys, limits and answers are
// those of POST /v1/publish.
func (s *Server) routeGRPC(mux *http.ServeMux, api *httpapi.API, w wiring) {
	if s.cfg.DisableGRPC {
		return
	}
	var authorizeToken func(string, []string) error
	if v := s.guard.Verifier(); v != nil {
		authorizeToken = v.AuthorizeToken
	}
	path, h := grpcapi.New(grpcapi.Config{
		Publisher:       api,
		History:         s.node,
		Accept:          w.accept,
		AuthorizeToken:  authorizeToken,
		MaxMessage:      w.maxMessage,
		MaxPendingBytes: s.cfg.MaxQueue,
		WriteTimeout:    s.cfg.WriteTimeout,
		NodeState:       w.state,
		Logger:          s.logger,
	}).Handler()
	// Every protocol of the service calls with POST; a method-less pattern
	// would conflict with "GET /".
	mux.Handle("POST "+path, h)
}

// routePprof serves profiles when TOPICAST_DEBUG_PPROF is set: they are for
// performance work and expose internals on the public port.
func (s *Server) routePprof(mux *http.ServeMux) {
	if os.Getenv("TOPICAST_DEBUG_PPROF") == "" {
		return
	}
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	// The execution trace shows what a CPU profile cannot: how long a
	// goroutine waited to run, and the collector's pauses.
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	s.logger.Warn("TOPICAST_DEBUG_PPROF is set: /debug/pprof/ is served on the HTTP port")
}

// serveHTTP serves mux on the HTTP listener in a goroutine that Close
// joins through s.served: HTTPS with Config.TLS, plain HTTP without.
func (s *Server) serveHTTP(mux *http.ServeMux) {
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
	}
	if s.cfg.TLS == nil {
		if !s.cfg.DisableGRPC {
			// gRPC clients speak HTTP/2 from the first byte (prior
			// knowledge) on a cleartext port. Other requests still come as
			// HTTP/1.1, which WebSocket upgrades and browsers' SSE need.
			var p http.Protocols
			p.SetHTTP1(true)
			p.SetHTTP2(true)
			p.SetUnencryptedHTTP2(true)
			s.http.Protocols = &p
		}
		go func() { s.served <- s.http.Serve(s.ln) }()
		return
	}
	// HTTP/2 for the API, SSE, polling and the page; WebSocket needs
	// http/1.1 offered too: the adapter upgrades by hijacking an HTTP/1.1
	// connection, and browsers open one for it as long as the server does
	// not announce WebSocket over HTTP/2 (RFC 8441), which net/http leaves
	// off unless GODEBUG=http2xconnect=1 (golang/go#71128).
	conf := s.cfg.TLS.Config()
	conf.NextProtos = []string{"h2", "http/1.1"}
	s.http.TLSConfig = conf
	s.http.Protocols = new(http.Protocols)
	s.http.Protocols.SetHTTP1(true)
	s.http.Protocols.SetHTTP2(true)
	// The certificate comes from conf's GetCertificate, hence no files.
	go func() { s.served <- s.http.ServeTLS(s.ln, "", "") }()
}

// watchTLS reloads the certificate when its files change, until Close.
func (s *Server) watchTLS() {
	if s.cfg.TLS == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopTLS, s.tlsDone = cancel, make(chan struct{})
	go func() {
		defer close(s.tlsDone)
		// Run returns only the cause of ctx's end: Close asked for it.
		_ = s.cfg.TLS.Run(ctx)
	}()
}

// startStats starts publishing the node's stats, unless StatsInterval is
// negative.
func (s *Server) startStats() {
	if s.cfg.StatsInterval >= 0 {
		s.stats = startStats(s.node, s.metrics, cmp.Or(s.cfg.StatsInterval, DefaultStatsInterval), s.logger)
	}
}

// logSecurity tells the operator who may publish, subscribe and connect
// from a browser.
func (s *Server) logSecurity() {
	cfg, logger := s.cfg, s.logger
	if len(cfg.APIKeys) == 0 {
		logger.Warn("no --api-key: anyone who reaches the HTTP port may publish")
	}
	if s.guard.TokensRequired() {
		logger.Info("clients need a token (JWT, HS256, signed with --token-secret)")
		if len(cfg.Guard.TokenSecret) < 32 {
			logger.Warn("--token-secret is shorter than 32 bytes: tokens signed with it can be forged by guessing it")
		}
	} else {
		logger.Warn("no --token-secret: the server is open to every client, who may subscribe and publish to every topic")
	}
	if len(cfg.AllowedOrigins) == 0 {
		logger.Info("browsers are accepted from the server's own origin and localhost only; add --allowed-origin for others")
	} else {
		logger.Info("browsers are accepted from the server's own origin, localhost and the allowed origins",
			slog.Any("allowed_origins", cfg.AllowedOrigins))
	}
}

// logListening logs the URLs the server answers on.
func (s *Server) logListening() {
	addr := s.ln.Addr().String()
	attrs := []any{slog.String("http", "http://"+addr), slog.String("ws", "ws://"+addr+"/ws")}
	if s.cfg.TLS != nil {
		leaf := s.cfg.TLS.Certificate().Leaf
		attrs = []any{slog.String("http", "https://"+addr), slog.String("ws", "wss://"+addr+"/ws"),
			slog.String("cert_subject", leaf.Subject.String()), slog.Time("cert_not_after", leaf.NotAfter)}
	} else if !isLoopback(addr) {
		s.logger.Warn("plain HTTP on a non-loopback address: tokens, API keys and messages cross the network unencrypted; give --tls-cert and --tls-key or put a TLS proxy in front")
	}
	if !s.cfg.DisableGRPC {
		scheme := "h2c://"
		if s.cfg.TLS != nil {
			scheme = "https://"
		}
		attrs = append(attrs, slog.String("grpc", scheme+addr+"/topicast.v1.Publisher/"))
	}
	if s.rtc != nil {
		attrs = append(attrs, slog.String("webrtc_udp", s.rtc.UDPAddr().String()))
	}
	if s.wt != nil {
		attrs = append(attrs, slog.String("wt", s.wt.URL()))
		if h := s.wt.CertHash(); h != "" {
			attrs = append(attrs, slog.String("cert_hash", h))
		}
	}
	s.logger.Info("listening", append(attrs, slog.String("node", s.node.Name()))...)
}

// isLoopback reports whether addr (host:port) listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// publishLimiter returns the limiter of POST /v1/publish for rate and burst
// (zero: the httpapi defaults), nil when rate is negative.
func publishLimiter(rate float64, burst int) httpapi.PublishLimiter {
	rate = cmp.Or(rate, httpapi.DefaultPublishRate)
	burst = cmp.Or(burst, httpapi.DefaultPublishBurst)
	if rate < 0 {
		return nil // a nil *auth.Limiter in the interface would not be nil
	}
	return auth.NewLimiter(rate, burst)
}

// abort undoes a Start that failed half-way.
func (s *Server) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.node.Close(ctx) // the start error is the one to report
	if s.ws != nil {
		_ = s.ws.Close()
	}
	if s.rtc != nil {
		_ = s.rtc.Close()
	}
	s.ka.Close()
	_ = s.ln.Close()
}

// Addr returns the HTTP address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Node returns the cluster node.
func (s *Server) Node() *cluster.Node { return s.node }

// Guard returns the guard of the node's WebSocket and WebTransport clients.
func (s *Server) Guard() *actors.Guard { return s.guard }

// Info is the body of GET /v1/info.
type Info struct {
	Version      string  `json:"version"`
	Node         string  `json:"node"`
	WebTransport *WTInfo `json:"webtransport"`
	// WebRTC is nil when WebRTC is off.
	WebRTC *WebRTCInfo `json:"webrtc,omitempty"`
	// Namespaces in force, in order (the first whose pattern matches a
	// topic decides), with every option's effective value.
	Namespaces []NamespaceInfo `json:"namespaces"`
}

// NamespaceInfo is one namespace of Info.
type NamespaceInfo struct {
	Pattern       string `json:"pattern"`
	HistorySize   int    `json:"history_size"`
	HistoryTTL    string `json:"history_ttl"`
	MaxMessage    int    `json:"max_message"`
	Latest        bool   `json:"latest"`
	Delta         bool   `json:"delta"`
	Datagram      bool   `json:"datagram"`
	ClientPublish bool   `json:"client_publish"`
	Presence      bool   `json:"presence"`
	JoinLeave     bool   `json:"join_leave"`
}

// namespacesInfo returns the node's namespaces with the node's settings
// in place of the options they leave unset.
func (s *Server) namespacesInfo() []NamespaceInfo {
	node := s.cfg.Node
	out := make([]NamespaceInfo, 0, len(node.Topic.Namespaces))
	is := func(b *bool) bool { return b == nil || *b }
	for _, n := range node.Topic.Namespaces {
		size := cmp.Or(n.HistorySize, node.Topic.HistorySize, actors.DefaultHistorySize)
		out = append(out, NamespaceInfo{
			Pattern:       n.Pattern,
			HistorySize:   max(size, 0),
			HistoryTTL:    cmp.Or(n.HistoryTTL, node.Topic.HistoryTTL, actors.DefaultHistoryTTL).String(),
			MaxMessage:    cmp.Or(n.MaxMessage, node.MaxMessage, wire.DefaultMaxMessage),
			Latest:        is(n.Latest),
			Delta:         is(n.Delta),
			Datagram:      is(n.Datagram),
			ClientPublish: is(n.ClientPublish),
			Presence:      n.Presence,
			JoinLeave:     n.JoinLeave,
		})
	}
	return out
}

// WTInfo tells browsers how to reach WebTransport.
type WTInfo struct {
	URL      string `json:"url"`
	CertHash string `json:"certHash,omitempty"`
}

// WebRTCInfo tells clients how to reach WebRTC.
type WebRTCInfo struct {
	// URL is where offers go, relative to the server's URL: the
	// signalling uses the HTTP server the client already reached.
	URL string `json:"url"`
	// ICEServers are the STUN and TURN URLs to give the peer connection.
	ICEServers []string `json:"iceServers"`
}

// Info returns what GET /v1/info answers.
func (s *Server) Info() any {
	info := Info{Version: cluster.Version, Node: s.node.Name(), Namespaces: s.namespacesInfo()}
	if s.wt != nil {
		info.WebTransport = &WTInfo{URL: s.wt.URL(), CertHash: s.wt.CertHash()}
	}
	if s.rtc != nil {
		info.WebRTC = &WebRTCInfo{URL: webrtc.Path, ICEServers: append([]string{}, s.rtc.ICEServers()...)}
	}
	return info
}

// WebRTCUDPAddr returns the UDP address of WebRTC, or "" when it is off.
func (s *Server) WebRTCUDPAddr() string {
	if s.rtc == nil {
		return ""
	}
	return s.rtc.UDPAddr().String()
}

// WebTransportURL returns the WebTransport URL, or "" when it is off.
func (s *Server) WebTransportURL() string {
	if s.wt == nil {
		return ""
	}
	return s.wt.URL()
}

// Close drains the node: it stops accepting, closes every client with 1001
// after what is queued for it, and stops, within the drain timeout.
// Close may be called more than once; later calls return the first one's
// result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	s.logger.Info("shutting down", slog.Duration("drain_timeout", s.cfg.DrainTimeout))
	if s.stats != nil {
		s.stats.close()
	}
	shut := make(chan error, 1)
	go func() { shut <- s.http.Shutdown(ctx) }()
	var errs []error
	if err := s.node.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.ws.Close(); err != nil {
		errs = append(errs, fmt.Errorf("websocket: %w", err))
	}
	if s.wt != nil {
		if err := s.wt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("webtransport: %w", err))
		}
	}
	if s.rtc != nil {
		if err := s.rtc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("webrtc: %w", err))
		}
	}
	s.ka.Close()
	if s.stopTLS != nil {
		s.stopTLS()
		<-s.tlsDone
	}
	if err := <-shut; err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	s.logger.Info("stopped")
	return errors.Join(errs...)
}
