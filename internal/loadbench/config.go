package loadbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/topicast/topicast/sdk/wire"
)

// Defaults of Config.
const (
	DefaultURL             = "ws://127.0.0.1:8080/ws"
	DefaultConns           = 1000
	DefaultTopics          = 10
	DefaultRate            = 1000
	DefaultSize            = 128
	DefaultDuration        = 10 * time.Second
	DefaultDrain           = 5 * time.Second
	DefaultConnsPerSource  = 5000
	DefaultDialConcurrency = 200
	DefaultDialTimeout     = 10 * time.Second
	DefaultConnectTimeout  = 2 * time.Minute
	DefaultRequestTimeout  = 10 * time.Second

	// MaxConnsPerProcess bounds the subscribers of one process: a process
	// may hold 20,000 file descriptors on the machines this runs on, and
	// each connection takes one; the rest is margin for the publishers,
	// the workers' pipes and the runtime.
	MaxConnsPerProcess = 18000

	// DefaultWTDialConcurrency is the default DialConcurrency over
	// WebTransport, where each setup costs a QUIC and TLS handshake and an
	// HTTP/3 CONNECT.
	DefaultWTDialConcurrency = 50
	// DefaultRTCDialConcurrency is the default DialConcurrency over
	// WebRTC, where each setup costs ICE gathering, an HTTP round trip,
	// ICE checks, a DTLS handshake and SCTP's.
	DefaultRTCDialConcurrency = 50
)

// Transports of Config.Transport.
const (
	// TransportWebSocket: one WebSocket connection per subscriber, to URL.
	TransportWebSocket = "ws"
	// TransportWebTransport: one QUIC connection, WebTransport session and
	// bidirectional stream of NDJSON frames per subscriber, to WTURL.
	TransportWebTransport = "wt"
	// TransportWebRTC: one pion peer connection and "topicast" data
	// channel per subscriber, offered to WebRTCURL.
	TransportWebRTC = "webrtc"
)

// MaxSize is the largest Size: the server's default --max-message.
const MaxSize = wire.DefaultMaxMessage

// Config describes one bench run. The zero value of every field selects its
// default; Run works on a copy with the defaults applied.
type Config struct {
	// URL is the server's WebSocket endpoint, ws://host:port/ws (or wss://).
	// Over WebTransport and WebRTC it only serves to derive PublishURL.
	// Zero: DefaultURL, or the first of URLs.
	URL string
	// URLs are the WebSocket endpoints of several nodes of one cluster:
	// subscriber i connects to URLs[i%len(URLs)], and publisher goroutine
	// k posts to the HTTP base derived from URLs[k%len(URLs)] (unless
	// PublishURL is set). A topic's messages have one seq order cluster
	// wide, so every subscriber checks its stream as against one node.
	// Only over WebSocket. Zero: URL alone.
	URLs []string
	// Transport is how subscribers connect: TransportWebSocket,
	// TransportWebTransport or TransportWebRTC. Zero: TransportWebSocket.
	Transport string
	// WebRTCURL is the server's WebRTC signalling endpoint,
	// http://host:port/v1/webrtc, used with TransportWebRTC. Zero:
	// webrtc.url of GET PublishURL/v1/info, resolved against it.
	WebRTCURL string
	// WTURL is the server's WebTransport endpoint, https://host:port/wt,
	// used with TransportWebTransport. Zero: webtransport.url of
	// GET PublishURL/v1/info.
	WTURL string
	// CertHash pins the WebTransport server's certificate: the hex SHA-256
	// of its leaf certificate (colons allowed), checked instead of the
	// chain and the names, as browsers do with serverCertificateHashes.
	// Zero: webtransport.certHash of GET PublishURL/v1/info, if the server
	// reports one; otherwise the chain is verified.
	CertHash string
	// PublishURL is the base of the server's HTTP API, http://host:port;
	// publishes go to PublishURL + "/v1/publish". Zero: derived from URL
	// (ws becomes http, wss becomes https, the path is dropped).
	PublishURL string
	// APIKey is sent as "Authorization: Bearer" on publishes. Zero: none.
	APIKey string
	// Token is a JWT for the subscribers, sent as ?token= on the WebSocket
	// or WebTransport URL, or the WebRTC offer's. Zero: none (a server
	// without a secret).
	Token string

	// Conns is the number of subscriber connections. Zero: DefaultConns.
	Conns int
	// Topics is the number of topics, named "bench.0" to "bench.<Topics-1>";
	// subscriber i subscribes to topic i%Topics and message n goes to topic
	// n%Topics. Zero: DefaultTopics.
	Topics int
	// Rate is the number of messages per second, in total over all topics.
	// Zero: DefaultRate.
	Rate float64
	// Size is the length of each message's data in bytes, at least the 32 or
	// so that the timestamp needs. Zero: DefaultSize. At most MaxSize.
	Size int
	// Duration is how long messages are published. Zero: DefaultDuration.
	Duration time.Duration
	// Drain is how long Run waits after publishing for the last deliveries;
	// it ends early once every expected delivery arrived. Zero:
	// DefaultDrain; negative: no wait.
	Drain time.Duration
	// Publishers is the number of goroutines publishing concurrently, each
	// with one HTTP request in flight. Zero: Rate/250, at least 4 and at
	// most 64.
	Publishers int

	// SourceAddrs is the number of connections per local source address
	// when the server is on 127.0.0.1: connections then come from
	// 127.0.0.2, 127.0.0.3 and so on, SourceAddrs each, because one source
	// address has only about 28,000 ephemeral ports towards one server
	// port. It is ignored for other servers, and over WebTransport and
	// WebRTC, where each subscriber has a UDP socket of its own. Zero:
	// DefaultConnsPerSource; negative: every connection uses the system's
	// choice.
	SourceAddrs int
	// DialConcurrency is the number of connections being set up at once.
	// Zero: DefaultDialConcurrency, or DefaultWTDialConcurrency over
	// WebTransport, DefaultRTCDialConcurrency over WebRTC.
	DialConcurrency int
	// DialTimeout bounds the setup of one connection: TCP connect, upgrade
	// and the reply to its sub (over WebTransport: QUIC handshake, session,
	// stream and the reply; over WebRTC: gathering, offer, ICE, DTLS, SCTP,
	// the channel and the reply). Zero: DefaultDialTimeout.
	DialTimeout time.Duration
	// ConnectTimeout bounds the whole connect phase; connections not up by
	// then count as connect errors and the run goes on without them. Zero:
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// RequestTimeout bounds one publish request. Zero:
	// DefaultRequestTimeout.
	RequestTimeout time.Duration

	// Procs is the number of load-generator processes: Run connects the
	// first share of the subscribers itself and starts Procs-1 workers
	// with StartWorker for the others (see Share), each under
	// MaxConnsPerProcess connections. Only Run publishes. Zero: 1.
	Procs int
	// StartWorker starts a worker process for share, one that runs
	// RunWorker with this Config, and returns its pipes. Run cancels ctx
	// to kill a worker that does not end when told. Required when
	// Procs > 1; cmd/topicast starts its own binary.
	StartWorker func(ctx context.Context, share Share) (*Worker, error)

	// worker marks the Config of a worker process (RunWorker): it runs a
	// share of a -procs run and starts no worker itself.
	worker bool
	// NodePIDs are the process ids of the nodes, in the order of URLs, on
	// this machine: their CPU and RSS are then read from /proc/<pid>
	// instead of the nodes' GET /metrics (process_cpu_seconds_total,
	// process_resident_memory_bytes). Zero: /metrics.
	NodePIDs []int

	// Progress, when set, receives a one-line progress bar redrawn with \r
	// every 500 ms, and a final newline. Zero: no progress output.
	Progress io.Writer
	// Logger receives connection and publish failures (the first few of
	// each kind). Zero: slog.DiscardHandler.
	Logger *slog.Logger

	// Set by withDefaults.
	publishURLs []string // where publisher k posts: publishURLs[k%len]
	nodeBases   []string // the HTTP base of each of URLs, for /metrics
}

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if len(c.URLs) == 0 {
		c.URLs = []string{c.URL}
	}
	c.URL = c.URLs[0]
	c.nodeBases = make([]string, len(c.URLs))
	for i, u := range c.URLs {
		c.nodeBases[i] = derivePublishURL(u)
	}
	if c.PublishURL == "" {
		c.PublishURL = c.nodeBases[0]
		c.publishURLs = c.nodeBases
	} else {
		c.publishURLs = []string{c.PublishURL}
	}
	if c.Procs == 0 {
		c.Procs = 1
	}
	if c.Conns == 0 {
		c.Conns = DefaultConns
	}
	if c.Topics == 0 {
		c.Topics = DefaultTopics
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	switch {
	case c.Drain == 0:
		c.Drain = DefaultDrain
	case c.Drain < 0:
		c.Drain = 0
	}
	if c.Publishers == 0 {
		c.Publishers = min(max(int(c.Rate/250), 4), 64)
	}
	if c.SourceAddrs == 0 {
		c.SourceAddrs = DefaultConnsPerSource
	}
	if c.Transport == "" {
		c.Transport = TransportWebSocket
	}
	if c.DialConcurrency == 0 {
		c.DialConcurrency = DefaultDialConcurrency
		switch c.Transport {
		case TransportWebTransport:
			c.DialConcurrency = DefaultWTDialConcurrency
		case TransportWebRTC:
			c.DialConcurrency = DefaultRTCDialConcurrency
		}
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks a Config that has its defaults applied.
func (c Config) validate() error {
	for _, raw := range c.URLs {
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("loadbench: url: %w", err)
		}
		if u.Scheme != "ws" && u.Scheme != "wss" {
			return fmt.Errorf("loadbench: url %q: scheme must be ws or wss", raw)
		}
	}
	p, err := url.Parse(c.PublishURL)
	if err != nil {
		return fmt.Errorf("loadbench: publish url: %w", err)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return fmt.Errorf("loadbench: publish url %q: scheme must be http or https", c.PublishURL)
	}
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("loadbench: "+format, args...))
		}
	}
	check(c.Transport == TransportWebSocket || c.Transport == TransportWebTransport || c.Transport == TransportWebRTC,
		"transport must be %s, %s or %s, not %q", TransportWebSocket, TransportWebTransport, TransportWebRTC, c.Transport)
	switch c.Transport {
	case TransportWebTransport:
		errs = append(errs, c.validateWT())
	case TransportWebRTC:
		errs = append(errs, c.validateRTC())
	}
	check(len(c.URLs) == 1 || c.Transport == TransportWebSocket,
		"several urls need transport %s, not %q", TransportWebSocket, c.Transport)
	check(len(c.NodePIDs) == 0 || len(c.NodePIDs) == len(c.URLs),
		"%d node pids for %d urls", len(c.NodePIDs), len(c.URLs))
	check(c.Conns > 0, "conns must be positive, not %d", c.Conns)
	check(c.Procs > 0, "procs must be positive, not %d", c.Procs)
	check(c.Procs == 1 || c.StartWorker != nil || c.worker, "procs %d without a way to start workers", c.Procs)
	if c.Procs > 0 {
		perProc := (c.Conns + c.Procs - 1) / c.Procs
		check(perProc <= MaxConnsPerProcess,
			"%d conns over %d procs is %d per process, over the %d a process may hold here (file descriptors); use -procs %d or more",
			c.Conns, c.Procs, perProc, MaxConnsPerProcess, (c.Conns+MaxConnsPerProcess-1)/MaxConnsPerProcess)
	}
	check(c.Topics > 0, "topics must be positive, not %d", c.Topics)
	check(c.Rate > 0, "rate must be positive, not %g", c.Rate)
	check(c.Size > 0 && c.Size <= MaxSize, "size must be 1 to %d bytes, not %d", MaxSize, c.Size)
	check(c.Duration > 0, "duration must be positive, not %v", c.Duration)
	check(c.Publishers > 0, "publishers must be positive, not %d", c.Publishers)
	check(c.DialConcurrency > 0, "dial concurrency must be positive, not %d", c.DialConcurrency)
	check(c.DialTimeout > 0, "dial timeout must be positive, not %v", c.DialTimeout)
	check(c.ConnectTimeout > 0, "connect timeout must be positive, not %v", c.ConnectTimeout)
	check(c.RequestTimeout > 0, "request timeout must be positive, not %v", c.RequestTimeout)
	return errors.Join(errs...)
}

// derivePublishURL maps ws://host:port/ws to http://host:port.
func derivePublishURL(wsURL string) string {
	u, err := url.Parse(wsURL)
	if err != nil {
		return ""
	}
	scheme := "http"
	if u.Scheme == "wss" {
		scheme = "https"
	}
	return scheme + "://" + u.Host
}

// publishEndpoint returns the URL of POST /v1/publish under base.
func publishEndpoint(base string) string {
	base = strings.TrimSuffix(base, "/")
	if strings.HasSuffix(base, "/v1/publish") {
		return base
	}
	return base + "/v1/publish"
}

// nodeURL returns the WebSocket URL of subscriber i's node.
func (c Config) nodeURL(i int) string {
	if len(c.URLs) == 0 {
		return c.URL
	}
	return c.URLs[i%len(c.URLs)]
}

// subscribeURL returns subscriber i's node's WebSocket URL with the token,
// if any.
func (c Config) subscribeURL(i int) string {
	raw := c.nodeURL(i)
	if c.Token == "" {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set("token", c.Token)
	u.RawQuery = q.Encode()
	return u.String()
}

// sourceAddr returns the local address connection i binds to, or nil for the
// system's choice. Numbering starts at 127.0.0.2 so that the ports of
// 127.0.0.1 stay free for everything else on the machine, the bench's own
// publishers included. i is the index over all processes of a run, so
// that SourceAddrs bounds the connections of an address machine-wide: the
// kernel then hands each process distinct ports of a shared address.
func (c Config) sourceAddr(i int) *net.TCPAddr {
	if c.SourceAddrs <= 0 {
		return nil
	}
	u, err := url.Parse(c.nodeURL(i))
	if err != nil {
		return nil
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil || ip != netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
		return nil
	}
	n := uint32(127)<<24 + 2 + uint32(i/c.SourceAddrs)
	src := netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
}
