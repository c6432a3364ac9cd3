package actors

import (
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

// relayMembers are the presence members of a relay's node for its topic:
// the node's share of the topic's presence, which the relay keeps the
// topic activation it is registered with told of.
type relayMembers struct {
	byConn map[*ConnRef]*actorpb.PresenceMember
	// acks are the enters to answer once the relay is registered with an
	// activation that knows them: an ok then means that a presence
	// question asked after it lists the member.
	acks []enterAck
}

type enterAck struct {
	conn *ConnRef
	id   uint64
}

func (m *relayMembers) len() int { return len(m.byConn) }

// onEnter records the member and tells the topic, or, not registered with
// an activation yet, joins one: the join's answer makes the relay send its
// whole set (syncMembers).
func (a *relayActor) onEnter(c actor.Context, msg *relayEnter) {
	if a.members.byConn == nil {
		a.members.byConn = make(map[*ConnRef]*actorpb.PresenceMember)
	}
	if _, ok := a.members.byConn[msg.conn]; !ok {
		a.cfg.Metrics.PresenceChanged(a.topic, 1)
	}
	a.members.byConn[msg.conn] = msg.member
	if a.registered != nil {
		c.Send(a.registered, &actorpb.PresenceChange{Topic: a.topic, Relay: c.Self(),
			Entered: []*actorpb.PresenceMember{msg.member}})
		_ = msg.conn.Session.Write(wire.AppendOK(nil, msg.id)) // a closed session needs no answer
		return
	}
	a.members.acks = append(a.members.acks, enterAck{conn: msg.conn, id: msg.id})
	if len(a.pending) == 0 {
		a.requestRejoin(c)
	}
}

func (a *relayActor) onLeave(c actor.Context, msg *relayLeave) {
	m, ok := a.members.byConn[msg.conn]
	if ok {
		delete(a.members.byConn, msg.conn)
		a.cfg.Metrics.PresenceChanged(a.topic, -1)
		if a.registered != nil {
			c.Send(a.registered, &actorpb.PresenceChange{Topic: a.topic, Relay: c.Self(), Left: []string{m.Conn}})
		}
	}
	if msg.reply {
		_ = msg.conn.Session.Write(wire.AppendOK(nil, msg.id))
	}
	a.maybeStop(c)
}

// syncMembers sends the relay's whole set to the activation that a join's
// answer says registered the relay anew: it knew none of them (a new
// activation after a move, or one that had dropped the relay).
// Then it answers the enters that waited for a registration.
func (a *relayActor) syncMembers(c actor.Context, msg *actorpb.JoinResponse) {
	if a.registered == nil || msg.Topic == nil || !msg.Topic.Equal(a.registered) {
		return
	}
	if msg.Registered && a.members.len() > 0 {
		all := make([]*actorpb.PresenceMember, 0, a.members.len())
		for _, m := range a.members.byConn {
			all = append(all, m)
		}
		c.Send(a.registered, &actorpb.PresenceChange{Topic: a.topic, Relay: c.Self(), Full: true, Entered: all})
	}
	for _, ack := range a.members.acks {
		_ = ack.conn.Session.Write(wire.AppendOK(nil, ack.id)) // a closed session needs no answer
	}
	a.members.acks = nil
}

// onPresenceEvents hands the topic's presence events to the subscribers
// that asked for them.
func (a *relayActor) onPresenceEvents(msg *actorpb.PresenceEvents) {
	if len(msg.Frames) == 0 {
		return
	}
	for _, s := range a.subs.all() {
		if s.presence {
			_ = s.conn.Session.WriteMany(msg.Frames) // a failed write closes the session itself
		}
	}
}
