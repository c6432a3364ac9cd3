package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// DefaultJoinTimeout is how long a relay waits for a topic to answer a join
// before it retries.
const DefaultJoinTimeout = 5 * time.Second

// DefaultCheckInterval is how often relays that heard nothing from their
// topic since the last time ask it whether they are still registered and
// up to date (see StartChecks).
const DefaultCheckInterval = 2 * time.Second

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
	latest   bool
	delta    bool
	presence bool
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

// retryAfterStale fires when a relay that a stale activation sent away may
// look the topic up again.
type retryAfterStale struct{ gen uint64 }

// Backoff of the joins that activations answered "retry": the first comes
// at once (a stale activation: the topic lives elsewhere), then from
// staleRetryFirst, doubling up to the join timeout (a store that is down
// would otherwise be asked in a loop).
const staleRetryFirst = 100 * time.Millisecond

// topicResolved carries the result of a lookup made off the relay's
// goroutine.
type topicResolved struct {
	gen uint64
	pid *actor.PID
	err error
}

type relayInit struct{ topic string }

// pendingJoin is a join in flight: for a connection, or (conn nil) the
// relay's own rejoin.
type pendingJoin struct {
	sub      relaySub
	id       uint64
	since    *wire.Position
	attempts int
	timer    *time.Timer
	waiting  bool // not sent yet: the topic's actor is being looked up
}

// relayActor hands a topic's deliveries to the node's subscribed sessions.
//
// Its subscribers share one position, (epoch, lastSeq): each of them has
// been written every message of epoch up to lastSeq. The relay keeps it
// gapless: a delivery that does not follow it, a stopped topic actor, or a
// topology change that moves the topic makes the relay join again with its
// position (a rejoin), and the answer either fills the gap (recovered) or
// tells every subscriber with a reset frame. Never a silent gap, never a
// duplicate.
type relayActor struct {
	relays *Relays
	router TopicRouter
	cfg    RelayConfig

	topic   string
	handled uint64 // messages counted by Relays.send that this relay handled
	subs    subSet
	members relayMembers
	// view is what the presence subscribers were told, kept while there
	// are any (presenceSubs counts them).
	view         relayView
	presenceSubs int
	deltas       relayDeltas
	pending      map[uint64]*pendingJoin // by the tag of its latest send
	nextTag      uint64

	// The subscribers' position; hasPos once a join was answered.
	epoch   string
	lastSeq uint64
	hasPos  bool

	registered *actor.PID    // the activation that answered the latest join; watched
	regTag     uint64        // the tag of that join
	heard      bool          // a delivery or join answer came since the last check tick
	staleWait  time.Duration // backoff of joins answered "retry"; 0 after a join succeeds
	staleTimer *time.Timer
	checkTag   uint64     // the tag of the check in flight, if any
	target     *actor.PID // where joins go; nil until looked up
	resolving  bool
	gen        uint64 // bumps when target is dropped, to ignore older lookups
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
	case *relayEnter:
		a.handled++
		a.onEnter(c, msg)
	case *relayLeave:
		a.handled++
		a.onLeave(c, msg)
	case *actorpb.PresenceEvents:
		a.heard = true
		a.onPresenceEvents(msg)
	case *actorpb.Delivery:
		a.heard = true
		a.onDelivery(c, msg)
	case *actorpb.JoinResponse:
		a.heard = true
		a.onJoined(c, msg)
	case *relayCheckTick:
		a.onCheckTick(c)
	case *actorpb.RelayDropped:
		a.onDropped(c, msg)
	case *relayFlush:
		// Every delivery that reached this relay before the flush has been
		// handed to the sessions' queues by now.
		c.Respond(msg)
	case *joinRetry:
		a.onJoinRetry(c, msg)
	case *retryAfterStale:
		if msg.gen == a.gen {
			a.moved(c, nil)
		}
	case *topicResolved:
		a.onResolved(c, msg)
	case *TopologyChanged:
		a.onTopologyChanged(c)
	case *actor.Terminated:
		if a.registered != nil && msg.Who.Equal(a.registered) {
			// The topic actor stopped (it moved, passivated, was fenced out,
			// or its node died): join wherever it lives now.
			a.registered = nil
			a.members.synced = nil
			a.view.of = nil // what it sent meanwhile is lost: compare again
			a.moved(c, msg.Who)
		}
	case *actor.DeadLetterResponse:
		// A join reached no actor: look the topic up again and resend.
		if msg.Target == nil || a.target == nil || msg.Target.Equal(a.target) {
			a.moved(c, a.target)
		}
	case *actorpb.PresenceSnapshot:
		a.onPresenceSnapshot(msg)
	case *snapshotDue:
		a.onSnapshotDue(c, msg)
	case *actor.Stopped:
		a.view.reset()
		for _, p := range a.pending {
			p.timer.Stop()
		}
		if a.staleTimer != nil {
			a.staleTimer.Stop()
		}
	}
}

func (a *relayActor) onSubscribe(c actor.Context, msg *relaySubscribe) {
	p := &pendingJoin{sub: relaySub{conn: msg.conn, datagram: msg.datagram, latest: msg.latest, delta: msg.delta,
		presence: msg.presence}, id: msg.id, since: msg.since}
	a.sendJoin(c, p)
}

// requestRejoin starts the relay's own join, unless one is in flight.
func (a *relayActor) requestRejoin(c actor.Context) {
	for _, p := range a.pending {
		if p.sub.conn == nil {
			return
		}
	}
	a.sendJoin(c, &pendingJoin{})
}

// sendJoin (re)sends p's join under a fresh tag: an answer to an older send
// is then recognized as stale.
func (a *relayActor) sendJoin(c actor.Context, p *pendingJoin) {
	for tag, q := range a.pending {
		if q == p {
			delete(a.pending, tag)
		}
	}
	a.nextTag++
	tag := a.nextTag
	a.pending[tag] = p
	p.attempts++
	if p.timer != nil {
		p.timer.Stop()
	}
	self, root := c.Self(), c.ActorSystem().Root
	p.timer = time.AfterFunc(a.cfg.JoinTimeout, func() { root.Send(self, &joinRetry{tag: tag}) })
	pid := a.targetPID(c)
	if pid == nil {
		p.waiting = true // sent once the lookup answers, or retried by the timer
		return
	}
	p.waiting = false
	c.Request(pid, a.joinRequest(c, tag, p))
}

func (a *relayActor) joinRequest(c actor.Context, tag uint64, p *pendingJoin) *actorpb.JoinRequest {
	req := &actorpb.JoinRequest{Topic: a.topic, Relay: c.Self(), Tag: tag, Rejoin: p.sub.conn == nil}
	if p.since != nil {
		req.Since = &actorpb.Position{Epoch: p.since.Epoch, Seq: p.since.Seq}
	}
	if a.hasPos && a.subs.len() > 0 {
		req.RelaySince = &actorpb.Position{Epoch: a.epoch, Seq: a.lastSeq}
	}
	return req
}

// targetPID returns where joins go, or nil while it is being looked up.
func (a *relayActor) targetPID(c actor.Context) *actor.PID {
	if a.target != nil {
		return a.target
	}
	if pid, ok := a.router.CachedTopicPID(a.topic); ok {
		a.target = pid
		return pid
	}
	if !a.resolving {
		a.resolving = true
		gen, topic, router := a.gen, a.topic, a.router
		self, root := c.Self(), c.ActorSystem().Root
		// The lookup may wait for a member to answer: never on the relay's
		// goroutine. It ends within the cluster's request timeout.
		go func() {
			pid, err := router.TopicPID(topic)
			root.Send(self, &topicResolved{gen: gen, pid: pid, err: err})
		}()
	}
	return nil
}

func (a *relayActor) onResolved(c actor.Context, msg *topicResolved) {
	if msg.gen != a.gen {
		return
	}
	a.resolving = false
	if msg.err != nil || msg.pid == nil {
		return // the joins' timers retry
	}
	a.target = msg.pid
	for tag, p := range a.pending {
		if p.waiting {
			p.waiting = false
			c.Request(msg.pid, a.joinRequest(c, tag, p))
		}
	}
}

// moved drops the join target (old, if known, is forgotten by the lookup),
// and sends every join again; with subscribers, the relay rejoins.
func (a *relayActor) moved(c actor.Context, old *actor.PID) {
	if old != nil {
		a.router.ForgetTopicPID(a.topic, old)
	}
	a.target = nil
	a.resolving = false
	a.gen++
	a.checkTag = 0
	a.resendJoins(c)
}

// resendJoins sends every pending join again and, with subscribers, makes
// the relay rejoin.
func (a *relayActor) resendJoins(c actor.Context) {
	resend := make([]*pendingJoin, 0, len(a.pending))
	for _, p := range a.pending {
		resend = append(resend, p)
	}
	for _, p := range resend {
		a.sendJoin(c, p)
	}
	if a.needed() {
		a.requestRejoin(c)
	}
}

// onCheckTick asks the registered activation whether it still delivers to
// this relay, if the relay heard nothing from it since the previous tick.
func (a *relayActor) onCheckTick(c actor.Context) {
	if a.heard {
		a.heard = false
		return
	}
	if !a.needed() || len(a.pending) > 0 {
		return // a join in flight answers with the head anyway
	}
	if a.registered == nil {
		// Unregistered with subscribers or members, and no join in flight
		// (the last one failed for good): try again.
		a.requestRejoin(c)
		return
	}
	if !a.hasPos {
		return
	}
	a.nextTag++
	a.checkTag = a.nextTag
	c.Request(a.registered, &actorpb.JoinRequest{Topic: a.topic, Relay: c.Self(), Tag: a.checkTag, Rejoin: true,
		Check: true, RelaySince: &actorpb.Position{Epoch: a.epoch, Seq: a.lastSeq}})
}

// onDropped joins again when the registered activation says it dropped this
// relay: joins it answered may have been lost too, so they go again.
func (a *relayActor) onDropped(c actor.Context, msg *actorpb.RelayDropped) {
	if a.registered == nil || !msg.Activation.Equal(a.registered) {
		return // an activation the relay has left already
	}
	a.checkTag = 0
	a.members.synced = nil // it dropped the relay's members with it
	a.view.of = nil        // and sent leaves the relay did not get
	a.resendJoins(c)
}

func (a *relayActor) onTopologyChanged(c actor.Context) {
	owner := a.router.TopicOwner(a.topic)
	cur := a.registered
	if cur == nil {
		cur = a.target
	}
	if cur == nil || owner == "" || owner == cur.Address {
		return
	}
	a.moved(c, cur)
}

func (a *relayActor) onJoinRetry(c actor.Context, msg *joinRetry) {
	p := a.pending[msg.tag]
	if p == nil {
		return
	}
	if p.sub.conn == nil {
		// The relay's own rejoin retries as long as it has subscribers or
		// members.
		if !a.needed() {
			delete(a.pending, msg.tag)
			a.maybeStop(c)
			return
		}
		a.forgetTarget()
		a.sendJoin(c, p)
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
	a.forgetTarget()
	a.sendJoin(c, p)
}

// forgetTarget makes the next join look the topic up again: the target did
// not answer in time.
func (a *relayActor) forgetTarget() {
	if a.target != nil {
		a.router.ForgetTopicPID(a.topic, a.target)
	}
	a.target = nil
	a.resolving = false
	a.gen++
}

// register records the activation that answered a join: the relay watches
// it and leaves the one it was registered with before.
func (a *relayActor) register(c actor.Context, topic *actor.PID, tag uint64) {
	a.regTag = tag
	if topic == nil {
		return
	}
	a.target = topic
	if a.registered != nil && a.registered.Equal(topic) {
		return
	}
	if a.registered != nil {
		c.Unwatch(a.registered)
		c.Send(a.registered, &actorpb.LeaveRequest{Topic: a.topic, Relay: c.Self()})
	}
	a.registered = topic
	a.members.synced = nil // a new activation knows none of the relay's members
	c.Watch(topic)
}

func (a *relayActor) onJoined(c actor.Context, msg *actorpb.JoinResponse) {
	if msg.Retry {
		// A stale activation, or one whose store failed: join the topic
		// where it lives now, at once the first time, then backing off.
		if p := a.pending[msg.Tag]; p != nil || msg.Tag == a.checkTag {
			if msg.Topic != nil && a.registered != nil && msg.Topic.Equal(a.registered) {
				c.Unwatch(a.registered)
				a.registered = nil
				a.members.synced = nil
				a.view.of = nil
			}
			if a.staleWait == 0 {
				a.staleWait = staleRetryFirst
				a.moved(c, msg.Topic)
				return
			}
			if msg.Topic != nil {
				a.router.ForgetTopicPID(a.topic, msg.Topic)
			}
			a.target, a.resolving = nil, false
			a.gen++
			gen, self, root := a.gen, c.Self(), c.ActorSystem().Root
			if a.staleTimer != nil {
				a.staleTimer.Stop()
			}
			a.staleTimer = time.AfterFunc(a.staleWait, func() { root.Send(self, &retryAfterStale{gen: gen}) })
			a.staleWait = min(2*a.staleWait, a.cfg.JoinTimeout)
		}
		return
	}
	a.staleWait = 0
	p := a.pending[msg.Tag]
	if p == nil && msg.Tag == a.checkTag && msg.Tag != 0 {
		// The check found the relay unregistered or behind: the topic has
		// registered it and sent what it missed.
		a.checkTag = 0
		a.register(c, msg.Topic, msg.Tag)
		a.syncMembers(c, msg)
		a.catchUp(msg)
		return
	}
	if p == nil {
		// An answer to a join sent again since: the relay is registered
		// there too, so leave it unless it is the current activation.
		if msg.Topic != nil && a.registered != nil && !msg.Topic.Equal(a.registered) {
			c.Send(msg.Topic, &actorpb.LeaveRequest{Topic: a.topic, Relay: c.Self()})
		}
		a.syncMembers(c, msg)
		return
	}
	if msg.Topic != nil && a.registered != nil && !msg.Topic.Equal(a.registered) && msg.Tag < a.regTag {
		// An older activation answered after a newer one did: ask again.
		c.Send(msg.Topic, &actorpb.LeaveRequest{Topic: a.topic, Relay: c.Self()})
		a.sendJoin(c, p)
		return
	}
	delete(a.pending, msg.Tag)
	p.timer.Stop()
	a.register(c, msg.Topic, msg.Tag)
	a.syncMembers(c, msg)
	a.catchUp(msg)
	if p.sub.conn == nil {
		return // the relay's own rejoin
	}
	rec := wire.RecoveryNone
	if p.since != nil {
		rec = wire.NotRecovered
		if msg.Recovered {
			rec = wire.Recovered
		}
	}
	sess := p.sub.conn.Session
	ok := wire.AppendSubOK(nil, p.id, a.topic, msg.Epoch, msg.Head, rec)
	if rec == wire.Recovered && len(msg.Frames) > 0 {
		frames := make([][]byte, 0, 1+len(msg.Frames))
		frames = append(append(frames, ok), msg.Frames...)
		if sess.WriteBacklog(frames) != nil {
			return // the session closed; its actor unsubscribes
		}
	} else if sess.Write(ok) != nil {
		return
	}
	if msg.Epoch == a.epoch && msg.Head < a.lastSeq {
		// Cannot happen with one writer per topic; never leave a silent gap.
		if sess.Write(wire.AppendReset(nil, a.topic, a.epoch, a.lastSeq)) != nil {
			return
		}
	}
	a.cfg.Metrics.Subscribed(sess.Info().Transport, a.topic, 1)
	a.subs.add(p.sub)
	if p.sub.presence {
		a.presenceSubs++
		a.followView(c)
	}
	a.deltas.added(p.sub)
}

// catchUp brings the current subscribers to the head of a join's answer:
// with the missed messages if the topic still had them, else with a reset.
func (a *relayActor) catchUp(msg *actorpb.JoinResponse) {
	if a.subs.len() == 0 || !a.hasPos {
		a.epoch, a.lastSeq, a.hasPos = msg.Epoch, msg.Head, true
		return
	}
	if msg.Epoch == a.epoch {
		if msg.Head <= a.lastSeq {
			return // nothing missed: the deliveries came first
		}
		if msg.RelayRecovered {
			first := msg.Head - uint64(len(msg.RelayFrames)) + 1
			if first <= a.lastSeq+1 {
				a.writeAll(msg.RelayFrames[a.lastSeq+1-first:])
				a.lastSeq = msg.Head
				return
			}
		}
	}
	a.resetAll(msg.Epoch, msg.Head)
	a.epoch, a.lastSeq = msg.Epoch, msg.Head
}

func (a *relayActor) writeAll(frames [][]byte) {
	if len(frames) == 0 {
		return
	}
	for _, s := range a.subs.all() {
		if s.latest {
			a.writeLatest(s, frames)
			continue
		}
		_ = s.conn.Session.WriteMany(frames) // a failed write closes the session itself
	}
	a.deltas.wrote(frames)
}

// writeLatest hands frames to a latest-value subscriber one by one: each
// replaces the one before if it still waits, so a client that keeps up
// gets every message and one that does not the freshest.
func (a *relayActor) writeLatest(s relaySub, frames [][]byte) {
	ls := s.conn.Session.(transport.LatestSession)
	for _, f := range frames {
		if ls.WriteLatest(a.topic, f) != nil {
			return // closed
		}
	}
}

func (a *relayActor) resetAll(epoch string, head uint64) {
	a.deltas.forget()
	frame := wire.AppendReset(nil, a.topic, epoch, head)
	for _, s := range a.subs.all() {
		if s.latest {
			// No message of the new epoch may take the place of an old one
			// waiting ahead of the reset.
			_ = s.conn.Session.(transport.LatestSession).WriteLatestBarrier(a.topic, frame)
			continue
		}
		_ = s.conn.Session.Write(frame) // a failed write closes the session itself
	}
}

func (a *relayActor) onDelivery(c actor.Context, d *actorpb.Delivery) {
	n := uint64(len(d.Frames))
	if n == 0 || !a.hasPos {
		return // no join answered yet: the answer's head covers this
	}
	last := d.FirstSeq + n - 1
	if d.Epoch != a.epoch || d.FirstSeq > a.lastSeq+1 {
		// The topic restarted, or messages went missing: join again with
		// the position, which recovers them or resets.
		if a.subs.len() > 0 {
			a.requestRejoin(c)
		}
		return
	}
	if last <= a.lastSeq {
		return // already written (a join's answer carried them)
	}
	frames := d.Frames[a.lastSeq+1-d.FirstSeq:]
	a.lastSeq = last
	savedBased, savedFresh, deltas := a.deltas.prepare(a.topic, a.epoch, frames)
	saved := 0
	for _, s := range a.subs.all() {
		if s.delta && deltas {
			fs, n := a.deltas.framesFor(s, savedBased, savedFresh)
			saved += n
			_ = s.conn.Session.WriteMany(fs) // a failed write closes the session itself
			continue
		}
		if s.datagram {
			if ds, ok := s.conn.Session.(transport.DatagramSession); ok {
				// Latest wins: only the newest frame of the batch matters.
				if sent, err := ds.WriteDatagram(frames[len(frames)-1]); sent || err != nil {
					continue
				}
			}
		}
		if s.latest {
			a.writeLatest(s, frames)
			continue
		}
		if len(frames) == 1 {
			_ = s.conn.Session.Write(frames[0]) // a failed write closes the session itself
		} else {
			_ = s.conn.Session.WriteMany(frames)
		}
	}
	if saved > 0 {
		a.cfg.Metrics.DeltaBytesSaved.Add(uint64(saved))
	}
}

func (a *relayActor) onUnsubscribe(c actor.Context, msg *relayUnsubscribe) {
	if sub, removed := a.subs.remove(msg.conn); removed {
		if sub.presence {
			if a.presenceSubs--; a.presenceSubs == 0 {
				a.view.reset() // nobody to announce to: no view to keep
			}
		}
		a.deltas.removed(sub)
		a.cfg.Metrics.Subscribed(msg.conn.Session.Info().Transport, a.topic, -1)
	} else {
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

// needed reports whether the node needs the relay: it has subscribers, or
// presence members that the topic must know of.
func (a *relayActor) needed() bool { return a.subs.len() > 0 || a.members.len() > 0 }

// maybeStop leaves the topic and stops once nobody on this node needs it.
func (a *relayActor) maybeStop(c actor.Context) {
	if a.needed() {
		return
	}
	for tag, p := range a.pending {
		if p.sub.conn != nil {
			return
		}
		p.timer.Stop() // a rejoin is moot without subscribers
		delete(a.pending, tag)
	}
	if !a.relays.tryRemove(a.topic, c.Self(), a.handled) {
		return // a subscribe is on its way; it will be handled next
	}
	if a.registered != nil {
		c.Unwatch(a.registered)
		c.Send(a.registered, &actorpb.LeaveRequest{Topic: a.topic, Relay: c.Self()})
	} else if a.target != nil {
		c.Send(a.target, &actorpb.LeaveRequest{Topic: a.topic, Relay: c.Self()})
	}
	c.Stop(c.Self())
}
