package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/tlsreload"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/httpapi"
	"github.com/topicast/topicast/transport/webrtc"
	"github.com/topicast/topicast/transport/websocket"
	"github.com/topicast/topicast/transport/webtransport"
)

// Main is the serve command: flags, wiring and lifetime of one node.
type Main struct {
	stdout, stderr io.Writer

	cfg       server.Config
	gc        gcFlags
	logFormat string
	logLevel  string
	onEvicted string
	// fs holds the flags once parsed (for config check).
	fs *flag.FlagSet
	// lookupEnv reads the environment (TOPICAST_* variables); tests swap it.
	lookupEnv func(string) (string, bool)

	srv *server.Server
}

// NewMain returns a serve command writing to stdout and stderr.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{stdout: stdout, stderr: stderr, lookupEnv: os.LookupEnv}
}

// ParseFlags reads the serve flags into the server's config.
func (m *Main) ParseFlags(args []string) error {
	c := &m.cfg
	var apiKeys, origins, iceServers, publicIPs stringList
	var wt, rtc, tlsCert, tlsKey, grpc string
	var tokenSecret, tokenSecretFile string
	fs := flag.NewFlagSet("topicast serve", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	m.fs = fs
	var configPath string
	fs.StringVar(&configPath, "config", "", "YAML file of settings: flag names without dashes as keys (the command line and TOPICAST_<FLAG> environment variables override it)")
	fs.StringVar(&c.HTTPAddr, "http", "127.0.0.1:8080", "HTTP listen address (WebSocket, publish API, page)")
	fs.StringVar(&c.Node.ClusterAddr, "cluster-addr", cluster.DefaultClusterAddr, "host:port of the node's cluster (protoactor remote) endpoint")
	fs.StringVar(&c.Node.Name, "node", "", "node name (default: made from the cluster address)")
	var peers, etcdURLs string
	fs.StringVar(&peers, "peers", "", "static cluster: members' cluster addresses host:port,... (each also listens on its cluster port + 1 for membership checks)")
	fs.StringVar(&etcdURLs, "etcd", "", "dynamic cluster: etcd endpoints http://host:port,...")
	fs.StringVar(&c.Node.Redis, "redis", "", "durable topic history in Redis (redis://host:port/db): topics survive a node's death")
	fs.IntVar(&c.Node.Topic.HistorySize, "history-size", actors.DefaultHistorySize, "messages kept per topic for recovery (0: none)")
	fs.DurationVar(&c.Node.Topic.HistoryTTL, "history-ttl", actors.DefaultHistoryTTL, "how long a message is kept for recovery")
	fs.DurationVar(&c.Node.Topic.IdleCheck, "topic-idle-check", actors.DefaultIdleCheck, "how long a topic without traffic waits before it considers stopping")
	fs.IntVar(&c.Node.MaxMessage, "max-message", wire.DefaultMaxMessage, "largest message data in bytes")
	fs.IntVar(&c.MaxQueue, "max-queue", transport.DefaultMaxPendingBytes, "bytes queued for a client before it is closed as a slow consumer (4008)")
	fs.Int64Var(&c.MaxBacklog, "max-backlog", httpapi.DefaultMaxBacklog, "bytes queued for all clients above which POST /v1/publish waits (backpressure; -1: never)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", websocket.DefaultWriteTimeout, "bound of one write to a client; hitting it closes the client (4008)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", server.DefaultDrainTimeout, "how long shutdown waits for clients to be closed")
	fs.StringVar(&wt, "wt", webtransport.DefaultAddr, `WebTransport (HTTP/3, UDP) listen address, or "off"`)
	fs.StringVar(&rtc, "webrtc", "on", "WebRTC data channels for clients (offers on POST /v1/webrtc, one UDP port for every peer): on or off")
	fs.StringVar(&c.WebRTCUDPAddr, "webrtc-udp", webrtc.DefaultUDPAddr, "UDP listen address that every WebRTC peer connection shares (the one port to open for WebRTC)")
	fs.Var(&iceServers, "webrtc-ice-server", "STUN or TURN URL that WebRTC clients use behind NAT, reported by /v1/info (repeatable; none is needed on loopback or a LAN)")
	fs.Var(&publicIPs, "webrtc-public-ip", "public IP address that replaces the host's in WebRTC candidates, behind a 1:1 NAT (repeatable)")
	fs.StringVar(&grpc, "grpc", "on", "gRPC API for services (topicast.v1.Publisher: gRPC, gRPC-Web and Connect) on the HTTP port, over HTTP/2 (cleartext, or TLS with --tls-cert): on or off")
	fs.StringVar(&tlsCert, "tls-cert", "", "certificate chain (PEM, leaf first): --http then serves HTTPS/WSS (HTTP/2 on) and WebTransport uses it; reloaded on SIGHUP and when the files change. Without it --http is plain HTTP and WebTransport makes a development certificate (loopback only)")
	fs.StringVar(&tlsKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.Var(&apiKeys, "api-key", "API key that POST /v1/publish requires (repeatable)")
	fs.Var(&origins, "allowed-origin", "browser origin allowed besides the server's own and localhost (repeatable)")
	fs.StringVar(&tokenSecret, "token-secret", "", "secret that signs client tokens (JWT, HS256); without it every client may subscribe and publish everywhere")
	fs.StringVar(&tokenSecretFile, "token-secret-file", "", "file holding --token-secret (keeps it out of the process list)")
	fs.DurationVar(&c.Guard.HelloTimeout, "hello-timeout", actors.DefaultHelloTimeout, "time a client without ?token= has to send hello when tokens are required (4009)")
	fs.IntVar(&c.Guard.MaxConns, "max-conns", actors.DefaultMaxConns, "client sessions per node, every transport counted (WebSocket, WebTransport, SSE, polling); one more is closed with 4029 (0: no limit)")
	fs.IntVar(&c.Guard.MaxSubscriptions, "max-subscriptions", actors.DefaultMaxSubscriptions, "subscriptions per connection; more are refused with bad_request (0: no limit)")
	fs.Float64Var(&c.Guard.CommandRate, "command-rate", actors.DefaultCommandRate, "commands per second per connection; more get rate_limited (0: no limit)")
	fs.IntVar(&c.Guard.CommandBurst, "command-burst", actors.DefaultCommandBurst, "commands a connection may send at once; as many refused within a second close it (4029)")
	fs.Float64Var(&c.PublishRate, "publish-rate", httpapi.DefaultPublishRate, "messages per second per API key on POST /v1/publish; more get 429 (0: no limit)")
	fs.IntVar(&c.PublishBurst, "publish-burst", httpapi.DefaultPublishBurst, "messages an API key may publish at once")
	fs.IntVar(&m.gc.percent, "gc-percent", defaultGCPercent, "garbage collection target, as GOGC (-1: collect only near the soft memory limit); without the flag GOGC from the environment wins")
	fs.StringVar(&m.onEvicted, "on-evicted", "restart", "when the cluster drops this node for good (after a pause or a partition): restart (the process starts itself again under a new member identity) or exit (code 75, for a supervisor to restart it)")
	fs.StringVar(&m.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&m.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	sources, namespaces, err := applyEnvAndFile(fs, configPath, m.lookupEnv)
	if err != nil {
		return &exitError{2, err}
	}
	c.Node.Topic.Namespaces = namespaces
	if err := m.check(sources); err != nil {
		return &exitError{2, err}
	}
	fs.Visit(func(f *flag.Flag) { m.gc.given = m.gc.given || f.Name == "gc-percent" })
	if _, _, err := m.gc.resolve(os.LookupEnv); err != nil {
		return err
	}
	if m.onEvicted != "restart" && m.onEvicted != "exit" {
		return fmt.Errorf("--on-evicted must be restart or exit, got %q", m.onEvicted)
	}
	c.Node.Peers, c.Node.Etcd = splitList(peers), splitList(etcdURLs)
	if c.Node.Topic.HistorySize == 0 {
		// 0 on the command line keeps none, as 0 does for the other limits
		// of serve; in actors.TopicConfig (and redisstore.Config) 0 means
		// the default and a negative size keeps none.
		c.Node.Topic.HistorySize = -1
	}
	c.APIKeys, c.AllowedOrigins = apiKeys, origins
	if err := m.limits(tokenSecret, tokenSecretFile); err != nil {
		return err
	}
	if wt != "off" {
		c.WTAddr = wt
	}
	switch rtc {
	case "on":
		if c.WebRTCUDPAddr == "" {
			return &exitError{2, errors.New("--webrtc-udp must be a UDP address host:port with --webrtc on")}
		}
		c.WebRTCICEServers, c.WebRTCPublicIPs = iceServers, publicIPs
	case "off":
		c.WebRTCUDPAddr = ""
	default:
		return &exitError{2, fmt.Errorf("--webrtc must be on or off, got %q", rtc)}
	}
	switch grpc {
	case "on":
	case "off":
		c.DisableGRPC = true
	default:
		return &exitError{2, fmt.Errorf("--grpc must be on or off, got %q", grpc)}
	}
	logger, err := newLogger(m.stderr, m.logFormat, m.logLevel)
	if err != nil {
		return err
	}
	c.Logger = logger
	return m.loadTLS(tlsCert, tlsKey)
}

// loadTLS reads --tls-cert and --tls-key. A pair that cannot be served
// stops serve here, with the file named, rather than failing every
// client's handshake.
func (m *Main) loadTLS(certFile, keyFile string) error {
	if certFile == "" && keyFile == "" {
		return nil
	}
	if certFile == "" || keyFile == "" {
		return errors.New("--tls-cert and --tls-key go together")
	}
	r, err := tlsreload.New(tlsreload.Config{CertFile: certFile, KeyFile: keyFile, Logger: m.cfg.Logger})
	if err != nil {
		return fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	m.cfg.TLS = r
	return nil
}

// notifyReload returns the channel of SIGHUP, which reloads the TLS
// certificate, or nil without one (SIGHUP then ends the process, as
// before). Call it before Run: a SIGHUP that comes once the server
// listens must not end it. stop undoes it.
func (m *Main) notifyReload() (hup <-chan os.Signal, stop func()) {
	if m.cfg.TLS == nil {
		return nil, func() {}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}

// serve waits for the end of the server: ctx done (SIGINT, SIGTERM) or the
// node dropped by the cluster. Each SIGHUP on hup meanwhile reloads the
// TLS certificate.
func (m *Main) serve(ctx context.Context, hup <-chan os.Signal) error {
	for {
		select {
		case <-ctx.Done():
			return m.Close()
		case <-m.srv.Node().Evicted():
			return m.rejoin(ctx)
		case <-hup:
			m.cfg.Logger.Info("SIGHUP: reloading the TLS certificate")
			if err := m.cfg.TLS.Reload(); err != nil {
				// Reload has logged and counted it; the previous
				// certificate is still served.
				continue
			}
		}
	}
}

// check refuses settings no node can run with, naming where each came
// from (the environment variable, or the config file and line).
func (m *Main) check(sources map[string]string) error {
	c := &m.cfg
	var errs []error
	bad := func(name, want string) {
		where := ""
		if src, ok := sources[name]; ok {
			where = " (set by " + src + ")"
		}
		errs = append(errs, fmt.Errorf("--%s must be %s, got %s%s", name, want, m.fs.Lookup(name).Value, where))
	}
	if c.Node.Topic.HistorySize < 0 {
		bad("history-size", ">= 0")
	}
	if c.Node.MaxMessage <= 0 {
		bad("max-message", "> 0")
	}
	if c.MaxQueue <= 0 {
		bad("max-queue", "> 0")
	}
	if c.Node.Topic.HistoryTTL <= 0 {
		bad("history-ttl", "> 0")
	}
	if c.Guard.HelloTimeout <= 0 {
		bad("hello-timeout", "> 0")
	}
	if c.Guard.CommandBurst <= 0 {
		bad("command-burst", "> 0")
	}
	if c.PublishBurst <= 0 {
		bad("publish-burst", "> 0")
	}
	return errors.Join(errs...)
}

// limits checks the guard's flags and reads the token secret. On the
// command line 0 disables a limit; in the config it means the default.
func (m *Main) limits(secret, secretFile string) error {
	c := &m.cfg
	if secret != "" && secretFile != "" {
		return errors.New("--token-secret and --token-secret-file exclude each other")
	}
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return fmt.Errorf("--token-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
		if secret == "" {
			return errors.New("--token-secret-file: the file is empty")
		}
	}
	c.Guard.TokenSecret = []byte(secret)
	if c.Guard.MaxConns <= 0 {
		c.Guard.MaxConns = -1
	}
	if c.Guard.MaxSubscriptions <= 0 {
		c.Guard.MaxSubscriptions = -1
	}
	if c.Guard.CommandRate <= 0 {
		c.Guard.CommandRate = -1
	}
	if c.PublishRate <= 0 {
		c.PublishRate = -1
	}
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func newLogger(w io.Writer, format, levelName string) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(levelName)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format must be text or json, got %q", format)
	}
}

// Run starts the server and returns once it accepts clients.
func (m *Main) Run(ctx context.Context) error {
	if err := tuneGC(m.gc, m.cfg.Logger); err != nil {
		return err
	}
	srv, err := server.Start(ctx, m.cfg)
	if err != nil {
		return err
	}
	m.srv = srv
	return nil
}

// ExitEvicted is the exit code of serve --on-evicted exit when the cluster
// dropped the node (EX_TEMPFAIL: try again).
const ExitEvicted = 75

// rejoin closes a node that the cluster no longer counts (its clients were
// closed with 1001 already) and, with --on-evicted restart, starts this
// process again in its place: exec keeps the PID, the flags and the
// environment, and the new process joins under a new member identity, which
// the others let in. With exit it ends with ExitEvicted for a supervisor to
// restart it.
// A SIGINT or SIGTERM that came meanwhile (ctx is done) wins: the process
// ends.
func (m *Main) rejoin(ctx context.Context) error {
	logger := m.cfg.Logger
	if err := m.Close(); err != nil {
		logger.Warn("closing the evicted node", slog.Any("err", err))
	}
	// From here a signal takes its default action (the process ends) rather
	// than being missed between this check and the exec.
	signal.Reset(os.Interrupt, syscall.SIGTERM)
	if ctx.Err() != nil {
		return nil // asked to stop: no restart
	}
	if m.onEvicted == "exit" {
		return &exitError{ExitEvicted, errors.New("the cluster dropped this node")}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("restart after eviction: %w", err)
	}
	logger.Info("restarting to join the cluster again", slog.String("exe", exe))
	if err := syscall.Exec(exe, os.Args, os.Environ()); err != nil {
		return fmt.Errorf("restart after eviction: %w", err)
	}
	return nil // not reached: exec replaced the process
}

// Close drains and stops the server within --drain-timeout.
func (m *Main) Close() error {
	if m.srv == nil {
		return nil
	}
	return m.srv.Close()
}
