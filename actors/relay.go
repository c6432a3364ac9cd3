package actors

import (
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/wire"
)

// DefaultJoinTimeout is how long a relay waits for a topic to answer a join
// before it retries.
const DefaultJoinTimeout = 5 * time.Second

// joinAttempts bounds the retries of one join before the subscriber gets
// an "unavailable" error.
const joinAttempts = 3

// ConnRef is how relays reach a connection: its session, written to
// directly, and its actor, told about subscription failures.
type ConnRef struct {
	Session transport.Session
	PID     *actor.PID
}

// relaySubscribe asks a relay to add a connection (from the connection actor,
// through Relays).
type relaySubscribe struct {
	conn     *ConnRef
	id       uint64
	since    *wire.Position
	datagram bool
}

// relayUnsubscribe asks a relay to remove a connection, and to answer the
// client's unsub (id) when reply is set.
type relayUnsubscribe struct {
	conn  *ConnRef
	id    uint64
	reply bool
}

// SubscribeFailed tells a connection actor that a subscription could not be
// made; the relay has already sent the error frame.
type SubscribeFailed struct{ Topic string }

// joinRetry fires when a join has waited too long.
type joinRetry struct{ tag uint64 }

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
	Logger      *slog.Logger
}

// NewRelays returns an empty registry whose relays reach topics through router.
func NewRelays(system *actor.ActorSystem, router TopicRouter, cfg RelayConfig) *Relays {
	if cfg.JoinTimeout == 0 {
		cfg.JoinTimeout = DefaultJoinTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Relays{system: system, m: make(map[string]*relayEntry)}
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

// send delivers msg to the relay of topic, starting one if needed.
func (r *Relays) send(topic string, msg any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.m[topic]
	if e == nil {
		e = &relayEntry{pid: r.system.Root.Spawn(r.props)}
		r.m[topic] = e
		// The first message names the topic.
		r.system.Root.Send(e.pid, &relayInit{topic: topic})
	}
	e.sent++
	r.system.Root.Send(e.pid, msg)
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

type relayInit struct{ topic string }

type relaySub struct {
	conn     *ConnRef
	datagram bool
}

type pendingJoin struct {
	sub      relaySub
	id       uint64
	since    *wire.Position
	attempts int
	timer    *time.Timer
}

// relayActor hands a topic's deliveries to the node's subscribed sessions.
type relayActor struct {
	relays *Relays
	router TopicRouter
	cfg    RelayConfig

	topic   string
	handled uint64 // messages counted by Relays.send that this relay handled
	subs    []relaySub
	pending map[uint64]*pendingJoin
	nextTag uint64
	topicID *actor.PID // the topic actor the relay joined last
	epoch   string
	lastSeq uint64
}

func (a *relayActor) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *relayInit:
		a.topic = msg.topic
		a.pending = make(map[uint64]*pendingJoin)
	case *relaySubscribe:
		a.handled++
		a.onSubscribe(c, msg)
	case *relayUnsubscribe:
		a.handled++
		a.onUnsubscribe(c, msg)
	case *actorpb.Delivery:
		a.onDelivery(msg)
	case *actorpb.JoinResponse:
		a.onJoined(c, msg)
	case *joinRetry:
		a.onJoinRetry(c, msg)
	case *actor.DeadLetterResponse:
		// A join reached a topic actor that had stopped: ask again at once.
		for tag := range a.pending {
			a.onJoinRetry(c, &joinRetry{tag: tag})
		}
	case *actor.Stopped:
		for _, p := range a.pending {
			p.timer.Stop()
		}
	}
}

func (a *relayActor) onSubscribe(c actor.Context, msg *relaySubscribe) {
	a.nextTag++
	p := &pendingJoin{sub: relaySub{conn: msg.conn, datagram: msg.datagram}, id: msg.id, since: msg.since}
	a.pending[a.nextTag] = p
	a.sendJoin(c, a.nextTag, p)
}

func (a *relayActor) sendJoin(c actor.Context, tag uint64, p *pendingJoin) {
	p.attempts++
	req := &actorpb.JoinRequest{Topic: a.topic, Relay: c.Self(), Tag: tag}
	if p.since != nil {
		req.Since = &actorpb.Position{Epoch: p.since.Epoch, Seq: p.since.Seq}
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	self, root := c.Self(), c.ActorSystem().Root
	p.timer = time.AfterFunc(a.cfg.JoinTimeout, func() { root.Send(self, &joinRetry{tag: tag}) })
	pid, err := a.router.TopicPID(a.topic)
	if err != nil {
		return // the timer retries
	}
	a.topicID = pid
	c.Request(pid, req)
}

func (a *relayActor) onJoinRetry(c actor.Context, msg *joinRetry) {
	p := a.pending[msg.tag]
	if p == nil {
		return
	}
	if p.attempts >= joinAttempts {
		delete(a.pending, msg.tag)
		p.timer.Stop()
		e := &wire.Error{Code: wire.CodeUnavailable, Message: "topic " + a.topic + " is unavailable, try again", ID: p.id}
		_ = p.sub.conn.Session.Write(wire.AppendError(nil, e)) // a closed session needs no error
		c.Send(p.sub.conn.PID, &SubscribeFailed{Topic: a.topic})
		a.maybeStop(c)
		return
	}
	a.sendJoin(c, msg.tag, p)
}

func (a *relayActor) onJoined(c actor.Context, msg *actorpb.JoinResponse) {
	if a.epoch != "" && msg.Epoch != a.epoch && len(a.subs) > 0 {
		// The topic restarted in a new epoch: existing subscribers must know.
		a.resetAll(msg.Epoch, msg.Head)
	}
	a.epoch, a.lastSeq = msg.Epoch, msg.Head
	p := a.pending[msg.Tag]
	if p == nil {
		return // unsubscribed while joining
	}
	delete(a.pending, msg.Tag)
	p.timer.Stop()
	rec := wire.RecoveryNone
	if p.since != nil {
		rec = wire.NotRecovered
		if msg.Recovered {
			rec = wire.Recovered
		}
	}
	ok := wire.AppendSubOK(nil, p.id, a.topic, msg.Epoch, msg.Head, rec)
	if rec == wire.Recovered && len(msg.Frames) > 0 {
		frames := make([][]byte, 0, 1+len(msg.Frames))
		frames = append(append(frames, ok), msg.Frames...)
		if p.sub.conn.Session.WriteBacklog(frames) != nil {
			return // the session closed; its actor unsubscribes
		}
	} else if p.sub.conn.Session.Write(ok) != nil {
		return
	}
	a.subs = append(a.subs, p.sub)
}

func (a *relayActor) resetAll(epoch string, head uint64) {
	frame := wire.AppendReset(nil, a.topic, epoch, head)
	for _, s := range a.subs {
		_ = s.conn.Session.Write(frame) // a failed write closes the session itself
	}
}

func (a *relayActor) onDelivery(d *actorpb.Delivery) {
	if len(d.Frames) == 0 {
		return
	}
	if d.Epoch != a.epoch {
		if a.epoch != "" {
			a.resetAll(d.Epoch, d.FirstSeq-1)
		}
		a.epoch = d.Epoch
	}
	a.lastSeq = d.FirstSeq + uint64(len(d.Frames)) - 1
	for _, s := range a.subs {
		if s.datagram {
			if ds, ok := s.conn.Session.(transport.DatagramSession); ok {
				// Latest wins: only the newest frame of the batch matters.
				if sent, err := ds.WriteDatagram(d.Frames[len(d.Frames)-1]); sent || err != nil {
					continue
				}
			}
		}
		if len(d.Frames) == 1 {
			_ = s.conn.Session.Write(d.Frames[0]) // a failed write closes the session itself
		} else {
			_ = s.conn.Session.WriteMany(d.Frames)
		}
	}
}

func (a *relayActor) onUnsubscribe(c actor.Context, msg *relayUnsubscribe) {
	removed := false
	for i, s := range a.subs {
		if s.conn == msg.conn {
			last := len(a.subs) - 1
			a.subs[i] = a.subs[last]
			a.subs[last] = relaySub{}
			a.subs = a.subs[:last]
			removed = true
			break
		}
	}
	if !removed {
		for tag, p := range a.pending {
			if p.sub.conn == msg.conn {
				p.timer.Stop()
				delete(a.pending, tag)
			}
		}
	}
	if msg.reply {
		_ = msg.conn.Session.Write(wire.AppendOK(nil, msg.id))
	}
	a.maybeStop(c)
}

// maybeStop leaves the topic and stops once nobody on this node needs it.
func (a *relayActor) maybeStop(c actor.Context) {
	if len(a.subs) > 0 || len(a.pending) > 0 {
		return
	}
	if !a.relays.tryRemove(a.topic, c.Self(), a.handled) {
		return // a subscribe is on its way; it will be handled next
	}
	if a.topicID != nil {
		c.Send(a.topicID, &actorpb.LeaveRequest{Topic: a.topic, Relay: c.Self()})
	}
	c.Stop(c.Self())
}
