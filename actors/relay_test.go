package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// fakeStore is a durable HistoryStore in memory, with fencing, for tests.
type fakeStore struct {
	mu     sync.Mutex
	topics map[string]*fakeTopic
}

type fakeTopic struct {
	fence uint64
	epoch string
	head  uint64
	msgs  []StoredMessage
	keys  map[string]uint64
}

func newFakeStore() *fakeStore { return &fakeStore{topics: make(map[string]*fakeTopic)} }

func (s *fakeStore) Open(_ context.Context, topic, newEpoch string, limit int, minAt int64) (*TopicState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topic]
	if t == nil {
		t = &fakeTopic{epoch: newEpoch, keys: make(map[string]uint64)}
		s.topics[topic] = t
	}
	t.fence++
	st := &TopicState{Fence: t.fence, Epoch: t.epoch, Head: t.head}
	for _, m := range t.msgs {
		if m.At >= minAt {
			st.Messages = append(st.Messages, m)
		}
	}
	if len(st.Messages) > limit {
		st.Messages = st.Messages[len(st.Messages)-limit:]
	}
	return st, nil
}

func (s *fakeStore) Append(_ context.Context, topic string, fence uint64, msgs []StoredMessage, _ uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topic]
	if t.fence != fence || msgs[0].Seq != t.head+1 {
		return ErrFenced
	}
	dup := &DuplicateKeysError{Seqs: map[string]uint64{}}
	for _, m := range msgs {
		if seq, ok := t.keys[m.Key]; ok && m.Key != "" {
			dup.Seqs[m.Key] = seq
		}
	}
	if len(dup.Seqs) > 0 {
		return dup
	}
	for _, m := range msgs {
		t.msgs = append(t.msgs, m)
		if m.Key != "" {
			t.keys[m.Key] = m.Seq
		}
	}
	t.head = msgs[len(msgs)-1].Seq
	return nil
}

func (s *fakeStore) Trim(context.Context, string, uint64, uint64) error { return nil }

func (s *fakeStore) Fence(_ context.Context, topic string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.topics[topic]; t != nil {
		return t.fence, nil
	}
	return 0, nil
}
func (s *fakeStore) Durable() bool { return true }

// newRelayEnv is newEnv whose actor system ends its dead-letter throttle
// quickly: these tests make dead letters on purpose (joins and leaves that
// reach a stopped topic actor), and the throttle's goroutine outlives them
// by its interval.
func newRelayEnv(t *testing.T, cfg TopicConfig) *env {
	t.Helper()
	system := actor.NewActorSystem(actor.WithLoggerFactory(testutil.DiscardActorLogs),
		actor.WithDeadLetterThrottleInterval(10*time.Millisecond))
	t.Cleanup(system.Shutdown)
	e := &env{t: t, system: system, topics: NewLocalTopics(system, cfg)}
	e.relays = NewRelays(system, e.topics, RelayConfig{JoinTimeout: time.Second})
	e.conns = NewConns(system, e.topics, e.relays, ConnConfig{MaxMessage: 1024})
	return e
}

// stopTopic stops the topic's actor, as a move or a failover would, and
// waits until it is gone.
func (e *env) stopTopic(topic string) {
	e.t.Helper()
	pid, err := e.topics.TopicPID(topic)
	require.NoError(e.t, err)
	// The actor has stopped (and LocalTopics forgot it) once this returns.
	require.NoError(e.t, e.system.Root.PoisonFuture(pid).Wait())
}

// With a durable store, a topic actor that stops and comes back (elsewhere)
// continues its epoch: the relay rejoins and its subscribers get every
// message once, with no reset.
func TestRelayRejoinRecoversFromDurableStore(t *testing.T) {
	store := newFakeStore()
	e := newRelayEnv(t, TopicConfig{Store: store})
	c := e.connect()
	c.send(`{"op":"sub","id":1,"topic":"t"}`)
	ok := c.next(t, 1)[0]
	for i := range 3 {
		e.publish("t", data(i))
	}
	e.stopTopic("t")
	// Published on the new activation before or after the relay rejoins:
	// either way they reach the subscriber once.
	for i := range 3 {
		e.publish("t", data(i))
	}
	frames := c.next(t, 6)
	for i, f := range frames {
		require.Equal(t, "msg", f.Op, f.Raw)
		require.Equal(t, ok.Epoch, f.Epoch)
		require.Equal(t, uint64(i+1), f.Seq)
	}
	// The relay is registered with the new activation: live messages flow.
	e.publish("t", data(7))
	require.Equal(t, uint64(7), c.next(t, 1)[0].Seq)
	// A repeated key is answered from the store across activations.
	first := e.publish("t", &actorpb.PublishItem{Data: []byte(`1`), Key: "k"})
	e.stopTopic("t")
	again := e.publish("t", &actorpb.PublishItem{Data: []byte(`1`), Key: "k"})
	require.Equal(t, first.Seqs, again.Seqs)
	require.Equal(t, first.Epoch, again.Epoch)
}

// Without a durable store, the topic comes back in a new epoch: the relay
// tells every subscriber with a reset frame, never a silent gap.
func TestRelayRejoinResetsWithoutDurableStore(t *testing.T) {
	e := newRelayEnv(t, TopicConfig{})
	c := e.connect()
	c.send(`{"op":"sub","id":1,"topic":"t"}`)
	ok := c.next(t, 1)[0]
	e.publish("t", data(1))
	require.Equal(t, uint64(1), c.next(t, 1)[0].Seq)
	e.stopTopic("t")
	reset := c.next(t, 1)[0]
	require.Equal(t, "reset", reset.Op, reset.Raw)
	require.NotEqual(t, ok.Epoch, reset.Epoch)
	require.Equal(t, uint64(0), reset.Seq)
	e.publish("t", data(2))
	msg := c.next(t, 1)[0]
	require.Equal(t, reset.Epoch, msg.Epoch)
	require.Equal(t, uint64(1), msg.Seq)
}

// A delivery that skips seqs is not written: the relay rejoins and the
// topic's answer fills the gap (here there was none to fill).
func TestRelayDropsDeliveryWithGap(t *testing.T) {
	e := newRelayEnv(t, TopicConfig{})
	c := e.connect()
	c.send(`{"op":"sub","id":1,"topic":"t"}`)
	ok := c.next(t, 1)[0]
	e.publish("t", data(1))
	require.Equal(t, uint64(1), c.next(t, 1)[0].Seq)
	e.relays.mu.Lock()
	relay := e.relays.m["t"].pid
	e.relays.mu.Unlock()
	bogus := wire.AppendMsg(nil, "t", ok.Epoch, 5, 0, []byte(`"bogus"`))
	e.system.Root.Send(relay, &actorpb.Delivery{Topic: "t", Epoch: ok.Epoch, FirstSeq: 5, Frames: [][]byte{bogus}})
	e.publish("t", data(2))
	msg := c.next(t, 1)[0]
	require.Equal(t, uint64(2), msg.Seq, msg.Raw)
	c.send(`{"op":"ping"}`)
	require.Equal(t, "pong", c.next(t, 1)[0].Op)
}
