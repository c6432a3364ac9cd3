package actors

import (
	"bytes"
	"encoding/json"
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

// sendRelay sends a presence message to a relay, counting it when it
// crosses to another node.
func (a *topicActor) sendRelay(c actor.Context, relay *actor.PID, msg any) {
	if relay.Address != c.Self().Address {
		a.cfg.Metrics.PresenceRemoteSends.Add(1)
	}
	c.Send(relay, msg)
}

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
	var evs presenceEvents
	if msg.Full {
		in := make(map[string]bool, len(entered))
		for _, m := range entered {
			in[m.Conn] = true
		}
		for conn, m := range set {
			if !in[conn] {
				evs.add(a.name, wire.OpLeave, m.client, conn, nil)
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
			evs.add(a.name, wire.OpJoin, m.Client, m.Conn, info)
			p.count++
		case !bytes.Equal(old.info, info) || old.client != m.Client:
			evs.add(a.name, wire.OpUpdate, m.Client, m.Conn, info)
		default:
			continue // the same again: nothing happened
		}
		set[m.Conn] = presenceMember{client: m.Client, info: info}
	}
	for _, conn := range msg.Left {
		if m, ok := set[conn]; ok {
			evs.add(a.name, wire.OpLeave, m.client, conn, nil)
			delete(set, conn)
			p.count--
		}
	}
	if len(set) == 0 {
		delete(p.sets, key)
	}
	a.sendPresence(c, &evs)
}

// presenceEvents are events for the relays: their frames and, beside them,
// what each is.
type presenceEvents struct {
	frames  [][]byte
	ops     []string
	members []*actorpb.PresenceMember
}

func (e *presenceEvents) add(topic, op, client, conn string, info []byte) {
	e.frames = append(e.frames, wire.AppendPresenceEvent(nil, op, topic, client, conn, info))
	e.ops = append(e.ops, op)
	e.members = append(e.members, &actorpb.PresenceMember{Client: client, Conn: conn, Info: info})
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
	var evs presenceEvents
	for conn, m := range set {
		evs.add(a.name, wire.OpLeave, m.client, conn, nil)
	}
	a.sendPresence(c, &evs)
}

func (a *topicActor) sendPresence(c actor.Context, evs *presenceEvents) {
	if len(evs.frames) == 0 || len(a.relays) == 0 {
		return
	}
	// In chunks: a rebuilt topic announces every member at once.
	for i := 0; i < len(evs.frames); {
		n, size := 0, 0
		for i+n < len(evs.frames) && (n == 0 || size+2*len(evs.frames[i+n]) <= maxPresenceChunk) {
			size += 2 * len(evs.frames[i+n]) // the frame and its member
			n++
		}
		ev := &actorpb.PresenceEvents{Topic: a.name, Activation: c.Self(),
			Frames: evs.frames[i : i+n], Ops: evs.ops[i : i+n], Members: evs.members[i : i+n]}
		for _, r := range a.relays {
			a.sendRelay(c, r, ev)
		}
		i += n
	}
}

// onPresenceSnapshot sends a relay all the activation's members, in
// chunks, on the path of its events: what the relay has applied of those
// when the last chunk comes is what the chunks describe.
func (a *topicActor) onPresenceSnapshot(c actor.Context, req *actorpb.PresenceSnapshotRequest) {
	a.setName(req.Topic)
	if req.Relay == nil || a.relayIndex(req.Relay) < 0 {
		return // it joins first; its join's answer makes it ask again
	}
	chunk := &actorpb.PresenceSnapshot{Topic: a.name, Activation: c.Self()}
	size := 0
	for _, set := range a.presence.sets {
		for conn, m := range set {
			n := len(m.client) + len(conn) + len(m.info)
			if size > 0 && size+n > maxPresenceChunk {
				a.sendRelay(c, req.Relay, chunk)
				chunk = &actorpb.PresenceSnapshot{Topic: a.name, Activation: c.Self()}
				size = 0
			}
			chunk.Members = append(chunk.Members, &actorpb.PresenceMember{Client: m.client, Conn: conn, Info: m.info})
			size += n
		}
	}
	chunk.Last = true
	a.sendRelay(c, req.Relay, chunk)
}

// DecodePresence turns a topic actor's PresenceResponse into the presence
// answer of the protocol; a member that is not JSON is a CodeInternal error.
func DecodePresence(topic string, r *actorpb.PresenceResponse) (*wire.Presence, error) {
	p := &wire.Presence{Topic: topic, Count: int(r.Count), Members: make([]wire.Member, 0, len(r.Members))}
	for _, b := range r.Members {
		var m wire.Member
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, wire.Errorf(wire.CodeInternal, "topic %s answered a member that is not JSON: %v", topic, err)
		}
		p.Members = append(p.Members, m)
	}
	return p, nil
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
