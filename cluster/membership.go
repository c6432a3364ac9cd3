package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/labstack/echo"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster/redisstore"
	"github.com/topicast/topicast/transport"
)

// HealthPortOffset is added to a node's cluster port to get the port of its
// membership health endpoint (GET /_health) in a static (--peers) cluster.
// It listens on the cluster address's host.
const HealthPortOffset = 1

// DefaultPeerRefresh is how often a static cluster's members check each
// other; a killed member is seen as gone within about that time.
const DefaultPeerRefresh = 500 * time.Millisecond

// EtcdPrefix is the etcd key prefix under which members register.
const EtcdPrefix = "/topicast"

// provider is a protoactor membership provider with a check that can fail
// cleanly before protoactor (which panics on provider errors) starts it.
type provider interface {
	protocluster.ClusterProvider
	precheck(ctx context.Context) error
	name() string
	// memberID is the id under which the provider lists this member.
	memberID(c *protocluster.Cluster) string
}

func newProvider(cfg Config, host string, port int) (provider, error) {
	switch {
	case len(cfg.Etcd) > 0:
		return newEtcdProvider(cfg.Etcd)
	case len(cfg.Peers) > 0:
		return newStaticProvider(cfg.Peers, host, port)
	default:
		return singleProvider{}, nil
	}
}

func (singleProvider) precheck(context.Context) error { return nil }
func (singleProvider) name() string                   { return "single" }

func (singleProvider) memberID(c *protocluster.Cluster) string { return c.ActorSystem.ID }

// staticProvider is protoactor's automanaged provider: every member polls
// the health endpoint of every listed member. Its health server is ours, on
// the cluster host rather than 0.0.0.0, and fails cleanly when its port is
// taken.
type staticProvider struct {
	*automanaged.AutoManagedProvider
	ln net.Listener
	c  atomic.Pointer[protocluster.Cluster]
}

// healthAddr returns the health endpoint of the member at cluster address
// addr.
func healthAddr(addr string) (string, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("peer %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port+HealthPortOffset > 65535 {
		return "", fmt.Errorf("peer %q: the port must be a fixed port below 65535", addr)
	}
	return net.JoinHostPort(host, strconv.Itoa(port+HealthPortOffset)), nil
}

func newStaticProvider(peers []string, host string, port int) (*staticProvider, error) {
	if port == 0 {
		return nil, errors.New("--peers needs a fixed port in --cluster-addr (the health endpoint uses port+1)")
	}
	self := net.JoinHostPort(host, strconv.Itoa(port))
	selfHealth, err := healthAddr(self)
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, p := range peers {
		h, err := healthAddr(p)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	if !slices.Contains(hosts, selfHealth) {
		hosts = append(hosts, selfHealth)
	}
	ln, err := net.Listen("tcp", selfHealth)
	if err != nil {
		return nil, fmt.Errorf("membership health endpoint: %w", err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Listener = ln
	p := &staticProvider{ln: ln}
	p.AutoManagedProvider = automanaged.NewWithTesting(DefaultPeerRefresh, port+HealthPortOffset, e, hosts...)
	e.GET("/_health", func(ec echo.Context) error {
		return ec.JSON(http.StatusOK, p.node())
	})
	return p, nil
}

// node describes this member as automanaged's health endpoint does.
func (p *staticProvider) node() *automanaged.NodeModel {
	c := p.c.Load()
	if c == nil {
		return nil
	}
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return nil
	}
	return automanaged.NewNode(c.Config.Name, c.ActorSystem.ID, host, port, port+HealthPortOffset, c.GetClusterKinds())
}

func (p *staticProvider) StartMember(c *protocluster.Cluster) error {
	p.c.Store(c)
	return p.AutoManagedProvider.StartMember(c)
}

func (p *staticProvider) Shutdown(graceful bool) error {
	err := p.AutoManagedProvider.Shutdown(graceful)
	_ = p.ln.Close() // closed already by the provider's echo, normally
	return err
}

func (p *staticProvider) precheck(context.Context) error { return nil }
func (p *staticProvider) name() string                   { return "static" }

func (p *staticProvider) memberID(c *protocluster.Cluster) string { return c.ActorSystem.ID }

// etcdProvider is protoactor's etcd provider, with a reachability check
// first (the provider itself would block forever on an etcd that is down)
// and a second announcement of the member (see touchSelf).
type etcdProvider struct {
	*etcd.Provider
	endpoints []string

	stopTouch context.CancelFunc
	touchDone chan struct{}
}

// touchDelays are when, after joining, a member writes its registration
// again.
var touchDelays = []time.Duration{time.Second, 3 * time.Second}

func (p *etcdProvider) StartMember(c *protocluster.Cluster) error {
	if err := p.Provider.StartMember(c); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stopTouch, p.touchDone = cancel, make(chan struct{})
	go p.touchSelf(ctx, p.memberID(c))
	return nil
}

func (p *etcdProvider) Shutdown(graceful bool) error {
	if p.stopTouch != nil {
		p.stopTouch()
		<-p.touchDone
	}
	return p.Provider.Shutdown(graceful)
}

// touchSelf writes this member's registration again, unchanged, a little
// after it joined. protoactor's etcd provider lists the members and starts
// its watch a moment later from the current revision, not from the one it
// listed: a member that registers in between is never seen by that watcher
// (a 3-node test saw it: one node kept a 2-member view and could reach no
// topic). The same key written again is an event for every watcher, so a
// node that missed the registration learns of the member then.
func (p *etcdProvider) touchSelf(ctx context.Context, id string) {
	defer close(p.touchDone)
	cli, err := clientv3.New(etcdConfig(p.endpoints))
	if err != nil {
		return
	}
	defer cli.Close()
	for _, d := range touchDelays {
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		resp, err := cli.Get(ctx, EtcdPrefix, clientv3.WithPrefix())
		if err != nil {
			continue // etcd is away; the provider's keepalive deals with it
		}
		for _, kv := range resp.Kvs {
			var n etcd.Node
			if n.Deserialize(kv.Value) != nil || n.ID != id || kv.Lease == 0 {
				continue
			}
			_, _ = cli.Put(ctx, string(kv.Key), string(kv.Value), clientv3.WithLease(clientv3.LeaseID(kv.Lease)))
		}
	}
}

func etcdConfig(endpoints []string) clientv3.Config {
	return clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
}

func newEtcdProvider(endpoints []string) (*etcdProvider, error) {
	p, err := etcd.NewWithConfig(EtcdPrefix, etcdConfig(endpoints))
	if err != nil {
		return nil, fmt.Errorf("etcd %v: %w", endpoints, err)
	}
	return &etcdProvider{Provider: p, endpoints: endpoints}, nil
}

func (p *etcdProvider) precheck(ctx context.Context) error {
	cli, err := clientv3.New(etcdConfig(p.endpoints))
	if err != nil {
		return fmt.Errorf("etcd %v: %w", p.endpoints, err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, EtcdPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd %v is not reachable: %w", p.endpoints, err)
	}
	return nil
}

func (p *etcdProvider) name() string { return "etcd" }

// memberID is what protoactor's etcd provider registers: cluster@system id.
func (p *etcdProvider) memberID(c *protocluster.Cluster) string {
	return c.Config.Name + "@" + c.ActorSystem.ID
}

// closableStore is a HistoryStore the node closes.
type closableStore interface {
	actors.HistoryStore
	Close()
}

// newStore opens the Redis store of cfg, nil without one; its failures
// count in m.StoreErrors.
func newStore(cfg Config, m *transport.NodeMetrics) (closableStore, error) {
	if cfg.Redis == "" {
		return nil, nil
	}
	ttl := cfg.Topic.HistoryTTL
	if ttl == 0 {
		ttl = actors.DefaultHistoryTTL
	}
	size := cfg.Topic.HistorySize
	if size == 0 {
		size = actors.DefaultHistorySize
	}
	// The store's bounds are caps for every topic: the largest any
	// namespace asks for. Each topic actor trims its own stream to its
	// namespace's size and age (the minSeq of Append and Trim).
	for _, n := range cfg.Topic.Namespaces {
		size, ttl = max(size, n.HistorySize), max(ttl, n.HistoryTTL)
	}
	keyTTL := cfg.Topic.KeyTTL
	if keyTTL == 0 {
		keyTTL = actors.DefaultKeyTTL
	}
	s, err := redisstore.New(redisstore.Config{URL: cfg.Redis, HistorySize: size, HistoryTTL: ttl, KeyTTL: keyTTL})
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	// A node restarted during a Redis outage comes up anyway: its topics
	// answer "unavailable" until Redis is back, as a running node's do.
	if err := s.Ping(context.Background()); err != nil {
		cfg.Logger.Warn("redis does not answer: topics answer unavailable until it does", slog.Any("err", err))
	}
	return countingStore{s, m}, nil
}

// countingStore counts its store's failures in NodeMetrics.StoreErrors, for
// /metrics: topics answer "unavailable" while Redis is down, and operators
// need to see why.
type countingStore struct {
	*redisstore.Store
	m *transport.NodeMetrics
}

var _ closableStore = countingStore{}

// count counts err unless it is none, a fence (a newer activation took the
// topic: the cluster working, not the store failing), repeated idempotency
// keys (an answer, not a failure) or a cancellation.
func (s countingStore) count(err error) error {
	var dup *actors.DuplicateKeysError
	if err != nil && !errors.Is(err, actors.ErrFenced) && !errors.As(err, &dup) && !errors.Is(err, context.Canceled) {
		s.m.StoreErrors.Add(1)
	}
	return err
}

func (s countingStore) Open(ctx context.Context, topic, newEpoch string, limit int, minAt int64) (*actors.TopicState, error) {
	st, err := s.Store.Open(ctx, topic, newEpoch, limit, minAt)
	return st, s.count(err)
}

func (s countingStore) Append(ctx context.Context, topic string, fence uint64, msgs []actors.StoredMessage, minSeq uint64) error {
	return s.count(s.Store.Append(ctx, topic, fence, msgs, minSeq))
}

func (s countingStore) Fence(ctx context.Context, topic string) (uint64, error) {
	f, err := s.Store.Fence(ctx, topic)
	return f, s.count(err)
}

func (s countingStore) Trim(ctx context.Context, topic string, fence uint64, minSeq uint64) error {
	return s.count(s.Store.Trim(ctx, topic, fence, minSeq))
}

// libHandler quiets protoactor messages that repeat at every refresh while
// a peer is down (the node logs membership changes itself).
type libHandler struct{ slog.Handler }

var quietMessages = map[string]bool{
	"Failure reaching nodes":                   true,
	"Bad connection to the node health status": true,
	"Automanaged server stopping..!":           true,
	"Failed to keepWatching.":                  true,
	"Failure watching service.":                true,
	// A peer that died: the membership change is logged instead.
	"EndpointWriter lost connection":                 true,
	"EndpointWriter failed to create receive stream": true,
	"EndpointWriter failed to connect":               true,
	"sendGossipForMember failed":                     true,
}

func (h libHandler) Handle(ctx context.Context, r slog.Record) error {
	if quietMessages[r.Message] {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h libHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return libHandler{h.Handler.WithAttrs(attrs)}
}

func (h libHandler) WithGroup(name string) slog.Handler { return libHandler{h.Handler.WithGroup(name)} }
