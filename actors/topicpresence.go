package actors

import (
	"bytes"
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/sdk/wire"
)

// topicPresence is the topic activation's view of its presence: one set per
// registered relay, each the members of that relay's node. A change costs
// one message from the relay and one PresenceEvents to each relay, never a
// message per pair of members.
type topicPresence struct {
	sets  map[string]map[string]presenceMember // relay (pidKey) -> conn -> member
	count int
	// full holds the chunks of a relay's full set until its last one.
	full map[string][]*actorpb.PresenceMember
}

type presenceMember struct {
	client string
	info   []byte
}

func pidKey(pid *actor.PID) string { return pid.Address + "/" + pid.Id }

// onPresenceChange applies a relay's change and sends its events to every
// relay. A relay not registered here is ignored: it sends its whole set
// once a join registers it.
func (a *topicActor) onPresenceChange(c actor.Context, msg *actorpb.PresenceChange) {
	a.setName(msg.Topic)
	if msg.Relay == nil || a.relayIndex(msg.Relay) < 0 {
		return
	}
	p := &a.presence
	key := pidKey(msg.Relay)
	entered := msg.Entered
	if msg.Full {
		if p.full == nil {
			p.full = make(map[string][]*actorpb.PresenceMember)
		}
		p.full[key] = append(p.full[key], msg.Entered...)
		if !msg.Last {
			return
		}
		entered = p.full[key]
		delete(p.full, key)
	}
	if p.sets == nil {
		p.sets = make(map[string]map[string]presenceMember)
	}
	set := p.sets[key]
	if set == nil {
		set = make(map[string]presenceMember)
		p.sets[key] = set
	}
	var frames [][]byte
	if msg.Full {
		in := make(map[string]bool, len(entered))
		for _, m := range entered {
			in[m.Conn] = true
		}
		for conn, m := range set {
			if !in[conn] {
				frames = append(frames, wire.AppendPresenceEvent(nil, wire.OpLeave, a.name, m.client, conn, nil))
				delete(set, conn)
				p.count--
			}
		}
	}
	for _, m := range entered {
		var info []byte
		if len(m.Info) > 0 {
			info = m.Info
		}
		old, known := set[m.Conn]
		switch {
		case !known:
			frames = append(frames, wire.AppendPresenceEvent(nil, wire.OpJoin, a.name, m.Client, m.Conn, info))
			p.count++
		case !bytes.Equal(old.info, info) || old.client != m.Client:
			frames = append(frames, wire.AppendPresenceEvent(nil, wire.OpUpdate, a.name, m.Client, m.Conn, info))
		default:
			continue // the same again: nothing happened
		}
		set[m.Conn] = presenceMember{client: m.Client, info: info}
	}
	for _, conn := range msg.Left {
		if m, ok := set[conn]; ok {
			frames = append(frames, wire.AppendPresenceEvent(nil, wire.OpLeave, a.name, m.client, conn, nil))
			delete(set, conn)
			p.count--
		}
	}
	if len(set) == 0 {
		delete(p.sets, key)
	}
	a.sendPresence(c, frames)
}

// dropPresence forgets a relay's members; with tell, their leave events go
// to the other relays (the relay's node died or was cut off). A relay that
// leaves the activation itself keeps its members: it has moved to another
// activation, or it has none.
func (a *topicActor) dropPresence(c actor.Context, relay *actor.PID, tell bool) {
	key := pidKey(relay)
	delete(a.presence.full, key)
	set := a.presence.sets[key]
	if set == nil {
		return
	}
	delete(a.presence.sets, key)
	a.presence.count -= len(set)
	if !tell {
		return
	}
	frames := make([][]byte, 0, len(set))
	for conn, m := range set {
		frames = append(frames, wire.AppendPresenceEvent(nil, wire.OpLeave, a.name, m.client, conn, nil))
	}
	a.sendPresence(c, frames)
}

func (a *topicActor) sendPresence(c actor.Context, frames [][]byte) {
	if len(frames) == 0 || len(a.relays) == 0 {
		return
	}
	// In chunks: a rebuilt topic announces every member at once.
	for len(frames) > 0 {
		n, size := 0, 0
		for n < len(frames) && (n == 0 || size+len(frames[n]) <= maxPresenceChunk) {
			size += len(frames[n])
			n++
		}
		ev := &actorpb.PresenceEvents{Topic: a.name, Frames: frames[:n], Activation: c.Self()}
		for _, r := range a.relays {
			c.Send(r, ev)
		}
		frames = frames[n:]
	}
}

// onPresence answers who is in the topic: the count and, ordered by conn,
// at most limit members.
func (a *topicActor) onPresence(c actor.Context, req *actorpb.PresenceRequest) {
	a.setName(req.Topic)
	if a.dead {
		a.respond(c, &actorpb.PresenceResponse{Retry: true})
		return
	}
	limit := int(req.Limit)
	if limit <= 0 || limit > wire.MaxPresenceListed {
		limit = wire.MaxPresenceListed
	}
	type listed struct {
		conn string
		m    presenceMember
	}
	all := make([]listed, 0, a.presence.count)
	for _, set := range a.presence.sets {
		for conn, m := range set {
			all = append(all, listed{conn, m})
		}
	}
	slices.SortFunc(all, func(x, y listed) int {
		if x.conn < y.conn {
			return -1
		}
		if x.conn > y.conn {
			return 1
		}
		return 0
	})
	resp := &actorpb.PresenceResponse{Count: uint32(len(all))}
	for _, l := range all[:min(limit, len(all))] {
		resp.Members = append(resp.Members, wire.AppendMember(nil, l.m.client, l.conn, l.m.info))
	}
	a.respond(c, resp)
}
