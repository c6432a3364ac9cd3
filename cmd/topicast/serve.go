package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/httpapi"
	"github.com/topicast/topicast/transport/websocket"
)

//go:embed web
var webFS embed.FS

// Main is the serve command: flags, wiring and lifetime of one node.
type Main struct {
	stdout, stderr io.Writer

	// Flags.
	httpAddr      string
	clusterAddr   string
	nodeName      string
	historySize   int
	historyTTL    time.Duration
	maxMessage    int
	maxQueue      int
	apiKeys       stringList
	origins       stringList
	logFormat     string
	logLevel      string
	drainTimeout  time.Duration
	writeTimeout  time.Duration
	idleTopicTime time.Duration

	// Running parts.
	logger *slog.Logger
	node   *cluster.Node
	ka     *transport.Keepalive
	server *http.Server
	ln     net.Listener
	served chan error
}

// NewMain returns a serve command writing to stdout and stderr.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{stdout: stdout, stderr: stderr}
}

// ParseFlags reads the serve flags.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("topicast serve", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	fs.StringVar(&m.httpAddr, "http", "127.0.0.1:8080", "HTTP listen address (WebSocket, publish API, pages)")
	fs.StringVar(&m.clusterAddr, "cluster-addr", cluster.DefaultClusterAddr, "host:port of the node's cluster (protoactor remote) endpoint")
	fs.StringVar(&m.nodeName, "node", "", "node name (default: made from the cluster address)")
	fs.IntVar(&m.historySize, "history-size", actors.DefaultHistorySize, "messages kept per topic for recovery")
	fs.DurationVar(&m.historyTTL, "history-ttl", actors.DefaultHistoryTTL, "how long a message is kept for recovery")
	fs.IntVar(&m.maxMessage, "max-message", cluster.DefaultMaxMessage, "largest message data in bytes")
	fs.IntVar(&m.maxQueue, "max-queue", transport.DefaultMaxPendingBytes, "bytes queued for a client before it is closed as a slow consumer (4008)")
	fs.Var(&m.apiKeys, "api-key", "API key that POST /v1/publish requires (repeatable)")
	fs.Var(&m.origins, "allowed-origin", "browser origin allowed besides the server's own and localhost (repeatable)")
	fs.StringVar(&m.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&m.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&m.drainTimeout, "drain-timeout", 10*time.Second, "how long shutdown waits for clients to be closed")
	fs.DurationVar(&m.writeTimeout, "write-timeout", websocket.DefaultWriteTimeout, "bound of one write to a client; hitting it closes the client (4008)")
	fs.DurationVar(&m.idleTopicTime, "topic-idle-check", actors.DefaultIdleCheck, "how long a topic without traffic waits before it considers stopping")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	if m.historySize < 0 || m.maxMessage <= 0 || m.maxQueue <= 0 {
		return errors.New("--history-size must be >= 0, --max-message and --max-queue > 0")
	}
	if m.historySize == 0 {
		m.historySize = -1 // zero means "keep none" on the command line
	}
	return nil
}

func (m *Main) newLogger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(m.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch m.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(m.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(m.stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format must be text or json, got %q", m.logFormat)
	}
}

// Run starts the node and the HTTP server, and returns once they accept
// clients.
func (m *Main) Run(ctx context.Context) error {
	logger, err := m.newLogger()
	if err != nil {
		return err
	}
	m.logger = logger
	node, err := cluster.New(cluster.Config{
		Name:        m.nodeName,
		ClusterAddr: m.clusterAddr,
		Topic: actors.TopicConfig{
			HistorySize: m.historySize,
			HistoryTTL:  m.historyTTL,
			IdleCheck:   m.idleTopicTime,
		},
		MaxMessage: m.maxMessage,
		OnConnClosed: func(info *transport.SessionInfo, cause error) {
			attrs := []slog.Attr{slog.String("conn_id", info.ID), slog.String("transport", info.Transport)}
			if d, ok := transport.AsDisconnect(cause); ok {
				attrs = append(attrs, slog.Int("code", int(d.Code)), slog.String("reason", d.Reason))
			} else if cause != nil {
				attrs = append(attrs, slog.String("reason", cause.Error()))
			}
			logger.LogAttrs(context.Background(), slog.LevelDebug, "connection closed", attrs...)
		},
		Logger: logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", m.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.httpAddr, err)
	}
	if err := node.Start(ctx); err != nil {
		_ = ln.Close()
		return err
	}
	m.node, m.ln = node, ln
	m.ka = transport.NewKeepalive(transport.KeepaliveConfig{})
	origins := transport.NewOriginPolicy(m.origins)

	mux := http.NewServeMux()
	mux.Handle("GET /ws", websocket.NewHandler(websocket.Config{
		Accept:          node.Accept,
		CheckOrigin:     origins.Allow,
		MaxMessage:      m.maxMessage,
		MaxPendingBytes: m.maxQueue,
		WriteTimeout:    m.writeTimeout,
		Keepalive:       m.ka,
		Logger:          logger,
	}))
	api := httpapi.New(httpapi.Config{
		Backend:    node,
		Info:       m.info,
		APIKeys:    m.apiKeys,
		Origins:    origins,
		MaxMessage: m.maxMessage,
		Logger:     logger,
	})
	api.Register(mux)
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		return err
	}
	mux.Handle("GET /", http.FileServerFS(web))

	m.server = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	m.served = make(chan error, 1)
	go func() { m.served <- m.server.Serve(ln) }()

	addr := ln.Addr().String()
	if len(m.apiKeys) == 0 {
		logger.Warn("no --api-key: anyone who reaches the HTTP port may publish")
	}
	logger.Warn("no --token-secret: the server is open to every client")
	if len(m.origins) == 0 {
		logger.Info("browsers are accepted from the server's own origin and localhost only; add --allowed-origin for others")
	}
	logger.Info("listening", slog.String("http", "http://"+addr), slog.String("ws", "ws://"+addr+"/ws"),
		slog.String("node", node.Name()))
	return nil
}

// Addr returns the HTTP address the server listens on.
func (m *Main) Addr() string { return m.ln.Addr().String() }

type info struct {
	Version      string  `json:"version"`
	Node         string  `json:"node"`
	WebTransport *wtInfo `json:"webtransport"`
}

type wtInfo struct {
	URL      string `json:"url"`
	CertHash string `json:"certHash,omitempty"`
}

func (m *Main) info() any {
	return info{Version: cluster.Version, Node: m.node.Name()}
}

// Close drains the node: it stops accepting, closes every client with 1001
// after what is queued for it, and stops, within --drain-timeout.
func (m *Main) Close() error {
	if m.server == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.drainTimeout)
	defer cancel()
	m.logger.Info("shutting down", slog.Duration("drain_timeout", m.drainTimeout))
	shut := make(chan error, 1)
	go func() { shut <- m.server.Shutdown(ctx) }()
	var errs []error
	if err := m.node.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	m.ka.Close()
	if err := <-shut; err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := <-m.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		m.logger.Warn("shutdown incomplete", slog.Any("err", errors.Join(errs...)))
	}
	m.logger.Info("stopped")
	return nil
}
