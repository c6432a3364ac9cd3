package actors

import (
	"context"
	"strconv"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/sdk/wire"
)

// PresenceReader answers who is in a topic. The node (cluster.Node) is one;
// connection actors find it beside their Publisher.
type PresenceReader interface {
	Presence(ctx context.Context, topic string, limit int) (*wire.Presence, error)
}

// memberConn is the connection's id among presence members: the node's
// name and the session's id, unique in the cluster.
func (a *connActor) memberConn() string {
	if n := a.conns.cfg.NodeName; n != "" {
		return n + "-" + a.sess.Info().ID
	}
	return a.sess.Info().ID
}

// memberClient is the member's client: the token's subject, or the
// connection's id when there is none.
func (a *connActor) memberClient() string {
	if a.auth.claims != nil && a.auth.claims.Subject != "" {
		return a.auth.claims.Subject
	}
	return a.memberConn()
}

// checkPresence answers cmd with an error and returns false when presence
// is not allowed for its topic or the client may not subscribe to it.
func (a *connActor) checkPresence(cmd *wire.Command) bool {
	if e := a.conns.cfg.Namespaces.CheckPresence(cmd); e != nil {
		a.write(wire.AppendError(nil, e))
		return false
	}
	if !a.auth.allowSub(cmd.Topic) {
		a.fail(cmd.ID, wire.CodeForbidden, "the token does not allow subscribing to "+cmd.Topic)
		return false
	}
	return true
}

func (a *connActor) onEnter(cmd *wire.Command) {
	if !a.checkPresence(cmd) {
		return
	}
	if _, again := a.entered[cmd.Topic]; !again {
		if n := a.auth.maxSubs(); n > 0 && len(a.entered) >= n {
			a.fail(cmd.ID, wire.CodeBadRequest, "too many entered topics: at most "+strconv.Itoa(n)+" per connection")
			return
		}
		a.entered[cmd.Topic] = struct{}{}
	}
	m := &actorpb.PresenceMember{Client: a.memberClient(), Conn: a.memberConn(), Info: cmd.Info}
	// The relay answers ok: an enter and a leave that follow it are
	// handled in order there.
	a.conns.relays.send(cmd.Topic, &relayEnter{conn: a.ref, id: cmd.ID, member: m})
}

func (a *connActor) onLeave(cmd *wire.Command) {
	if _, ok := a.entered[cmd.Topic]; !ok {
		a.fail(cmd.ID, wire.CodeBadRequest, "not a member of "+cmd.Topic)
		return
	}
	delete(a.entered, cmd.Topic)
	a.conns.relays.send(cmd.Topic, &relayLeave{conn: a.ref, id: cmd.ID, reply: true})
}

// onPresence asks the topic who is in it and answers the client.
func (a *connActor) onPresence(cmd *wire.Command) {
	if !a.checkPresence(cmd) {
		return
	}
	reader, ok := a.conns.publisher.(PresenceReader)
	if !ok {
		a.fail(cmd.ID, wire.CodeUnavailable, "presence is not available on this node")
		return
	}
	sess, timeout := a.sess, a.conns.cfg.RequestTimeout
	// The topic may take a round trip or a lookup to answer: never on the
	// actor's goroutine. The answer is one frame, which the session takes
	// from any goroutine.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		p, err := reader.Presence(ctx, cmd.Topic, wire.MaxPresenceListed)
		if err != nil {
			e := wire.AsError(err)
			_ = sess.Write(wire.AppendError(nil, &wire.Error{Code: e.Code, Message: e.Message, ID: cmd.ID, Topic: cmd.Topic}))
			return
		}
		members := make([][]byte, len(p.Members))
		for i, m := range p.Members {
			members[i] = wire.AppendMember(nil, m.Client, m.Conn, m.Info)
		}
		_ = sess.Write(wire.AppendPresenceOK(nil, cmd.ID, cmd.Topic, p.Count, members))
	}()
}
