package actors

import (
	"errors"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// ErrNoTopicActor is returned when a topic's actor cannot be found or started
// (in a cluster: no member can host it right now).
var ErrNoTopicActor = errors.New("topicast: topic actor unavailable")

// TopicRouter finds the actor of a topic, wherever it lives, starting it if
// needed. The cluster package implements it with protoactor grains;
// LocalTopics implements it within one actor system.
type TopicRouter interface {
	TopicPID(topic string) (*actor.PID, error)
}

// ClusterRouter is a TopicRouter over a cluster, where TopicPID may block
// for a round trip (or until a timeout when a member is down) and answers
// from a cache. Relays use its extra methods to stay off blocking calls and
// to follow a topic that moves. Implementations are goroutine-safe.
type ClusterRouter interface {
	TopicRouter
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

// LocalTopics is a TopicRouter that spawns topic actors in one actor system,
// without a cluster. It is goroutine-safe.
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
