package wire

import (
	"encoding/json"
	"strconv"
)

// MaxPresenceListed is the most members a presence answer lists; its count
// is always the full number.
const MaxPresenceListed = 1000

// Member is one member of a topic's presence: a connection that entered it.
// Client is the token's subject, or the connection's id without tokens;
// Conn is unique per connection in the cluster.
type Member struct {
	Client string          `json:"client"`
	Conn   string          `json:"conn"`
	Info   json.RawMessage `json:"info,omitempty"`
}

// Presence is the answer to a presence command (the ok frame's count and
// members) and the body of GET /v1/presence.
type Presence struct {
	Topic   string   `json:"topic"`
	Count   int      `json:"count"`
	Members []Member `json:"members"`
}

// AppendMember appends a member as the JSON object of presence answers.
// info must be compacted JSON or nil.
func AppendMember(dst []byte, client, conn string, info []byte) []byte {
	dst = append(dst, `{"client":`...)
	dst = AppendString(dst, client)
	dst = append(dst, `,"conn":`...)
	dst = AppendString(dst, conn)
	if info != nil {
		dst = append(dst, `,"info":`...)
		dst = append(dst, info...)
	}
	return append(dst, '}')
}

// AppendPresenceEvent appends a presence event for subscribers with
// "presence":true: op is OpJoin, OpUpdate (with info, if any) or OpLeave
// (without).
func AppendPresenceEvent(dst []byte, op, topic, client, conn string, info []byte) []byte {
	dst = append(dst, `{"op":"`...)
	dst = append(dst, op...)
	dst = append(dst, `","topic":`...)
	dst = AppendString(dst, topic)
	dst = append(dst, `,"client":`...)
	dst = AppendString(dst, client)
	dst = append(dst, `,"conn":`...)
	dst = AppendString(dst, conn)
	if info != nil && op != OpLeave {
		dst = append(dst, `,"info":`...)
		dst = append(dst, info...)
	}
	return append(dst, '}')
}

// AppendPresenceOK appends the answer to a presence command: count is the
// full number of members, members (each from AppendMember) the listed ones.
func AppendPresenceOK(dst []byte, id uint64, topic string, count int, members [][]byte) []byte {
	dst = appendOKHead(dst, id)
	dst = append(dst, `,"topic":`...)
	dst = AppendString(dst, topic)
	return append(appendPresenceBody(dst, count, members), '}')
}

// AppendPresenceBody appends the body of GET /v1/presence: the presence
// answer's fields as an object of their own.
func AppendPresenceBody(dst []byte, topic string, count int, members [][]byte) []byte {
	dst = append(dst, `{"topic":`...)
	dst = AppendString(dst, topic)
	return append(appendPresenceBody(dst, count, members), '}')
}

func appendPresenceBody(dst []byte, count int, members [][]byte) []byte {
	dst = append(dst, `,"count":`...)
	dst = strconv.AppendInt(dst, int64(count), 10)
	dst = append(dst, `,"members":[`...)
	for i, m := range members {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, m...)
	}
	return append(dst, ']')
}

// AppendEnter appends a client's enter command; info is compacted JSON or
// nil.
func AppendEnter(dst []byte, id uint64, topic string, info []byte) []byte {
	dst = appendTopicCommand(dst, OpEnter, id, topic)
	if info != nil {
		dst = append(dst[:len(dst)-1], `,"info":`...)
		dst = append(dst, info...)
		dst = append(dst, '}')
	}
	return dst
}

// AppendLeave appends a client's leave command.
func AppendLeave(dst []byte, id uint64, topic string) []byte {
	return appendTopicCommand(dst, OpLeave, id, topic)
}

// AppendPresenceCommand appends a client's presence command.
func AppendPresenceCommand(dst []byte, id uint64, topic string) []byte {
	return appendTopicCommand(dst, OpPresence, id, topic)
}

func appendTopicCommand(dst []byte, op string, id uint64, topic string) []byte {
	dst = append(dst, `{"op":"`...)
	dst = append(dst, op...)
	dst = append(dst, `","id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"topic":`...)
	dst = AppendString(dst, topic)
	return append(dst, '}')
}
