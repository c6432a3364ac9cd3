package sdk_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/topicast/topicast/sdk/wire"
)

// broker is a minimal in-memory topicast server for the examples: one
// epoch per topic and its whole history, subscriptions with since, pub
// over WebSocket and POST /v1/publish with an API key. It speaks the
// protocol with package wire only; the SDK's tests against the real
// server are in test/sdk.
type broker struct {
	srv    *httptest.Server
	apiKey string

	mu     sync.Mutex
	topics map[string]*brokerTopic
	conns  map[*brokerConn]struct{}
	wg     sync.WaitGroup // connection readers
}

type brokerTopic struct {
	msgs [][]byte // msg frames; msgs[i] has seq i+1
	subs map[*brokerConn]struct{}
}

type brokerConn struct {
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
		t = &brokerTopic{subs: make(map[*brokerConn]struct{})}
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
	bc := &brokerConn{nc: nc}
	b.mu.Lock()
	b.conns[bc] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.conns, bc)
		for _, t := range b.topics {
			delete(t.subs, bc)
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
		t.subs[bc] = struct{}{}
	case wire.OpUnsub:
		b.mu.Lock()
		delete(b.topicLocked(cmd.Topic).subs, bc)
		b.mu.Unlock()
		bc.write(wire.AppendOK(nil, cmd.ID))
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
