package actors

import (
	"bytes"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/sdk/wire"
)

// relayEnter makes a connection a presence member of the relay's topic, or
// replaces its info (from the connection actor, through Relays). The relay
// answers the client's enter (id).
type relayEnter struct {
	conn   *ConnRef
	id     uint64
	member *actorpb.PresenceMember
}

// relayLeave ends a connection's membership; with reply it answers the
// client's leave (id).
type relayLeave struct {
	conn  *ConnRef
	id    uint64
	reply bool
}

// maxPresenceChunk bounds the bytes of members in one PresenceChange and
// of frames in one PresenceEvents: a topic with thousands of members with
// 1 KiB infos must not make one message larger than what the connection
// between nodes carries (gRPC's 4 MiB by default).
const maxPresenceChunk = 256 << 10

// relayMembers are the presence members of a relay's node for its topic:
// the node's share of the topic's presence, which the relay keeps the
// topic activation it is registered with told of.
type relayMembers struct {
	byConn map[*ConnRef]*actorpb.PresenceMember
	// synced is the activation that holds the relay's whole set: changes
	// go to it one by one. Any other registration (a new activation, one
	// that dropped the relay, a join answered twice) gets the whole set
	// first.
	synced *actor.PID
	// acks are the enters to answer once the set is synced: an ok then
	// means that a presence question asked after it lists the member.
	acks []enterAck
	// ever is set once the relay had a member: before, no activation can
	// hold a set of it.
	ever bool
}

type enterAck struct {
	conn *ConnRef
	id   uint64
}

func (m *relayMembers) len() int { return len(m.byConn) }

// sendPresence sends msg to the registered activation, counting it when it
// crosses to another node.
func (a *relayActor) sendPresence(c actor.Context, msg any) {
	if a.registered.Address != c.Self().Address {
		a.cfg.Metrics.PresenceRemoteSends.Add(1)
	}
	c.Send(a.registered, msg)
}

// inSync reports whether changes may go to the registered activation one
// by one.
func (a *relayActor) inSync() bool {
	return a.registered != nil && a.members.synced != nil && a.members.synced.Equal(a.registered)
}

// onEnter records the member and tells the topic; not in sync with an
// activation yet, it answers once a join has made it so (syncMembers).
func (a *relayActor) onEnter(c actor.Context, msg *relayEnter) {
	if a.members.byConn == nil {
		a.members.byConn = make(map[*ConnRef]*actorpb.PresenceMember)
	}
	if _, ok := a.members.byConn[msg.conn]; !ok {
		a.cfg.Metrics.PresenceChanged(a.topic, 1)
	}
	a.members.byConn[msg.conn] = msg.member
	a.members.ever = true
	if a.inSync() {
		a.sendPresence(c, &actorpb.PresenceChange{Topic: a.topic, Relay: c.Self(),
			Entered: []*actorpb.PresenceMember{msg.member}})
		_ = msg.conn.Session.Write(wire.AppendOK(nil, msg.id)) // a closed session needs no answer
		return
	}
	a.members.acks = append(a.members.acks, enterAck{conn: msg.conn, id: msg.id})
	a.requestRejoin(c) // unless one is in flight: its answer syncs
}

func (a *relayActor) onLeave(c actor.Context, msg *relayLeave) {
	// An enter of this connection still waiting is answered first: the
	// client's answers come in the order of its commands.
	kept := a.members.acks[:0]
	for _, ack := range a.members.acks {
		if ack.conn == msg.conn {
			_ = ack.conn.Session.Write(wire.AppendOK(nil, ack.id))
			continue
		}
		kept = append(kept, ack)
	}
	clear(a.members.acks[len(kept):])
	a.members.acks = kept
	if m, ok := a.members.byConn[msg.conn]; ok {
		delete(a.members.byConn, msg.conn)
		a.cfg.Metrics.PresenceChanged(a.topic, -1)
		if a.inSync() {
			a.sendPresence(c, &actorpb.PresenceChange{Topic: a.topic, Relay: c.Self(), Left: []string{m.Conn}})
		}
	}
	if msg.reply {
		_ = msg.conn.Session.Write(wire.AppendOK(nil, msg.id))
	}
	a.maybeStop(c)
}

// syncMembers, after a join's answer, sends the relay's whole set to the
// activation it is registered with unless that one holds it already (the
// answer says it registered the relay anew, or the relay never synced with
// it), then answers the enters that waited for it.
func (a *relayActor) syncMembers(c actor.Context, msg *actorpb.JoinResponse) {
	if a.registered == nil || msg.Topic == nil || !msg.Topic.Equal(a.registered) {
		return
	}
	if msg.Registered || !a.inSync() {
		// A new registration holds nothing to replace; an old one may
		// hold a set only if the relay ever had members.
		if a.members.len() > 0 || (!msg.Registered && a.members.ever) {
			a.sendFullSet(c)
		}
		a.members.synced = a.registered
	}
	if msg.Registered {
		// The activation had dropped the relay, or never had it: the
		// events it sent meanwhile did not come here.
		a.view.of = nil
	}
	for _, ack := range a.members.acks {
		_ = ack.conn.Session.Write(wire.AppendOK(nil, ack.id)) // a closed session needs no answer
	}
	clear(a.members.acks)
	a.members.acks = a.members.acks[:0]
	a.followView(c)
}

// sendFullSet sends the relay's members to the registered activation as
// one full set, in chunks of at most maxPresenceChunk bytes; the last has
// last set. An empty set is sent too: the activation may hold an older one.
func (a *relayActor) sendFullSet(c actor.Context) {
	chunk := &actorpb.PresenceChange{Topic: a.topic, Relay: c.Self(), Full: true}
	size := 0
	for _, m := range a.members.byConn {
		n := len(m.Client) + len(m.Conn) + len(m.Info)
		if size > 0 && size+n > maxPresenceChunk {
			a.sendPresence(c, chunk)
			chunk = &actorpb.PresenceChange{Topic: a.topic, Relay: c.Self(), Full: true}
			size = 0
		}
		chunk.Entered = append(chunk.Entered, m)
		size += n
	}
	chunk.Last = true
	a.sendPresence(c, chunk)
}

// presenceGrace is how long a relay whose topic moved waits before it
// compares what its presence subscribers were told with the new
// activation's members: meanwhile the other nodes' relays send it theirs.
const presenceGrace = time.Second

// relayView is what a relay's presence subscribers were told: who is in
// the topic. With it the relay passes on only what changes that (a new
// activation announces again the members it learns), and after the topic
// moved it tells the subscribers the difference between the view and the
// new activation's members: the leaves of members whose node died with the
// topic's, which nobody else would announce.
type relayView struct {
	members map[string]viewMember // conn -> member
	// ready is set once members is an activation's whole list (from a
	// snapshot): only then may events be filtered against it.
	ready bool
	of    *actor.PID                // the activation the view follows
	snap  []*actorpb.PresenceMember // a snapshot's chunks so far
	timer *time.Timer
}

type viewMember struct {
	client string
	info   []byte
}

// snapshotDue asks the relay for its view's snapshot, after the grace.
type snapshotDue struct{ of *actor.PID }

func (v *relayView) reset() {
	if v.timer != nil {
		v.timer.Stop()
	}
	*v = relayView{}
}

// followView makes the view follow the registered activation when the
// relay has presence subscribers: at once the first time, after the grace
// when the topic moved.
func (a *relayActor) followView(c actor.Context) {
	if a.presenceSubs == 0 || a.registered == nil || (a.view.of != nil && a.view.of.Equal(a.registered)) {
		return
	}
	a.view.of, a.view.snap = a.registered, nil
	if a.view.timer != nil {
		a.view.timer.Stop()
		a.view.timer = nil
	}
	if !a.view.ready && len(a.view.members) == 0 {
		a.askSnapshot(c) // nothing told yet: the snapshot only starts the view
		return
	}
	// The subscribers were told of members: compare once the other nodes'
	// relays have had the time to send theirs.
	of, self, root := a.registered, c.Self(), c.ActorSystem().Root
	a.view.timer = time.AfterFunc(presenceGrace, func() { root.Send(self, &snapshotDue{of: of}) })
}

func (a *relayActor) askSnapshot(c actor.Context) {
	a.sendPresence(c, &actorpb.PresenceSnapshotRequest{Topic: a.topic, Relay: c.Self()})
}

func (a *relayActor) onSnapshotDue(c actor.Context, msg *snapshotDue) {
	if a.registered != nil && a.registered.Equal(msg.of) && a.view.of != nil && a.view.of.Equal(msg.of) {
		a.view.timer = nil
		a.askSnapshot(c)
	}
}

// onPresenceSnapshot takes an activation's members as the view; when the
// view was another activation's, the subscribers are told the difference.
func (a *relayActor) onPresenceSnapshot(msg *actorpb.PresenceSnapshot) {
	if a.view.of == nil || msg.Activation == nil || !msg.Activation.Equal(a.view.of) || !a.view.of.Equal(a.registered) {
		return // an activation the relay has left since
	}
	a.view.snap = append(a.view.snap, msg.Members...)
	if !msg.Last {
		return
	}
	next := make(map[string]viewMember, len(a.view.snap))
	for _, m := range a.view.snap {
		next[m.Conn] = viewMember{client: m.Client, info: nilIfEmpty(m.Info)}
	}
	a.view.snap = nil
	var frames [][]byte
	for conn, old := range a.view.members {
		if _, ok := next[conn]; !ok {
			// Told of and gone (its node died with the topic's, or its
			// leave went where this relay was not).
			frames = append(frames, wire.AppendPresenceEvent(nil, wire.OpLeave, a.topic, old.client, conn, nil))
		}
	}
	if a.view.ready {
		// Joins only against a whole list: before the first snapshot the
		// subscribers were promised no list, only events.
		for conn, m := range next {
			old, ok := a.view.members[conn]
			switch {
			case !ok:
				frames = append(frames, wire.AppendPresenceEvent(nil, wire.OpJoin, a.topic, m.client, conn, m.info))
			case old.client != m.client || !bytes.Equal(old.info, m.info):
				frames = append(frames, wire.AppendPresenceEvent(nil, wire.OpUpdate, a.topic, m.client, conn, m.info))
			}
		}
	}
	a.writePresence(frames)
	a.view.members, a.view.ready = next, true
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// onPresenceEvents hands the topic's presence events to the subscribers
// that asked for them, less what would not change their view (a join
// announced again). Only the registered activation's count: a stale one
// (the topic moved) may still send events that the new one has since
// overtaken.
func (a *relayActor) onPresenceEvents(msg *actorpb.PresenceEvents) {
	if len(msg.Frames) == 0 || a.registered == nil || msg.Activation == nil || !msg.Activation.Equal(a.registered) || a.presenceSubs == 0 {
		return
	}
	if len(msg.Ops) != len(msg.Frames) || len(msg.Members) != len(msg.Frames) {
		a.writePresence(msg.Frames) // a node that says nothing of its frames
		return
	}
	if a.view.members == nil {
		a.view.members = make(map[string]viewMember)
	}
	out := msg.Frames[:0:0]
	for i, op := range msg.Ops {
		m := msg.Members[i]
		old, known := a.view.members[m.Conn]
		info := nilIfEmpty(m.Info)
		frame := msg.Frames[i]
		switch op {
		case wire.OpJoin, wire.OpUpdate:
			if known && old.client == m.Client && bytes.Equal(old.info, info) && a.view.ready {
				continue // announced again: nothing changed
			}
			if a.view.ready && known != (op == wire.OpUpdate) {
				// A join of a member they have is an update for them, an
				// update of one they do not have a join.
				kind := wire.OpJoin
				if known {
					kind = wire.OpUpdate
				}
				frame = wire.AppendPresenceEvent(nil, kind, a.topic, m.Client, m.Conn, info)
			}
			a.view.members[m.Conn] = viewMember{client: m.Client, info: info}
		case wire.OpLeave:
			if !known && a.view.ready {
				continue
			}
			delete(a.view.members, m.Conn)
		}
		out = append(out, frame)
	}
	a.writePresence(out)
}

func (a *relayActor) writePresence(frames [][]byte) {
	if len(frames) == 0 {
		return
	}
	for _, s := range a.subs.all() {
		if s.presence {
			_ = s.conn.Session.WriteMany(frames) // a failed write closes the session itself
		}
	}
}
