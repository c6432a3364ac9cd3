package sdk_test

import (
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/topicast/topicast/sdk/wire"
)

// broker is a minimal in-memory topicast server for the examples: one
// epoch per topic and its whole history, subscriptions with since, pub
// over WebSocket and POST /v1/publish with an API key, and presence on
// every topic (enter, leave, presence, and the join, update and leave
// events of "presence":true subscriptions; without tokens, a member's
// client is its connection's id). It speaks the protocol with package wire
// only; the SDK's tests against the real server are in test/sdk.
type broker struct {
	srv    *httptest.Server
	apiKey string

	mu     sync.Mutex
	topics map[string]*brokerTopic
	conns  map[*brokerConn]struct{}
	nconns int            // connections so far, which name the next one
	wg     sync.WaitGroup // connection readers
}

type brokerTopic struct {
	msgs [][]byte // msg frames; msgs[i] has seq i+1
	// subs holds the subscribers, true for those with "presence":true.
	subs map[*brokerConn]bool
	// members holds the presence members and their info (nil: none).
	members map[*brokerConn][]byte
}

type brokerConn struct {
	id  string // its id among presence members: "b-1", "b-2"...
	nc  net.Conn
	wmu sync.Mutex
}

// brokerEpoch is the epoch of every topic of the broker.
const brokerEpoch = "b1"

func newBroker(apiKey string) *broker {
	b := &broker{apiKey: apiKey, topics: make(map[string]*brokerTopic), conns: make(map[*brokerConn]struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", b.serveWS)
	mux.HandleFunc("POST /v1/publish", b.servePublish)
	b.srv = httptest.NewServer(mux)
	return b
}

// wsURL is the broker's WebSocket endpoint and httpURL its HTTP address.
func (b *broker) wsURL() string   { return "ws" + strings.TrimPrefix(b.srv.URL, "http") + "/ws" }
func (b *broker) httpURL() string { return b.srv.URL }

// close ends every connection and waits for their readers.
func (b *broker) close() {
	b.mu.Lock()
	for bc := range b.conns {
		_ = bc.nc.Close() // ends its reader
	}
	b.mu.Unlock()
	b.wg.Wait()
	b.srv.Close()
}

func (b *broker) topicLocked(name string) *brokerTopic {
	t := b.topics[name]
	if t == nil {
		t = &brokerTopic{subs: make(map[*brokerConn]bool), members: make(map[*brokerConn][]byte)}
		b.topics[name] = t
	}
	return t
}

// publish appends data to topic and sends it to the subscribers.
func (b *broker) publish(topic string, data []byte) wire.PublishResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topicLocked(topic)
	seq := uint64(len(t.msgs) + 1)
	frame := wire.AppendMsg(nil, topic, brokerEpoch, seq, time.Now().UnixMilli(), data)
	t.msgs = append(t.msgs, frame)
	for bc := range t.subs {
		bc.write(frame)
	}
	return wire.PublishResult{Topic: topic, Epoch: brokerEpoch, Seq: seq}
}

func (b *broker) servePublish(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, e *wire.Error) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(wire.AppendErrorBody(nil, e)) // the client may be gone
	}
	switch r.Header.Get("Authorization") {
	case "Bearer " + b.apiKey:
	case "":
		fail(http.StatusUnauthorized, wire.Errorf(wire.CodeUnauthorized, "an API key is needed"))
		return
	default:
		fail(http.StatusForbidden, wire.Errorf(wire.CodeForbidden, "unknown API key"))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	items, batch, err := wire.DecodePublishBody(body, wire.DefaultMaxMessage, false)
	if err != nil {
		fail(http.StatusBadRequest, wire.AsError(err))
		return
	}
	var out []byte
	if batch {
		out = append(out, `{"results":[`...)
	}
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = wire.AppendPublishResult(out, b.publish(it.Topic, it.Data))
	}
	if batch {
		out = append(out, "]}"...)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out) // the client may be gone
}

func (b *broker) serveWS(w http.ResponseWriter, r *http.Request) {
	nc, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	b.mu.Lock()
	b.nconns++
	bc := &brokerConn{id: "b-" + strconv.Itoa(b.nconns), nc: nc}
	b.conns[bc] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.conns, bc)
		for name, t := range b.topics {
			delete(t.subs, bc)
			if _, ok := t.members[bc]; ok {
				delete(t.members, bc)
				t.presenceEvent(wire.OpLeave, name, bc, nil)
			}
		}
		b.mu.Unlock()
		_ = nc.Close() // the reader is done with it
	}()
	for {
		msg, op, err := wsutil.ReadClientData(nc)
		if err != nil {
			return
		}
		if op != ws.OpText {
			continue
		}
		wire.EachFrame(msg, func(frame []byte) { b.handle(bc, frame) })
	}
}

// handle answers one client frame.
func (b *broker) handle(bc *brokerConn, frame []byte) {
	cmd, err := wire.DecodeCommand(frame, wire.DefaultMaxMessage)
	if err != nil {
		var e *wire.Error
		if !errors.As(err, &e) {
			e = &wire.Error{Code: wire.CodeInternal, Message: err.Error()}
		}
		bc.write(wire.AppendError(nil, e))
		return
	}
	switch cmd.Op {
	case wire.OpPing:
		bc.write(wire.PongFrame)
	case wire.OpPong:
	case wire.OpHello, wire.OpRefresh:
		bc.write(wire.AppendOK(nil, cmd.ID))
	case wire.OpPub:
		if wire.IsSystemTopic(cmd.Topic) {
			bc.write(wire.AppendError(nil, &wire.Error{Code: wire.CodeForbidden, Message: "sys: topics are the server's", ID: cmd.ID}))
			return
		}
		res := b.publish(cmd.Topic, cmd.Data)
		bc.write(wire.AppendPubOK(nil, cmd.ID, res.Topic, res.Epoch, res.Seq))
	case wire.OpSub:
		b.mu.Lock()
		defer b.mu.Unlock()
		t := b.topicLocked(cmd.Topic)
		head := uint64(len(t.msgs))
		rec, from := wire.RecoveryNone, head
		if cmd.Since != nil {
			rec = wire.NotRecovered
			if cmd.Since.Epoch == brokerEpoch && cmd.Since.Seq <= head {
				rec, from = wire.Recovered, cmd.Since.Seq
			}
		}
		bc.write(wire.AppendSubOK(nil, cmd.ID, cmd.Topic, brokerEpoch, head, rec))
		for _, m := range t.msgs[from:] {
			bc.write(m)
		}
		t.subs[bc] = cmd.Presence
	case wire.OpUnsub:
		b.mu.Lock()
		delete(b.topicLocked(cmd.Topic).subs, bc)
		b.mu.Unlock()
		bc.write(wire.AppendOK(nil, cmd.ID))
	case wire.OpEnter, wire.OpLeave, wire.OpPresence:
		b.handlePresence(bc, cmd)
	}
}

// handlePresence answers enter, leave and presence as the server does
// where the namespace enables presence: ok first, then the event.
func (b *broker) handlePresence(bc *brokerConn, cmd *wire.Command) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topicLocked(cmd.Topic)
	switch cmd.Op {
	case wire.OpEnter:
		op := wire.OpJoin
		if _, ok := t.members[bc]; ok {
			op = wire.OpUpdate
		}
		t.members[bc] = cmd.Info
		bc.write(wire.AppendOK(nil, cmd.ID))
		t.presenceEvent(op, cmd.Topic, bc, cmd.Info)
	case wire.OpLeave:
		if _, ok := t.members[bc]; !ok {
			bc.write(wire.AppendError(nil, &wire.Error{Code: wire.CodeBadRequest, Message: "not a member of " + cmd.Topic, ID: cmd.ID}))
			return
		}
		delete(t.members, bc)
		bc.write(wire.AppendOK(nil, cmd.ID))
		t.presenceEvent(wire.OpLeave, cmd.Topic, bc, nil)
	case wire.OpPresence:
		conns := slices.SortedFunc(maps.Keys(t.members), func(x, y *brokerConn) int { return strings.Compare(x.id, y.id) })
		members := make([][]byte, len(conns))
		for i, m := range conns {
			members[i] = wire.AppendMember(nil, m.id, m.id, t.members[m])
		}
		bc.write(wire.AppendPresenceOK(nil, cmd.ID, cmd.Topic, len(members), members))
	}
}

// presenceEvent sends a member's event to the topic's presence
// subscribers; b.mu must be held.
func (t *brokerTopic) presenceEvent(op, topic string, member *brokerConn, info []byte) {
	frame := wire.AppendPresenceEvent(nil, op, topic, member.id, member.id, info)
	for bc, presence := range t.subs {
		if presence {
			bc.write(frame)
		}
	}
}

// drop closes the connection whose id is conn, as a network failure
// would: the client reconnects.
func (b *broker) drop(conn string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for bc := range b.conns {
		if bc.id == conn {
			_ = bc.nc.Close() // its reader ends it
		}
	}
}

// write sends frame as one message; a failed write ends the connection,
// which its reader then sees.
func (bc *brokerConn) write(frame []byte) {
	bc.wmu.Lock()
	defer bc.wmu.Unlock()
	if err := wsutil.WriteServerText(bc.nc, frame); err != nil {
		_ = bc.nc.Close() // the reader ends the connection
	}
}
