package actors

import (
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/topicast/topicast/transport"
)

// Relays is a node's registry of relay actors, one per topic with local
// subscribers. It is goroutine-safe.
//
// A relay stops when its last subscriber leaves. To never lose a message sent
// to a relay that is stopping, every message goes through Send, which counts
// it; a relay stops only when it has handled every message counted for it
// (see tryRemove).
type Relays struct {
	system *actor.ActorSystem
	props  *actor.Props
	// prefix starts every relay's actor id. It is random per registry, so a
	// node restarted at the same address never reuses the id of a relay of
	// its former process, to which a topic may still deliver.
	prefix string

	mu sync.Mutex
	m  map[string]*relayEntry
}

type relayEntry struct {
	pid  *actor.PID
	sent uint64
}

// RelayConfig configures relay actors.
type RelayConfig struct {
	// JoinTimeout is how long a relay waits for a topic to answer a join
	// before it retries. Zero means DefaultJoinTimeout.
	JoinTimeout time.Duration
	// Metrics are the node's counters (transport.NodeState's), where relays
	// count the subscriptions of their topic. Nil means counters of their
	// own, which no one reads.
	Metrics *transport.NodeMetrics
	Logger  *slog.Logger
}

// NewRelays returns an empty registry whose relays reach topics through router.
func NewRelays(system *actor.ActorSystem, router TopicRouter, cfg RelayConfig) *Relays {
	if cfg.JoinTimeout == 0 {
		cfg.JoinTimeout = DefaultJoinTimeout
	}
	if cfg.Metrics == nil {
		cfg.Metrics = new(transport.NodeMetrics)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Relays{system: system, m: make(map[string]*relayEntry), prefix: "relay-" + NewEpoch()}
	r.props = actor.PropsFromProducer(func() actor.Actor {
		return &relayActor{relays: r, router: router, cfg: cfg}
	})
	return r
}

// Len returns the number of live relays.
func (r *Relays) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// relayFlush asks a relay to answer once it has handled what came before.
type relayFlush struct{}

// Flush waits until every relay has handed on the deliveries that reached it
// before the call, or until timeout. A draining node calls it after the last
// publish was answered and before it closes the sessions, so no message that
// a publisher was told about is lost to the close.
func (r *Relays) Flush(timeout time.Duration) {
	r.mu.Lock()
	futures := make([]*actor.Future, 0, len(r.m))
	for _, e := range r.m {
		futures = append(futures, r.system.Root.RequestFuture(e.pid, &relayFlush{}, timeout))
	}
	r.mu.Unlock()
	for _, f := range futures {
		_, _ = f.Result() // a relay that stopped meanwhile has nothing left to hand on
	}
}

// send delivers msg to the relay of topic, starting one if needed.
func (r *Relays) send(topic string, msg any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.m[topic]
	if e == nil {
		e = &relayEntry{pid: r.system.Root.SpawnPrefix(r.props, r.prefix)}
		r.m[topic] = e
		// The first message names the topic.
		r.system.Root.Send(e.pid, &relayInit{topic: topic})
	}
	e.sent++
	r.system.Root.Send(e.pid, msg)
}

// relayCheckTick asks a relay to check its registration if it heard nothing
// from its topic since the previous tick.
type relayCheckTick struct{}

// StartChecks makes every relay that has subscribers, and heard nothing from
// its topic for an interval, ask the topic whether it still delivers to it
// and what its head is (a JoinRequest with check set, answered only when
// something is wrong). It bounds how long a relay can miss messages without
// knowing: a registration lost with a broken connection, or the last
// deliveries before a quiet spell lost with it. The returned function stops
// the checks and waits for the goroutine that drives them.
func (r *Relays) StartChecks(interval time.Duration) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.Broadcast(&relayCheckTick{})
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		<-exited
	}
}

// Broadcast sends msg to every live relay (TopologyChanged, for one).
func (r *Relays) Broadcast(msg any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.m {
		r.system.Root.Send(e.pid, msg)
	}
}

// tryRemove unregisters the relay if it has handled every message sent to
// it, in which case it may stop.
func (r *Relays) tryRemove(topic string, pid *actor.PID, handled uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.m[topic]
	if e == nil || !e.pid.Equal(pid) || e.sent != handled {
		return false
	}
	delete(r.m, topic)
	return true
}
