package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/sdk/wire"
)

// ErrNoTopicActor is returned when a topic's actor cannot be found or started
// (in a cluster: no member can host it right now).
var ErrNoTopicActor = errors.New("topicast: topic actor unavailable")

// TopicRouter finds the actor of a topic, wherever it lives, starting it if
// needed. TopicPID may block for a round trip (or until a timeout when a
// member is down) and answers from a cache; relays use the other methods to
// stay off blocking calls and to follow a topic that moves. The cluster
// package implements it over protoactor grains (one node is a cluster of
// one); LocalTopics implements it in one actor system without remoting.
// Implementations are goroutine-safe.
type TopicRouter interface {
	TopicPID(topic string) (*actor.PID, error)
	// CachedTopicPID returns the topic's actor if it is known without
	// asking anyone.
	CachedTopicPID(topic string) (*actor.PID, bool)
	// ForgetTopicPID drops pid from the cache: it stopped or does not answer.
	ForgetTopicPID(topic string, pid *actor.PID)
	// TopicOwner returns the address of the member that owns topic in the
	// current membership, or "" when there is none.
	TopicOwner(topic string) string
}

// TopologyChanged tells relays that the cluster's membership changed: each
// checks whether its topic moved and, if so, joins it again where it lives
// now.
type TopologyChanged struct{}

// LocalTopics is a TopicRouter that spawns topic actors in one actor system
// without remoting: a cluster of one whose lookups never block. Tests of
// this package and test/ use it where a second clustered node cannot run
// (protoactor's remoting sets process-global gRPC state); relays take the
// same paths with it as with the cluster's router. It is goroutine-safe.
type LocalTopics struct {
	system *actor.ActorSystem
	props  *actor.Props

	mu   sync.Mutex
	pids map[string]*actor.PID
}

// NewLocalTopics returns a router whose topic actors use cfg.
func NewLocalTopics(system *actor.ActorSystem, cfg TopicConfig) *LocalTopics {
	l := &LocalTopics{system: system, pids: make(map[string]*actor.PID)}
	l.props = NewTopicProps(cfg, l.forget)
	return l
}

// TopicPID returns the topic's actor, spawning it if needed.
func (l *LocalTopics) TopicPID(topic string) (*actor.PID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if pid, ok := l.pids[topic]; ok {
		return pid, nil
	}
	pid := l.system.Root.Spawn(l.props)
	l.pids[topic] = pid
	return pid, nil
}

// CachedTopicPID returns the topic's actor if it is running.
func (l *LocalTopics) CachedTopicPID(topic string) (*actor.PID, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	pid, ok := l.pids[topic]
	return pid, ok
}

// ForgetTopicPID does nothing: a local actor does not move, and the table
// drops it when it stops (a second actor for a live topic would fork it).
func (l *LocalTopics) ForgetTopicPID(string, *actor.PID) {}

// TopicOwner returns the actor system's address: it owns every topic.
func (l *LocalTopics) TopicOwner(string) string { return l.system.Address() }

// Len returns the number of live topic actors.
func (l *LocalTopics) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pids)
}

func (l *LocalTopics) forget(topic string, pid *actor.PID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.pids[topic]; ok && cur.Equal(pid) {
		delete(l.pids, topic)
	}
}

var (
	_ Publisher      = (*LocalTopics)(nil)
	_ TopicRouter    = (*LocalTopics)(nil)
	_ PresenceReader = (*LocalTopics)(nil)
)

// Presence asks the topic actor who is in the topic.
func (l *LocalTopics) Presence(ctx context.Context, topic string, limit int) (*wire.Presence, error) {
	timeout := DefaultRequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	pid, _ := l.TopicPID(topic) // never fails
	res, err := l.system.Root.RequestFuture(pid, &actorpb.PresenceRequest{Topic: topic, Limit: uint32(max(limit, 0))}, timeout).Result()
	r, ok := res.(*actorpb.PresenceResponse)
	if err != nil || !ok || r.Retry {
		return nil, wire.Errorf(wire.CodeUnavailable, "topic %s did not answer: %v", topic, err)
	}
	return DecodePresence(topic, r)
}

// Publish publishes items in order, one request per run of items to one
// topic, asking again when a topic actor stopped between lookup and send.
func (l *LocalTopics) Publish(ctx context.Context, items []wire.PublishItem) ([]wire.PublishResult, error) {
	timeout := DefaultRequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	results := make([]wire.PublishResult, 0, len(items))
	for len(items) > 0 {
		n := 1
		for n < len(items) && items[n].Topic == items[0].Topic {
			n++
		}
		req := &actorpb.PublishRequest{Topic: items[0].Topic}
		for _, it := range items[:n] {
			req.Items = append(req.Items, &actorpb.PublishItem{Data: it.Data, Key: it.Key})
		}
		var res any
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			pid, _ := l.TopicPID(req.Topic) // never fails
			res, err = l.system.Root.RequestFuture(pid, req, timeout).Result()
			if !errors.Is(err, actor.ErrDeadLetter) {
				break
			}
		}
		r, ok := res.(*actorpb.PublishResponse)
		switch {
		case err != nil || !ok:
			return nil, wire.Errorf(wire.CodeUnavailable, "topic %s did not answer: %v", req.Topic, err)
		case r.Error != nil:
			return nil, &wire.Error{Code: wire.ErrorCode(r.Error.Code), Message: r.Error.Message}
		case len(r.Seqs) != n:
			return nil, fmt.Errorf("topic %s answered %d seqs for %d messages", req.Topic, len(r.Seqs), n)
		}
		for _, seq := range r.Seqs {
			results = append(results, wire.PublishResult{Topic: req.Topic, Epoch: r.Epoch, Seq: seq})
		}
		items = items[n:]
	}
	return results, nil
}
