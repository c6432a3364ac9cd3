package sdk

import (
	"fmt"

	"github.com/topicast/topicast/sdk/wire"
)

// EventKind says what an Event reports.
type EventKind uint8

// Kinds of Event.
const (
	// EventConnected: a connection to URL is up. The client has sent its
	// subscriptions again (recovering from where each one stopped).
	EventConnected EventKind = iota + 1
	// EventDisconnected: the connection to URL ended with Err (often a
	// *CloseError). The client reconnects by itself.
	EventDisconnected
	// EventReset: Topic lost continuity. Messages after (Epoch, Seq) follow;
	// those between the last one delivered and them are lost, so resync the
	// topic on your own (GET /v1/history, a database...). Reason says why:
	// ResetNotRecovered, ResetNewEpoch.
	EventReset
	// EventGap: the server skipped seqs of Topic inside one epoch, which
	// the protocol forbids. Seq is the last seq delivered before the gap.
	// The next message is delivered anyway.
	EventGap
	// EventSubscriptionEnded: the server ended the subscription to Topic
	// with Err (a *wire.Error, forbidden say). Its handler is not called
	// again.
	EventSubscriptionEnded
	// EventError: the server sent an error frame that answers no command
	// (Err is its *wire.Error), or, with Topic, refused to enter Topic
	// again after a reconnection (Err is its *wire.Error; the client is
	// no longer a member, call Enter to try again).
	EventError
	// EventClosed: the client stopped for good because of Err, a
	// *CloseError with a code after which it must not reconnect (1009,
	// 4001, 4009). Calls fail with Err from now on; call Close.
	EventClosed
	// EventSubscribed: the server confirmed the subscription to Topic,
	// the first time or after a reconnection. Epoch and Seq are the topic's
	// head then: messages after it follow (and, when Recovered is set, the
	// missed ones before them). It comes before any message it lets
	// through, and before the EventReset of a recovery that failed.
	EventSubscribed
	// EventJoin: Member entered Topic (a subscription with Presence gets
	// it). After a reconnection, or when the topic moved to another
	// server node, a member already known may join again.
	EventJoin
	// EventUpdate: Member, already in Topic, entered again with a new
	// Info.
	EventUpdate
	// EventLeave: Member left Topic, or its connection closed. Its Info
	// is empty.
	EventLeave
)

// Reasons of an EventReset.
const (
	// ResetNotRecovered: a subscription asked to recover (after a
	// reconnect, or Since) and the server's history could not fill the gap.
	ResetNotRecovered = "not recovered"
	// ResetNewEpoch: the topic restarted in a new epoch while subscribed.
	ResetNewEpoch = "new epoch"
)

// String names the kind.
func (k EventKind) String() string {
	switch k {
	case EventConnected:
		return "connected"
	case EventDisconnected:
		return "disconnected"
	case EventReset:
		return "reset"
	case EventGap:
		return "gap"
	case EventSubscriptionEnded:
		return "subscription_ended"
	case EventError:
		return "error"
	case EventClosed:
		return "closed"
	case EventSubscribed:
		return "subscribed"
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	default:
		return fmt.Sprintf("event_%d", uint8(k))
	}
}

// Event is something the application may want to know besides messages. It
// goes to Config.OnEvent, on the goroutine that calls message handlers, in
// order with the messages: an EventReset of a topic comes after the last
// message of the old position and before the first of the new one.
type Event struct {
	Kind EventKind
	// URL is the server of EventConnected and EventDisconnected.
	URL string
	// Topic, Epoch and Seq: see each kind.
	Topic string
	Epoch string
	Seq   uint64
	// Reason explains an EventReset.
	Reason string
	// Recovered is set on an EventSubscribed whose sub asked to recover
	// (after a reconnection, or Since) when the server's history filled
	// the gap.
	Recovered bool
	// Member is the member of EventJoin, EventUpdate and EventLeave: its
	// client (the token's subject, or its connection's id without tokens),
	// its connection's id, unique in the cluster, and the JSON info it
	// entered with, if any. The event's receiver owns it.
	Member *wire.Member
	// Err is the cause; see each kind.
	Err error
}

func (e Event) String() string {
	s := e.Kind.String()
	if e.URL != "" {
		s += " " + e.URL
	}
	switch {
	case e.Member != nil:
		// The line of topicast sub --presence: join room.1 alice n1-ws-17 {"name":"alice"}
		s += " " + e.Topic + " " + e.Member.Client + " " + e.Member.Conn
		if len(e.Member.Info) > 0 {
			s += " " + string(e.Member.Info)
		}
	case e.Topic != "" && (e.Epoch != "" || e.Seq != 0):
		s += fmt.Sprintf(" %s %s:%d", e.Topic, e.Epoch, e.Seq)
	case e.Topic != "":
		s += " " + e.Topic
	}
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Recovered {
		s += " (recovered)"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}
