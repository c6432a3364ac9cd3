package actors

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// fakeClock is a Clock that tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// env is one actor system with a node's actors, for one test.
type env struct {
	t      *testing.T
	system *actor.ActorSystem
	topics *LocalTopics
	relays *Relays
	conns  *Conns
}

func newEnv(t *testing.T, cfg TopicConfig) *env {
	t.Helper()
	system := actor.NewActorSystem(actor.WithLoggerFactory(testutil.DiscardActorLogs))
	t.Cleanup(system.Shutdown)
	e := &env{t: t, system: system, topics: NewLocalTopics(system, cfg)}
	e.relays = NewRelays(system, e.topics, RelayConfig{JoinTimeout: time.Second})
	e.conns = NewConns(system, e.topics, e.relays, ConnConfig{MaxMessage: 1024})
	return e
}

func (e *env) request(topic string, msg any) any {
	e.t.Helper()
	pid, err := e.topics.TopicPID(topic)
	require.NoError(e.t, err)
	res, err := e.system.Root.RequestFuture(pid, msg, 5*time.Second).Result()
	require.NoError(e.t, err)
	return res
}

func (e *env) publish(topic string, items ...*actorpb.PublishItem) *actorpb.PublishResponse {
	e.t.Helper()
	return e.request(topic, &actorpb.PublishRequest{Topic: topic, Items: items}).(*actorpb.PublishResponse)
}

func (e *env) history(topic string, since uint64) *actorpb.HistoryResponse {
	e.t.Helper()
	return e.request(topic, &actorpb.HistoryRequest{Topic: topic, Since: since}).(*actorpb.HistoryResponse)
}

func data(i int) *actorpb.PublishItem {
	return &actorpb.PublishItem{Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}
}

// client is a connection actor fed by a recording session.
type client struct {
	sess    *testutil.Session
	handler interface{ HandleFrame([]byte) }
	seen    int
}

func (e *env) connect() *client {
	s := testutil.NewSession()
	h := e.conns.Accept(s)
	e.t.Cleanup(func() { h.HandleClosed(nil) })
	return &client{sess: s, handler: h}
}

func (c *client) send(frame string) { c.handler.HandleFrame([]byte(frame)) }

// next waits for n more frames and returns them.
func (c *client) next(t *testing.T, n int) []testutil.Frame {
	t.Helper()
	frames := c.sess.WaitFrames(t, c.seen+n, 5*time.Second)
	out := frames[c.seen : c.seen+n]
	c.seen += n
	return out
}

func TestTopicSeqHasNoGapsUnderConcurrentPublishers(t *testing.T) {
	e := newEnv(t, TopicConfig{HistorySize: 5000})
	const publishers, each = 8, 300
	seqs := make([][]uint64, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			pid, _ := e.topics.TopicPID("t")
			for i := range each {
				res, err := e.system.Root.RequestFuture(pid, &actorpb.PublishRequest{Topic: "t", Items: []*actorpb.PublishItem{data(i)}}, 5*time.Second).Result()
				if err != nil {
					t.Error(err)
					return
				}
				seqs[p] = append(seqs[p], res.(*actorpb.PublishResponse).Seqs[0])
			}
		})
	}
	wg.Wait()
	seen := make(map[uint64]bool)
	for p, s := range seqs {
		require.Len(t, s, each)
		for i := 1; i < len(s); i++ {
			require.Greater(t, s[i], s[i-1], "publisher %d saw seqs go backwards", p)
		}
		for _, q := range s {
			require.False(t, seen[q], "seq %d given twice", q)
			seen[q] = true
		}
	}
	for q := uint64(1); q <= publishers*each; q++ {
		require.True(t, seen[q], "seq %d missing", q)
	}
	h := e.history("t", 0)
	require.Len(t, h.Frames, publishers*each)
	for i, f := range h.Frames {
		require.Equal(t, uint64(i+1), testutil.Decode(t, f).Seq)
	}
}

func TestTopicHistoryTrimsByCount(t *testing.T) {
	e := newEnv(t, TopicConfig{HistorySize: 10})
	for i := range 25 {
		e.publish("t", data(i))
	}
	h := e.history("t", 0)
	require.Equal(t, uint64(25), h.Head)
	require.True(t, h.Truncated)
	require.Len(t, h.Frames, 10)
	require.Equal(t, uint64(16), testutil.Decode(t, h.Frames[0]).Seq)
	// After seq 15 everything is retained.
	h = e.history("t", 15)
	require.False(t, h.Truncated)
	require.Len(t, h.Frames, 10)
	h = e.history("t", 25)
	require.False(t, h.Truncated)
	require.Empty(t, h.Frames)
}

func TestTopicHistoryTrimsByAge(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, TopicConfig{HistorySize: 100, HistoryTTL: 5 * time.Minute, Clock: clock})
	for i := range 5 {
		e.publish("t", data(i))
	}
	clock.Advance(3 * time.Minute)
	for i := range 5 {
		e.publish("t", data(i))
	}
	require.Len(t, e.history("t", 0).Frames, 10)
	clock.Advance(2*time.Minute + time.Second)
	h := e.history("t", 0)
	require.True(t, h.Truncated)
	require.Len(t, h.Frames, 5)
	require.Equal(t, uint64(6), testutil.Decode(t, h.Frames[0]).Seq)
	clock.Advance(3 * time.Minute)
	h = e.history("t", 0)
	require.Empty(t, h.Frames)
	require.Equal(t, uint64(10), h.Head, "expiry must not change the head")
}

func TestTopicIdempotencyKeys(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, TopicConfig{Clock: clock})
	first := e.publish("t", &actorpb.PublishItem{Data: []byte(`1`), Key: "k1"})
	again := e.publish("t", &actorpb.PublishItem{Data: []byte(`1`), Key: "k1"})
	require.Equal(t, first.Seqs, again.Seqs)
	require.Equal(t, first.Epoch, again.Epoch)
	// In one batch, a repeated key answers the first seq and takes none.
	batch := e.publish("t", &actorpb.PublishItem{Data: []byte(`2`), Key: "k2"}, &actorpb.PublishItem{Data: []byte(`2`), Key: "k2"}, data(3))
	require.Equal(t, []uint64{2, 2, 3}, batch.Seqs)
	require.Len(t, e.history("t", 0).Frames, 3)
	clock.Advance(2*time.Minute + time.Second)
	later := e.publish("t", &actorpb.PublishItem{Data: []byte(`1`), Key: "k1"})
	require.Equal(t, []uint64{4}, later.Seqs, "a key is forgotten after 2 minutes")
}

func TestTopicRecoveryRanges(t *testing.T) {
	e := newEnv(t, TopicConfig{HistorySize: 10})
	tests := []struct {
		name      string
		since     wire.Position
		recovered bool
		frames    int
	}{
		{"inside history", wire.Position{Seq: 15}, true, 5},
		{"oldest retained minus one", wire.Position{Seq: 10}, true, 10},
		{"trimmed", wire.Position{Seq: 9}, false, 0},
		{"at head", wire.Position{Seq: 20}, true, 0},
		{"beyond head", wire.Position{Seq: 21}, false, 0},
		{"other epoch", wire.Position{Epoch: "zzzzzzzz", Seq: 15}, false, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := fmt.Sprintf("r%d", i)
			for i := range 20 {
				e.publish(topic, data(i))
			}
			if tt.since.Epoch == "" {
				tt.since.Epoch = e.history(topic, 0).Epoch
			}
			c := e.connect()
			c.send(fmt.Sprintf(`{"op":"sub","id":7,"topic":%q,"since":{"epoch":%q,"seq":%d}}`, topic, tt.since.Epoch, tt.since.Seq))
			frames := c.next(t, 1+tt.frames)
			ok := frames[0]
			require.Equal(t, "ok", ok.Op, ok.Raw)
			require.Equal(t, uint64(7), ok.ID)
			require.Equal(t, uint64(20), ok.Seq)
			require.NotNil(t, ok.Recovered)
			require.Equal(t, tt.recovered, *ok.Recovered)
			for i, f := range frames[1:] {
				require.Equal(t, tt.since.Seq+uint64(i)+1, f.Seq)
			}
			// Live messages follow with no gap.
			e.publish(topic, data(99))
			live := c.next(t, 1)[0]
			require.Equal(t, "msg", live.Op)
			require.Equal(t, uint64(21), live.Seq)
		})
	}
}

func TestTopicPassivatesWhenIdleAndExpired(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, TopicConfig{HistoryTTL: time.Minute, KeyTTL: time.Minute, IdleCheck: 20 * time.Millisecond, Clock: clock})
	first := e.publish("t", data(1))
	// History not expired yet: the topic stays, with its epoch and seq.
	time.Sleep(100 * time.Millisecond) // several idle checks must pass; nothing waits on this for correctness
	require.Equal(t, 1, e.topics.Len())
	clock.Advance(2 * time.Minute)
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := e.topics.Len(); n != 0 {
			return fmt.Errorf("%d topic actors still live", n)
		}
		return nil
	})
	again := e.publish("t", data(2))
	require.NotEqual(t, first.Epoch, again.Epoch, "a re-activated topic starts a new epoch")
	require.Equal(t, []uint64{1}, again.Seqs)
}

func TestTopicWithSubscribersDoesNotPassivate(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, TopicConfig{HistoryTTL: time.Minute, IdleCheck: 20 * time.Millisecond, Clock: clock})
	c := e.connect()
	c.send(`{"op":"sub","id":1,"topic":"t"}`)
	ok := c.next(t, 1)[0]
	clock.Advance(10 * time.Minute)
	time.Sleep(100 * time.Millisecond) // several idle checks; the assertion is that nothing changed
	require.Equal(t, 1, e.topics.Len())
	e.publish("t", data(1))
	msg := c.next(t, 1)[0]
	require.Equal(t, ok.Epoch, msg.Epoch)
	require.Equal(t, uint64(1), msg.Seq)
	// Unsubscribing lets it go.
	c.send(`{"op":"unsub","id":2,"topic":"t"}`)
	require.Equal(t, "ok", c.next(t, 1)[0].Op)
	clock.Advance(10 * time.Minute)
	testutil.Eventually(t, 5*time.Second, func() error {
		if e.topics.Len() != 0 || e.relays.Len() != 0 {
			return fmt.Errorf("topics %d relays %d", e.topics.Len(), e.relays.Len())
		}
		return nil
	})
}

func TestConnCommands(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	c := e.connect()
	c.send(`{"op":"sub","id":1,"topic":"a"}`)
	ok := c.next(t, 1)[0]
	require.Equal(t, testutil.Frame{Op: "ok", ID: 1, Topic: "a", Epoch: ok.Epoch, Raw: ok.Raw}, ok)
	require.NotContains(t, ok.Raw, "recovered")

	steps := []struct {
		name, send string
		want       func(t *testing.T, f testutil.Frame)
	}{
		{"sub twice", `{"op":"sub","id":2,"topic":"a"}`, wantError(2, "bad_request")},
		{"unsub not subscribed", `{"op":"unsub","id":3,"topic":"b"}`, wantError(3, "bad_request")},
		{"unknown op", `{"op":"jump","id":4}`, wantError(4, "bad_request")},
		{"bad topic", `{"op":"sub","id":5,"topic":"a b"}`, wantError(5, "bad_request")},
		{"pub to sys", `{"op":"pub","id":6,"topic":"sys:x","data":1}`, wantError(6, "forbidden")},
		{"pub too large", `{"op":"pub","id":7,"topic":"a","data":"` + string(make([]byte, 0)) + fmt.Sprintf("%01100d", 0) + `"}`, wantError(7, "too_large")},
		{"pub bad json data", `{"op":"pub","id":8,"topic":"a","data":}`, nil},
		{"ping", `{"op":"ping"}`, func(t *testing.T, f testutil.Frame) { require.Equal(t, "pong", f.Op) }},
		{"hello", `{"op":"hello","id":9,"token":"x"}`, func(t *testing.T, f testutil.Frame) {
			require.Equal(t, testutil.Frame{Op: "ok", ID: 9, Raw: f.Raw}, f)
		}},
		{"id not positive", `{"op":"ping","id":0}`, wantError(0, "bad_request")},
	}
	for _, s := range steps {
		if s.want == nil {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			c.send(s.send)
			s.want(t, c.next(t, 1)[0])
		})
	}

	t.Run("pub is answered and delivered", func(t *testing.T) {
		c.send(`{"op":"pub","id":10,"topic":"a","data":{ "b" : [1, 2] }}`)
		frames := c.next(t, 2)
		var ack, msg testutil.Frame
		for _, f := range frames {
			if f.Op == "ok" {
				ack = f
			} else {
				msg = f
			}
		}
		require.Equal(t, uint64(10), ack.ID)
		require.Equal(t, uint64(1), ack.Seq)
		require.Equal(t, "msg", msg.Op)
		require.Equal(t, `{"b":[1,2]}`, string(msg.Data), "data is compacted, not re-ordered")
	})
	t.Run("unsub then no more messages", func(t *testing.T) {
		c.send(`{"op":"unsub","id":11,"topic":"a"}`)
		require.Equal(t, testutil.Frame{Op: "ok", ID: 11, Raw: `{"op":"ok","id":11}`}, c.next(t, 1)[0])
		e.publish("a", data(1))
		c.send(`{"op":"ping"}`)
		require.Equal(t, "pong", c.next(t, 1)[0].Op, "no msg after the unsub's ok")
	})
	t.Run("malformed frame closes with 4009", func(t *testing.T) {
		c.send(`{"op":`)
		d := c.sess.WaitClosed(t, 5*time.Second)
		require.Equal(t, wire.CloseProtocolError, d.Code)
	})
}

func wantError(id uint64, code string) func(t *testing.T, f testutil.Frame) {
	return func(t *testing.T, f testutil.Frame) {
		t.Helper()
		require.Equal(t, "error", f.Op, f.Raw)
		require.Equal(t, id, f.ID, f.Raw)
		require.Equal(t, code, f.Code, f.Raw)
		require.NotEmpty(t, f.Message)
	}
}

func TestFanOutSharesOneFrameAndKeepsOrder(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	clients := make([]*client, 50)
	for i := range clients {
		clients[i] = e.connect()
		clients[i].send(`{"op":"sub","id":1,"topic":"f"}`)
		clients[i].next(t, 1)
	}
	const n = 200
	for i := range n {
		e.publish("f", data(i))
	}
	var first [][]byte
	for i, c := range clients {
		frames := c.next(t, n)
		for j, f := range frames {
			require.Equal(t, uint64(j+1), f.Seq)
		}
		raw := c.sess.Frames()[1:]
		if i == 0 {
			first = raw
			continue
		}
		for j := range raw {
			require.Same(t, &first[j][0], &raw[j][0], "every subscriber shares the bytes encoded once")
		}
	}
}

func TestClosedConnLeavesNoRelayOrTopicBehind(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, TopicConfig{IdleCheck: 20 * time.Millisecond, HistoryTTL: time.Minute, Clock: clock})
	s := testutil.NewSession()
	h := e.conns.Accept(s)
	for i := range 5 {
		h.HandleFrame([]byte(fmt.Sprintf(`{"op":"sub","id":%d,"topic":"t%d"}`, i+1, i)))
	}
	s.WaitFrames(t, 5, 5*time.Second)
	require.Equal(t, 5, e.relays.Len())
	h.HandleClosed(nil)
	clock.Advance(time.Hour)
	testutil.Eventually(t, 5*time.Second, func() error {
		if e.relays.Len()+e.topics.Len()+e.conns.Len() != 0 {
			return fmt.Errorf("relays %d topics %d conns %d", e.relays.Len(), e.topics.Len(), e.conns.Len())
		}
		return nil
	})
}
