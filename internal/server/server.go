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
	jsclient "github.com/topicast/topicast/sdk/js"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/httpapi"
	"github.com/topicast/topicast/transport/poll"
	"github.com/topicast/topicast/transport/sse"
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
	// WTTLS is WebTransport's certificate; nil makes a development
	// certificate whose hash /v1/info reports.
	WTTLS *tls.Config
	// DrainTimeout bounds Close. Zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
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
	ws     *websocket.Handler
	ln     net.Listener
	served chan error

	metrics *metrics.Metrics
	stats   *statsPublisher // nil when off

	closeOnce sync.Once
	closeErr  error
}

// Start starts the node and its listeners and returns once they accept
// clients.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	cfg.Node.Logger = cfg.Logger
	logger := cfg.Logger
	var mx *metrics.Metrics // made once the node exists, before any session
	onClosed := cfg.Node.OnConnClosed
	cfg.Node.OnConnClosed = func(info *transport.SessionInfo, cause error) {
		connClosed(logger, mx, info, cause)
		if onClosed != nil {
			onClosed(info, cause)
		}
	}
	node, err := cluster.New(cfg.Node)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	if err := node.Start(ctx); err != nil {
		_ = ln.Close() // the start error is the one to report
		return nil, err
	}
	if cfg.Guard.Logger == nil {
		cfg.Guard.Logger = logger
	}
	s := &Server{cfg: cfg, logger: logger, node: node, guard: actors.NewGuard(cfg.Guard), ln: ln, served: make(chan error, 1)}
	// What the node's sessions share: every adapter gets it, and the
	// publish backpressure and the metrics read it.
	state := node.NodeState()
	mx = metrics.New(metrics.Config{Node: node, NodeState: state, Version: cluster.Version})
	s.metrics = mx
	counted := countAccept(logger, mx, node.Accept)
	accept := s.guard.Wrap(counted)
	s.ka = transport.NewKeepalive(cfg.Keepalive)
	origins := transport.NewOriginPolicy(cfg.AllowedOrigins)
	maxMessage := cfg.Node.MaxMessage
	if maxMessage == 0 {
		maxMessage = cluster.DefaultMaxMessage
	}

	if cfg.WTAddr != "" {
		s.wt, err = webtransport.New(webtransport.Config{
			Addr:            cfg.WTAddr,
			Accept:          accept,
			CheckOrigin:     origins.Allow,
			TLSConfig:       cfg.WTTLS,
			MaxMessage:      maxMessage,
			MaxPendingBytes: cfg.MaxQueue,
			WriteTimeout:    cfg.WriteTimeout,
			Keepalive:       s.ka,
			NodeState:       state,
			Logger:          logger,
		})
		if err == nil {
			err = s.wt.Start(ctx)
		}
		if err != nil {
			s.abort()
			return nil, fmt.Errorf("webtransport on %s: %w", cfg.WTAddr, err)
		}
	}

	mux := http.NewServeMux()
	s.ws = websocket.NewHandler(websocket.Config{
		Accept:          accept,
		CheckOrigin:     origins.Allow,
		MaxMessage:      maxMessage,
		MaxPendingBytes: cfg.MaxQueue,
		WriteTimeout:    cfg.WriteTimeout,
		Keepalive:       s.ka,
		NodeState:       state,
		Logger:          logger,
	})
	mux.Handle("GET /ws", s.ws)
	api := httpapi.New(httpapi.Config{
		Backend:         node,
		Info:            s.Info,
		APIKeys:         cfg.APIKeys,
		AuthorizeClient: s.guard.AuthorizeHTTP,
		PublishRate:     cfg.PublishRate,
		PublishBurst:    cfg.PublishBurst,
		Origins:         origins,
		MaxMessage:      maxMessage,
		MaxBacklog:      cfg.MaxBacklog,
		NodeState:       state,
		Logger:          logger,
	})
	api.Register(mux)
	mux.Handle("GET /v1/sse", api.CORS(sse.NewHandler(sse.Config{
		Accept:          accept,
		Authorize:       s.guard.AuthorizeHTTP,
		CheckOrigin:     origins.Allow,
		MaxPendingBytes: cfg.MaxQueue,
		WriteTimeout:    cfg.WriteTimeout,
		NodeState:       state,
		Logger:          logger,
	})))
	mux.Handle("GET /v1/poll", api.CORS(poll.NewHandler(poll.Config{
		Accept:          accept,
		Authorize:       s.guard.AuthorizeHTTP,
		History:         node,
		CheckOrigin:     origins.Allow,
		MaxPendingBytes: cfg.MaxQueue,
		Logger:          logger,
	})))
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		s.abort()
		return nil, err
	}
	mux.Handle("GET /", http.FileServerFS(web))
	mux.Handle("GET /topicast.js", api.CORS(jsclient.Handler()))
	mux.Handle("GET /metrics", mx.Handler())
	if os.Getenv("TOPICAST_DEBUG_PPROF") != "" {
		// Profiles for performance work: off unless asked for, since they
		// expose internals on the public port.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		// The execution trace shows what a CPU profile cannot: how long a
		// goroutine waited to run, and the collector's pauses.
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		logger.Warn("TOPICAST_DEBUG_PPROF is set: /debug/pprof/ is served on the HTTP port")
	}

	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	go func() { s.served <- s.http.Serve(ln) }()
	if cfg.StatsInterval >= 0 {
		s.stats = startStats(node, mx, cmp.Or(cfg.StatsInterval, DefaultStatsInterval), logger)
	}

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
	addr := ln.Addr().String()
	attrs := []any{slog.String("http", "http://"+addr), slog.String("ws", "ws://"+addr+"/ws")}
	if s.wt != nil {
		attrs = append(attrs, slog.String("wt", s.wt.URL()))
		if h := s.wt.CertHash(); h != "" {
			attrs = append(attrs, slog.String("cert_hash", h))
		}
	}
	logger.Info("listening", append(attrs, slog.String("node", node.Name()))...)
	return s, nil
}

// abort undoes a Start that failed half-way.
func (s *Server) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.node.Close(ctx) // the start error is the one to report
	if s.ws != nil {
		_ = s.ws.Close()
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
}

// WTInfo tells browsers how to reach WebTransport.
type WTInfo struct {
	URL      string `json:"url"`
	CertHash string `json:"certHash,omitempty"`
}

// Info returns what GET /v1/info answers.
func (s *Server) Info() any {
	info := Info{Version: cluster.Version, Node: s.node.Name()}
	if s.wt != nil {
		info.WebTransport = &WTInfo{URL: s.wt.URL(), CertHash: s.wt.CertHash()}
	}
	return info
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
	s.ka.Close()
	if err := <-shut; err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	s.logger.Info("stopped")
	return errors.Join(errs...)
}
