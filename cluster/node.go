package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/wire"
)

// TopicKind is the cluster kind of topic grains.
const TopicKind = "topic"

// Version is the server version reported by Info.
var Version = "0.1.0-dev"

// Defaults of Config.
const (
	DefaultClusterAddr    = "127.0.0.1:0"
	DefaultRequestTimeout = 5 * time.Second
	DefaultMaxMessage     = 65536
)

// Config configures a Node.
type Config struct {
	// Name identifies the node in logs and /v1/info. Empty means a name
	// made from the cluster address.
	Name string
	// ClusterAddr is the host:port of the node's protoactor remote. Empty
	// means DefaultClusterAddr (a free loopback port).
	ClusterAddr string
	// ClusterName names the protoactor cluster. Empty means "topicast".
	ClusterName string
	// Topic configures topic actors (history size and age, key TTL).
	Topic actors.TopicConfig
	// MaxMessage is the largest data of a message in bytes. Zero means
	// DefaultMaxMessage.
	MaxMessage int
	// RequestTimeout bounds a publish or history call to a topic actor.
	// Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// OnConnClosed, if set, is called when a connection ends.
	OnConnClosed func(info *transport.SessionInfo, cause error)
	// Logger; nil discards. protoactor's own logs are kept at warnings and
	// above.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.ClusterAddr == "" {
		c.ClusterAddr = DefaultClusterAddr
	}
	if c.ClusterName == "" {
		c.ClusterName = "topicast"
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Topic.Logger = c.Logger
	return c
}

// Node is one topicast server in a cluster. Its methods are goroutine-safe.
type Node struct {
	cfg     Config
	system  *actor.ActorSystem
	cluster *protocluster.Cluster
	relays  *actors.Relays
	conns   *actors.Conns
	ready   atomic.Bool
	closed  atomic.Bool
}

// New configures a node; Start starts it.
func New(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	host, portStr, err := net.SplitHostPort(cfg.ClusterAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster address %q: %w", cfg.ClusterAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("cluster address %q: bad port", cfg.ClusterAddr)
	}
	libLogger := slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn}).With("lib", "protoactor")
	system := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return libLogger }),
		actor.WithDeadLetterThrottleCount(3),
		actor.WithDeadLetterThrottleInterval(10*time.Second),
	)
	kind := protocluster.NewKind(TopicKind, actors.NewTopicProps(cfg.Topic, nil))
	remoteCfg := remote.Configure(host, port)
	clusterCfg := protocluster.Configure(cfg.ClusterName, singleProvider{}, disthash.New(), remoteCfg,
		protocluster.WithKinds(kind),
		protocluster.WithRequestTimeout(cfg.RequestTimeout),
	)
	n := &Node{cfg: cfg, system: system, cluster: protocluster.New(system, clusterCfg)}
	router := grainRouter{n.cluster}
	n.relays = actors.NewRelays(system, router, actors.RelayConfig{Logger: cfg.Logger})
	n.conns = actors.NewConns(system, router, n.relays, actors.ConnConfig{
		MaxMessage:     cfg.MaxMessage,
		RequestTimeout: cfg.RequestTimeout,
		OnClosed:       cfg.OnConnClosed,
		Logger:         cfg.Logger,
	})
	return n, nil
}

// Start joins the cluster. The node accepts clients once it returns.
func (n *Node) Start(ctx context.Context) (err error) {
	defer func() {
		// remote.Start panics when its port is taken.
		if r := recover(); r != nil {
			err = fmt.Errorf("start cluster member on %s: %v", n.cfg.ClusterAddr, r)
		}
	}()
	n.cluster.StartMember()
	if n.cfg.Name == "" {
		n.cfg.Name = "node-" + n.system.Address()
	}
	n.ready.Store(true)
	n.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "node started",
		slog.String("node", n.cfg.Name), slog.String("cluster_addr", n.system.Address()))
	return nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Ready reports whether the node accepts clients.
func (n *Node) Ready() bool { return n.ready.Load() }

// Conns returns the number of connected clients.
func (n *Node) Conns() int { return n.conns.Len() }

// Relays returns the number of topics with local subscribers.
func (n *Node) Relays() int { return n.relays.Len() }

// Accept takes a new client session; it is a transport.AcceptFunc.
func (n *Node) Accept(s transport.Session) transport.Handler {
	if n.closed.Load() {
		// The adapter still calls the handler's HandleClosed, so the session
		// gets its actor, which stops when the close completes.
		s.Close(transport.DisconnectShutdown)
	}
	return n.conns.Accept(s)
}

// ErrClosed is returned by calls on a closed node.
var ErrClosed = errors.New("topicast: node closed")

// Close stops accepting, closes every client with 1001 after what is queued
// for it, waits for them (bounded by ctx), then leaves the cluster.
func (n *Node) Close(ctx context.Context) error {
	if n.closed.Swap(true) {
		return nil
	}
	n.ready.Store(false)
	var err error
	select {
	case <-n.conns.CloseAll(transport.DisconnectShutdown):
	case <-ctx.Done():
		err = fmt.Errorf("close clients: %w", context.Cause(ctx))
	}
	n.cluster.Shutdown(true)
	return err
}

// Publish publishes items in order and answers where each landed. Items of
// one topic go to its actor in one request, so a batch costs one round trip
// per topic.
func (n *Node) Publish(ctx context.Context, items []wire.PublishItem) ([]wire.PublishResult, error) {
	if n.closed.Load() {
		return nil, wire.Errorf(wire.CodeUnavailable, "node is shutting down")
	}
	type group struct {
		req *actorpb.PublishRequest
		idx []int
		fut *actor.Future
	}
	groups := make(map[string]*group)
	var order []*group
	for i, it := range items {
		g := groups[it.Topic]
		if g == nil {
			g = &group{req: &actorpb.PublishRequest{Topic: it.Topic}}
			groups[it.Topic] = g
			order = append(order, g)
		}
		g.req.Items = append(g.req.Items, &actorpb.PublishItem{Data: it.Data, Key: it.Key})
		g.idx = append(g.idx, i)
	}
	results := make([]wire.PublishResult, len(items))
	timeout := n.timeout(ctx)
	for _, g := range order {
		g.fut = n.request(g.req.Topic, g.req, timeout)
	}
	for _, g := range order {
		res, err := n.await(g.req.Topic, g.req, g.fut, timeout)
		if err != nil {
			return nil, err
		}
		r, ok := res.(*actorpb.PublishResponse)
		if !ok || len(r.Seqs) != len(g.idx) {
			return nil, wire.Errorf(wire.CodeInternal, "topic %s answered %T", g.req.Topic, res)
		}
		if r.Error != nil {
			return nil, &wire.Error{Code: wire.ErrorCode(r.Error.Code), Message: r.Error.Message}
		}
		for j, i := range g.idx {
			results[i] = wire.PublishResult{Topic: g.req.Topic, Epoch: r.Epoch, Seq: r.Seqs[j]}
		}
	}
	return results, nil
}

// History reads the messages of topic after since, at most limit (<= 0: all).
func (n *Node) History(ctx context.Context, topic string, since uint64, limit int) (*wire.History, error) {
	if n.closed.Load() {
		return nil, wire.Errorf(wire.CodeUnavailable, "node is shutting down")
	}
	req := &actorpb.HistoryRequest{Topic: topic, Since: since, Limit: uint32(max(limit, 0))}
	timeout := n.timeout(ctx)
	res, err := n.await(topic, req, n.request(topic, req, timeout), timeout)
	if err != nil {
		return nil, err
	}
	r, ok := res.(*actorpb.HistoryResponse)
	if !ok {
		return nil, wire.Errorf(wire.CodeInternal, "topic %s answered %T", topic, res)
	}
	return &wire.History{Topic: topic, Epoch: r.Epoch, Head: r.Head, Truncated: r.Truncated, Frames: r.Frames}, nil
}

func (n *Node) timeout(ctx context.Context) time.Duration {
	t := n.cfg.RequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		t = min(t, time.Until(dl))
	}
	return max(t, time.Millisecond)
}

// request sends msg to topic's actor; a nil future means no actor was found.
func (n *Node) request(topic string, msg any, timeout time.Duration) *actor.Future {
	pid := n.cluster.Get(topic, TopicKind)
	if pid == nil {
		return nil
	}
	return n.system.Root.RequestFuture(pid, msg, timeout)
}

// await waits for f, asking again when the topic actor stopped between
// lookup and delivery (it passivates when idle).
func (n *Node) await(topic string, msg any, f *actor.Future, timeout time.Duration) (any, error) {
	for attempt := 1; ; attempt++ {
		if f == nil {
			return nil, wire.Errorf(wire.CodeUnavailable, "topic %s has no actor right now, try again", topic)
		}
		res, err := f.Result()
		if errors.Is(err, actor.ErrDeadLetter) && attempt < 3 {
			f = n.request(topic, msg, timeout)
			continue
		}
		if err != nil {
			n.cfg.Logger.LogAttrs(context.Background(), slog.LevelWarn, "topic request failed",
				slog.String("topic", topic), slog.Any("err", err))
			return nil, wire.Errorf(wire.CodeUnavailable, "topic %s did not answer in time, try again", topic)
		}
		return res, nil
	}
}

// grainRouter finds topic actors as cluster grains.
type grainRouter struct{ c *protocluster.Cluster }

func (g grainRouter) TopicPID(topic string) (*actor.PID, error) {
	if pid := g.c.Get(topic, TopicKind); pid != nil {
		return pid, nil
	}
	return nil, actors.ErrNoTopicActor
}

// minLevel raises a handler's threshold, to keep a library's chatter out.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(attrs), m.level}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{m.Handler.WithGroup(name), m.level}
}
