package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// TopicKind is the cluster kind of topic grains.
const TopicKind = "topic"

// Version is the server version reported by Info.
var Version = "0.1.0-dev"

// Defaults of Config.
const (
	DefaultClusterAddr    = "127.0.0.1:0"
	DefaultRequestTimeout = 5 * time.Second
	// DefaultJoinTimeout bounds how long Start waits for the node to see
	// itself in the cluster's membership.
	DefaultJoinTimeout = 30 * time.Second
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
	// Peers are the cluster addresses (host:port, as each node's
	// ClusterAddr) of the members of a static cluster, this node's included
	// or not: protoactor's automanaged provider. Each node also serves the
	// provider's health endpoint on its cluster host at cluster port + 1
	// (HealthPortOffset). Empty, with no Etcd, means a cluster of one.
	Peers []string
	// Etcd are the etcd endpoints (http://host:port) of a dynamic cluster:
	// protoactor's etcd provider. It takes precedence over Peers.
	Etcd []string
	// Redis, a redis://host:port/db URL, keeps topic history, epochs, seqs
	// and idempotency keys in Redis, so that a topic moved to another node
	// (its node died, or a node joined) goes on gaplessly. Empty keeps them
	// in the topic actors' memory.
	Redis string
	// Topic configures topic actors (history size and age, key TTL). Its
	// Store is set from Redis, its Metrics to the node's (NodeState).
	Topic actors.TopicConfig
	// MaxMessage is the largest data of a message in bytes. Zero means
	// wire.DefaultMaxMessage.
	MaxMessage int
	// RequestTimeout bounds a publish or history call to a topic actor, and
	// a lookup. Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// JoinTimeout bounds how long Start waits to see the node in the
	// membership. Zero means DefaultJoinTimeout.
	JoinTimeout time.Duration
	// GuardInterval is how often the node asks its peers whether they still
	// count it as a member (see guard). Zero means DefaultGuardInterval;
	// negative disables the guard: no quorum, no eviction.
	GuardInterval time.Duration
	// StallThreshold is how far the node's clock may jump between two ticks
	// of the guard before it checks its membership at once. Zero means
	// DefaultStallThreshold.
	StallThreshold time.Duration
	// RelayCheckInterval is how often a relay that heard nothing from its
	// topic asks it whether it still delivers to it (actors.Relays
	// StartChecks). Zero means actors.DefaultCheckInterval; negative
	// disables the checks.
	RelayCheckInterval time.Duration
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
		c.MaxMessage = wire.DefaultMaxMessage
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = DefaultJoinTimeout
	}
	if c.GuardInterval == 0 {
		c.GuardInterval = DefaultGuardInterval
	}
	if c.StallThreshold == 0 {
		c.StallThreshold = DefaultStallThreshold
	}
	if c.RelayCheckInterval == 0 {
		c.RelayCheckInterval = actors.DefaultCheckInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Topic.Logger = c.Logger
	return c
}

// Node is one topicast server in a cluster. Its methods are goroutine-safe.
type Node struct {
	cfg      Config
	system   *actor.ActorSystem
	cluster  *protocluster.Cluster
	lookup   *lookup
	provider provider
	store    closableStore
	relays   *actors.Relays
	conns    *actors.Conns
	state    *transport.NodeState
	ready    atomic.Bool
	closed   atomic.Bool
	// quorate is false while the node sees no majority of its configured
	// peers; evicted once the cluster no longer counts it (see guard).
	quorate   atomic.Bool
	evicted   atomic.Bool
	evictOnce sync.Once
	evictedCh chan struct{}
	guard     *guard // nil when disabled
	// stopChecks stops the relays' checks; set by Start.
	stopChecks func()
	// publishing is held shared by each Publish and exclusively by Close,
	// which so waits for the publishes under way.
	publishing sync.RWMutex
}

// New configures a node; Start starts it.
func New(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Topic.Namespaces.Validate(); err != nil {
		return nil, err
	}
	host, portStr, err := net.SplitHostPort(cfg.ClusterAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster address %q: %w", cfg.ClusterAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("cluster address %q: bad port", cfg.ClusterAddr)
	}
	state := new(transport.NodeState)
	store, err := newStore(cfg, &state.Metrics)
	if err != nil {
		return nil, err
	}
	if store != nil {
		cfg.Topic.Store = store
	}
	cfg.Topic.Metrics = &state.Metrics
	prov, err := newProvider(cfg, host, port)
	if err != nil {
		if store != nil {
			store.Close()
		}
		return nil, err
	}
	libLogger := slog.New(libHandler{minLevel{cfg.Logger.Handler(), slog.LevelWarn}}).With("lib", "protoactor")
	system := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return libLogger }),
		actor.WithDeadLetterThrottleCount(3),
		actor.WithDeadLetterThrottleInterval(10*time.Second),
	)
	actors.WatchDeadLocalCalls(system) // lives as long as the system
	topicCfg := cfg.Topic
	look := newLookup(TopicKind, func(identity string) *actor.Props {
		return actors.NewNamedTopicProps(topicCfg, identity, nil)
	}, cfg.RequestTimeout, cfg.Logger.With("node", cfg.Name))
	// The kind is registered so that members advertise it; activations are
	// spawned by the lookup's activator, not from these props.
	kind := protocluster.NewKind(TopicKind, actors.NewTopicProps(cfg.Topic, nil))
	remoteCfg := remote.Configure(host, port)
	clusterCfg := protocluster.Configure(cfg.ClusterName, prov, look, remoteCfg,
		protocluster.WithKinds(kind),
		protocluster.WithRequestTimeout(cfg.RequestTimeout),
	)
	n := &Node{cfg: cfg, system: system, cluster: protocluster.New(system, clusterCfg), lookup: look,
		provider: prov, store: store, state: state, evictedCh: make(chan struct{})}
	look.memberID = prov.memberID(n.cluster)
	router := grainRouter{look}
	n.relays = actors.NewRelays(system, router, actors.RelayConfig{Metrics: &state.Metrics, Logger: cfg.Logger})
	look.onChange = func() {
		n.relays.Broadcast(&actors.TopologyChanged{})
		if n.guard != nil {
			n.setQuorate(n.guard.quorate(look.view()))
		}
	}
	n.conns = actors.NewConns(system, n, n.relays, actors.ConnConfig{
		MaxMessage:     cfg.Topic.Namespaces.MaxMessage(cfg.MaxMessage),
		Namespaces:     cfg.Topic.Namespaces,
		NodeName:       cfg.Name,
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
	if err := n.provider.precheck(ctx); err != nil {
		return err
	}
	n.cluster.StartMember()
	if n.cfg.Name == "" {
		n.cfg.Name = "node-" + n.system.Address()
	}
	t := time.NewTimer(n.cfg.JoinTimeout)
	defer t.Stop()
	select {
	case <-n.lookup.Joined():
	case <-ctx.Done():
		return fmt.Errorf("join the cluster: %w", context.Cause(ctx))
	case <-t.C:
		return fmt.Errorf("join the cluster: not a member after %v", n.cfg.JoinTimeout)
	}
	if n.cfg.RelayCheckInterval > 0 {
		n.stopChecks = n.relays.StartChecks(n.cfg.RelayCheckInterval)
	}
	if n.cfg.GuardInterval > 0 {
		g := newGuard(n, n.cfg.Peers)
		n.setQuorate(g.quorate(n.lookup.view()))
		n.guard = g
		go g.run()
	} else {
		n.setQuorate(true)
	}
	n.ready.Store(true)
	n.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "node started",
		slog.String("node", n.cfg.Name), slog.String("cluster_addr", n.system.Address()),
		slog.String("membership", n.provider.name()), slog.Bool("durable_history", n.store != nil))
	return nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// NodeState returns the node's transport state: the adapters that hand
// sessions to Accept take it in their Config (their sessions' backlog,
// pooled writers and counters), the node's actors count in its Metrics, and
// the publish backpressure and metrics read it. It is the node's alone.
func (n *Node) NodeState() *transport.NodeState { return n.state }

// Ready reports whether the node accepts clients: it has joined, is not
// closing, sees a majority of its configured peers, and the cluster still
// counts it.
func (n *Node) Ready() bool { return n.ready.Load() && n.quorate.Load() && !n.evicted.Load() }

// Evicted is closed once the cluster no longer counts this node (its peers
// dropped it after a pause or a partition, and protoactor never lets the
// same member id back in). By then every client was closed with 1001 and
// the node refuses new ones; the process should close the node and join
// again under a new identity (topicast serve restarts itself).
func (n *Node) Evicted() <-chan struct{} { return n.evictedCh }

// setQuorate records whether the node sees a majority of its configured
// peers; on losing it, the node closes its clients so that they move to
// the majority.
func (n *Node) setQuorate(q bool) {
	n.lookup.quorate.Store(q)
	if prev := n.quorate.Swap(q); prev == q || !n.ready.Load() {
		return
	}
	if q {
		n.cfg.Logger.LogAttrs(context.Background(), slog.LevelInfo, "node has its quorum again",
			slog.String("node", n.cfg.Name))
		return
	}
	n.cfg.Logger.LogAttrs(context.Background(), slog.LevelWarn,
		"node lost its quorum (no majority of its peers in sight, or the membership dropped it): refusing clients and publishes",
		slog.String("node", n.cfg.Name), slog.Any("members", n.lookup.memberAddrs()))
	n.conns.CloseAll(disconnectCutOff)
}

// evict makes the node give up its membership: see Evicted.
func (n *Node) evict(reason string) {
	n.evictOnce.Do(func() {
		n.evicted.Store(true)
		n.cfg.Logger.LogAttrs(context.Background(), slog.LevelWarn, "node evicted from the cluster: it must join again",
			slog.String("node", n.cfg.Name), slog.String("reason", reason))
		t := time.NewTimer(n.cfg.RequestTimeout)
		defer t.Stop()
		select {
		case <-n.conns.CloseAll(disconnectRejoin):
		case <-t.C:
		}
		close(n.evictedCh)
	})
}

// unavailable says why the node refuses a call, or returns nil.
func (n *Node) unavailable() error {
	switch {
	case n.closed.Load():
		return wire.Errorf(wire.CodeUnavailable, "node is shutting down")
	case n.evicted.Load():
		return wire.Errorf(wire.CodeUnavailable, "node is rejoining the cluster, try another")
	case !n.quorate.Load():
		return wire.Errorf(wire.CodeUnavailable, "node is cut off from most of the cluster, try another")
	}
	return nil
}

// Conns returns the number of connected clients.
func (n *Node) Conns() int { return n.conns.Len() }

// Relays returns the number of topics with local subscribers.
func (n *Node) Relays() int { return n.relays.Len() }

// Members returns the number of cluster members this node sees, itself
// included once it has joined.
func (n *Node) Members() int { return len(n.lookup.memberAddrs()) }

// Accept takes a new client session; it is a transport.AcceptFunc.
func (n *Node) Accept(s transport.Session) transport.Handler {
	switch {
	// The adapter still calls the handler's HandleClosed, so the session
	// gets its actor, which stops when the close completes.
	case n.closed.Load():
		s.Close(transport.DisconnectShutdown)
	case n.evicted.Load():
		s.Close(disconnectRejoin)
	case !n.quorate.Load():
		s.Close(disconnectCutOff)
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
	if n.guard != nil {
		n.guard.close()
	}
	// Wait for the publishes under way, then for the relays to hand their
	// deliveries to the sessions' queues: closing a session writes what is
	// queued, so every message a publisher was answered for reaches its
	// subscribers before their 1001.
	n.publishing.Lock()
	defer n.publishing.Unlock()
	flush := n.cfg.RequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		flush = min(flush, time.Until(dl)/2)
	}
	n.relays.Flush(max(flush, time.Millisecond))
	var err error
	select {
	case <-n.conns.CloseAll(transport.DisconnectShutdown):
	case <-ctx.Done():
		err = fmt.Errorf("close clients: %w", context.Cause(ctx))
	}
	if n.stopChecks != nil {
		n.stopChecks()
	}
	if n.evicted.Load() {
		// The cluster has dropped this member already: no leave to
		// announce and no ownership to hand over, so no graceful waits.
		_ = n.provider.Shutdown(false) // releases the health port; an error changes nothing now
		n.lookup.Shutdown()
		n.cluster.Shutdown(false)
	} else {
		n.cluster.Shutdown(true)
	}
	if n.store != nil {
		n.store.Close()
	}
	return err
}

var _ actors.Publisher = (*Node)(nil)

// Publish publishes items in order and answers where each landed. Items of
// one topic go to its actor in one request, so a batch costs one round trip
// per topic.
func (n *Node) Publish(ctx context.Context, items []wire.PublishItem) ([]wire.PublishResult, error) {
	// Timed and counted here, the one path of every publish (HTTP, clients'
	// pub, sys:stats), so that /metrics shows what publishers see.
	start := time.Now()
	res, err := n.publish(ctx, items)
	if err != nil {
		n.state.Metrics.PublishFailed(wire.AsError(err).Code)
		return nil, err
	}
	n.state.Metrics.PublishLatency.Observe(time.Since(start), 1)
	return res, nil
}

func (n *Node) publish(ctx context.Context, items []wire.PublishItem) ([]wire.PublishResult, error) {
	if err := n.unavailable(); err != nil {
		return nil, err
	}
	// The decoders allowed the largest max_message of all; each topic's own
	// applies here, on the one path of every publish. A batch is refused
	// whole.
	for _, it := range items {
		if e := n.cfg.Topic.Namespaces.CheckPublish(it.Topic, it.Data, n.cfg.MaxMessage); e != nil {
			return nil, e
		}
	}
	n.publishing.RLock()
	defer n.publishing.RUnlock()
	if err := n.unavailable(); err != nil {
		return nil, err
	}
	type group struct {
		req  *actorpb.PublishRequest
		idx  []int
		call *call
	}
	var groups map[string]*group // nil for one item: a publish is the hot path
	if len(items) > 1 {
		groups = make(map[string]*group)
	}
	order := make([]*group, 0, 1)
	for i, it := range items {
		g := groups[it.Topic]
		if g == nil {
			g = &group{req: &actorpb.PublishRequest{Topic: it.Topic}}
			if groups != nil {
				groups[it.Topic] = g
			}
			order = append(order, g)
		}
		g.req.Items = append(g.req.Items, &actorpb.PublishItem{Data: it.Data, Key: it.Key})
		g.idx = append(g.idx, i)
	}
	results := make([]wire.PublishResult, len(items))
	deadline := time.Now().Add(n.timeout(ctx))
	for _, g := range order {
		g.call = n.start(g.req.Topic, g.req, deadline)
	}
	for _, g := range order {
		res, err := n.finish(g.call)
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
	if err := n.unavailable(); err != nil {
		return nil, err
	}
	req := &actorpb.HistoryRequest{Topic: topic, Since: since, Limit: uint32(max(limit, 0))}
	res, err := n.finish(n.start(topic, req, time.Now().Add(n.timeout(ctx))))
	if err != nil {
		return nil, err
	}
	r, ok := res.(*actorpb.HistoryResponse)
	if !ok {
		return nil, wire.Errorf(wire.CodeInternal, "topic %s answered %T", topic, res)
	}
	return &wire.History{Topic: topic, Epoch: r.Epoch, Head: r.Head, Truncated: r.Truncated, Frames: r.Frames}, nil
}

// Presence returns a topic's members (PROTOCOL.md 1.1): the full count and
// at most limit of them (0: wire.MaxPresenceListed), ordered by conn.
func (n *Node) Presence(ctx context.Context, topic string, limit int) (*wire.Presence, error) {
	if err := n.unavailable(); err != nil {
		return nil, err
	}
	if e := n.cfg.Topic.Namespaces.CheckPresence(&wire.Command{Op: wire.OpPresence, Topic: topic}); e != nil {
		return nil, e
	}
	req := &actorpb.PresenceRequest{Topic: topic, Limit: uint32(max(limit, 0))}
	res, err := n.finish(n.start(topic, req, time.Now().Add(n.timeout(ctx))))
	if err != nil {
		return nil, err
	}
	r, ok := res.(*actorpb.PresenceResponse)
	if !ok {
		return nil, wire.Errorf(wire.CodeInternal, "topic %s answered %T", topic, res)
	}
	return actors.DecodePresence(topic, r)
}

func (n *Node) timeout(ctx context.Context) time.Duration {
	t := n.cfg.RequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		t = min(t, time.Until(dl))
	}
	return max(t, time.Millisecond)
}

// call is a request to a topic actor in flight.
type call struct {
	topic    string
	msg      any
	deadline time.Time
	pid      *actor.PID
	fut      *actor.Future     // to a topic actor on another member
	local    *actors.LocalCall // to a topic actor on this member
	changed  <-chan struct{}
	err      error
}

// start looks the topic's actor up and sends it msg.
func (n *Node) start(topic string, msg any, deadline time.Time) *call {
	c := &call{topic: topic, msg: msg, deadline: deadline}
	n.send(c)
	return c
}

func (n *Node) send(c *call) {
	c.fut, c.local, c.err = nil, nil, nil
	remaining := time.Until(c.deadline)
	if remaining <= 0 {
		c.err = context.DeadlineExceeded
		return
	}
	c.changed = n.lookup.Changed()
	c.pid, c.err = n.lookup.get(c.topic, TopicKind, remaining)
	if c.err != nil {
		return
	}
	if c.pid.Address == n.system.Address() {
		// This member cannot leave under its own caller: the call alone
		// tells when the actor answered, stopped or timed out. And it needs
		// no future: a publish is the hot path.
		c.local = actors.NewLocalCall(c.msg)
		n.system.Root.Send(c.pid, c.local)
		return
	}
	c.fut = n.system.Root.RequestFuture(c.pid, c.msg, remaining)
}

// finish waits for c's answer. It asks again, until the deadline, when the
// topic actor stopped between lookup and delivery (it passivates when idle),
// answered that it is stale (a newer activation fenced it out), or its
// member left the cluster.
func (n *Node) finish(c *call) (any, error) {
	for attempt := 1; ; attempt++ {
		var res any
		err := c.err
		switch {
		case err != nil:
		case c.local != nil:
			res, err = c.local.Wait(time.Until(c.deadline))
		default:
			res, err = awaitFuture(c.fut, c.changed, func() bool { return n.lookup.alive(c.pid.Address) })
		}
		// A dead letter reached no actor, and a "retry" answer wrote nothing:
		// asking again is safe. A member that left with the request in
		// flight may have handled it first: asking again could publish a
		// message twice, unless every item carries a key.
		retry := errors.Is(err, actor.ErrDeadLetter) || (errors.Is(err, errMemberLeft) && repeatable(c.msg))
		if err == nil && isRetry(res) {
			retry = true
		}
		if retry && time.Now().Before(c.deadline) {
			if c.pid != nil {
				n.lookup.forget(c.topic, TopicKind, c.pid)
			}
			if attempt > 1 {
				// The stale activation may still be registered a moment.
				time.Sleep(min(time.Duration(attempt)*10*time.Millisecond, 200*time.Millisecond, time.Until(c.deadline)))
			}
			n.send(c)
			continue
		}
		if err != nil || retry {
			n.cfg.Logger.LogAttrs(context.Background(), slog.LevelWarn, "topic request failed",
				slog.String("topic", c.topic), slog.Any("err", err), slog.Bool("retry", retry))
			if !repeatable(c.msg) && !errors.Is(err, actor.ErrDeadLetter) && !retry {
				return nil, wire.Errorf(wire.CodeUnavailable,
					"topic %s did not answer in time: the message may have been published (publish with a key to retry safely)", c.topic)
			}
			return nil, wire.Errorf(wire.CodeUnavailable, "topic %s did not answer in time, try again", c.topic)
		}
		return res, nil
	}
}

// repeatable reports whether msg may be sent twice without effect: a read,
// or a publish whose every item has an idempotency key.
func repeatable(msg any) bool {
	req, ok := msg.(*actorpb.PublishRequest)
	if !ok {
		return true
	}
	for _, it := range req.Items {
		if it.Key == "" {
			return false
		}
	}
	return true
}

// isRetry reports whether res says "ask again": the activation was stale.
func isRetry(res any) bool {
	switch r := res.(type) {
	case *actorpb.PublishResponse:
		return r.Retry
	case *actorpb.HistoryResponse:
		return r.Retry
	case *actorpb.PresenceResponse:
		return r.Retry
	}
	return false
}

// grainRouter finds topic actors through the lookup. It is the relays' and
// connections' actors.TopicRouter.
type grainRouter struct{ l *lookup }

var _ actors.TopicRouter = grainRouter{}

func (g grainRouter) TopicPID(topic string) (*actor.PID, error) {
	return g.l.get(topic, TopicKind, g.l.timeout)
}

func (g grainRouter) CachedTopicPID(topic string) (*actor.PID, bool) {
	return g.l.cached(topic, TopicKind)
}

func (g grainRouter) ForgetTopicPID(topic string, pid *actor.PID) {
	g.l.forget(topic, TopicKind, pid)
}

func (g grainRouter) TopicOwner(topic string) string { return g.l.owner(topic) }

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
