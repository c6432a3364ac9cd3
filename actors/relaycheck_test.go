package actors

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/internal/testutil"
)

// probe is an actor that hands every message it gets to a channel, standing
// in for a relay on another node.
type probe struct {
	pid *actor.PID
	ch  chan any
}

func (e *env) newProbe() *probe {
	p := &probe{ch: make(chan any, 64)}
	p.pid = e.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case actor.SystemMessage, actor.AutoReceiveMessage:
		default:
			p.ch <- c.Message()
		}
	}))
	e.t.Cleanup(func() { e.system.Root.Stop(p.pid) })
	return p
}

func (p *probe) next(t *testing.T) any {
	t.Helper()
	select {
	case m := <-p.ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("the probe got nothing")
		return nil
	}
}

func (e *env) send(topic string, msg any) {
	e.t.Helper()
	pid, err := e.topics.TopicPID(topic)
	require.NoError(e.t, err)
	e.system.Root.Send(pid, msg)
}

func (e *env) relayPID(topic string) *actor.PID {
	e.relays.mu.Lock()
	defer e.relays.mu.Unlock()
	return e.relays.m[topic].pid
}

// A check is answered only when the relay is behind or unknown, and the
// answer registers it and carries what it missed.
func TestTopicAnswersChecksOnlyWhenNeeded(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	p := e.newProbe()
	e.send("t", &actorpb.JoinRequest{Topic: "t", Relay: p.pid, Tag: 1, Rejoin: true})
	joined := p.next(t).(*actorpb.JoinResponse)
	e.publish("t", data(1))
	require.Equal(t, uint64(1), p.next(t).(*actorpb.Delivery).FirstSeq)

	check := func(tag, seq uint64) *actorpb.JoinRequest {
		return &actorpb.JoinRequest{Topic: "t", Relay: p.pid, Tag: tag, Rejoin: true, Check: true,
			RelaySince: &actorpb.Position{Epoch: joined.Epoch, Seq: seq}}
	}
	// Up to date: no answer, the next thing the probe gets is a delivery.
	e.send("t", check(2, 1))
	e.publish("t", data(2))
	d := p.next(t).(*actorpb.Delivery)
	require.Equal(t, uint64(2), d.FirstSeq)

	// Behind (its last delivery was lost): the answer brings it to head.
	e.send("t", check(3, 0))
	r := p.next(t).(*actorpb.JoinResponse)
	require.Equal(t, uint64(3), r.Tag)
	require.True(t, r.RelayRecovered)
	require.Len(t, r.RelayFrames, 2)
	require.Equal(t, uint64(2), r.Head)

	// Dropped without knowing: the check registers it again.
	e.send("t", &actorpb.LeaveRequest{Topic: "t", Relay: p.pid})
	e.publish("t", data(3))
	e.send("t", check(4, 2))
	r = p.next(t).(*actorpb.JoinResponse)
	require.Equal(t, uint64(4), r.Tag)
	require.True(t, r.RelayRecovered)
	require.Len(t, r.RelayFrames, 1)
	require.Equal(t, uint64(3), testutil.Decode(t, r.RelayFrames[0]).Seq)
	e.publish("t", data(4))
	require.Equal(t, uint64(4), p.next(t).(*actorpb.Delivery).FirstSeq)
}

// A relay whose watch fired for its whole address is told, in case it still
// lives (a node restarted at the same address); one that stopped is not.
func TestTopicTellsRelayDroppedByAddress(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	p := e.newProbe()
	e.send("t", &actorpb.JoinRequest{Topic: "t", Relay: p.pid, Tag: 1, Rejoin: true})
	joined := p.next(t).(*actorpb.JoinResponse)
	e.send("t", &actor.Terminated{Who: p.pid, Why: actor.TerminatedReason_AddressTerminated})
	dropped := p.next(t).(*actorpb.RelayDropped)
	require.Equal(t, "t", dropped.Topic)
	require.True(t, dropped.Activation.Equal(joined.Topic))
	// The notice may be lost on the way: it is told again until it joins.
	require.IsType(t, &actorpb.RelayDropped{}, p.next(t))

	e.send("t", &actorpb.JoinRequest{Topic: "t", Relay: p.pid, Tag: 2, Rejoin: true})
	require.IsType(t, &actorpb.JoinResponse{}, p.next(t))
	select {
	case m := <-p.ch:
		t.Fatalf("a relay that joined again got %T", m)
	case <-time.After(2 * retellFirst):
	}
	e.send("t", &actor.Terminated{Who: p.pid, Why: actor.TerminatedReason_Stopped})
	e.publish("t", data(1))
	select {
	case m := <-p.ch:
		t.Fatalf("a relay that stopped got %T", m)
	case <-time.After(100 * time.Millisecond):
	}
}

// A relay that its topic dropped without telling it finds out by its
// periodic check and catches its subscribers up: no gap, no duplicate.
func TestRelayCheckRecoversSilentDrop(t *testing.T) {
	e := newRelayEnv(t, TopicConfig{})
	c := e.connect()
	c.send(`{"op":"sub","id":1,"topic":"t"}`)
	ok := c.next(t, 1)[0]
	e.publish("t", data(1))
	require.Equal(t, uint64(1), c.next(t, 1)[0].Seq)
	e.send("t", &actorpb.LeaveRequest{Topic: "t", Relay: e.relayPID("t")})
	e.publish("t", data(2))
	e.publish("t", data(3))
	stop := e.relays.StartChecks(10 * time.Millisecond)
	t.Cleanup(stop)
	for i, f := range c.next(t, 2) {
		require.Equal(t, "msg", f.Op, f.Raw)
		require.Equal(t, ok.Epoch, f.Epoch)
		require.Equal(t, uint64(2+i), f.Seq)
	}
	e.publish("t", data(4))
	require.Equal(t, uint64(4), c.next(t, 1)[0].Seq)
}

// A relay told that it was dropped joins again at once, with its position.
func TestRelayRejoinsWhenDropped(t *testing.T) {
	e := newRelayEnv(t, TopicConfig{})
	c := e.connect()
	c.send(`{"op":"sub","id":1,"topic":"t"}`)
	c.next(t, 1)
	relay := e.relayPID("t")
	topic, err := e.topics.TopicPID("t")
	require.NoError(t, err)
	e.send("t", &actorpb.LeaveRequest{Topic: "t", Relay: relay})
	e.publish("t", data(1))
	// From another activation: ignored.
	e.system.Root.Send(relay, &actorpb.RelayDropped{Topic: "t", Activation: actor.NewPID("elsewhere:1", "x")})
	e.system.Root.Send(relay, &actorpb.RelayDropped{Topic: "t", Activation: topic})
	require.Equal(t, uint64(1), c.next(t, 1)[0].Seq)
	e.publish("t", data(2))
	require.Equal(t, uint64(2), c.next(t, 1)[0].Seq)
	c.send(`{"op":"ping"}`)
	require.Equal(t, "pong", c.next(t, 1)[0].Op)
}

// failingStore is a durable fakeStore whose next Append fails with err.
type failingStore struct {
	*fakeStore
	err error
}

func (s *failingStore) Append(ctx context.Context, topic string, fence uint64, msgs []StoredMessage, minSeq uint64) error {
	if err := s.err; err != nil {
		s.err = nil
		return err
	}
	return s.fakeStore.Append(ctx, topic, fence, msgs, minSeq)
}

// A store error that leaves the write in doubt is never answered "retry"
// for a publish without keys: a second try could publish it twice.
func TestTopicRetriesOnlyWhatCannotRepeat(t *testing.T) {
	doubt := errors.New("i/o timeout")
	tests := []struct {
		name  string
		err   error
		key   string
		retry bool
	}{
		{"in doubt, no key", doubt, "", false},
		{"in doubt, keyed", doubt, "k", true},
		{"not written", errors.Join(doubt, ErrNotWritten), "", true},
		{"fenced", ErrFenced, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &failingStore{fakeStore: newFakeStore()}
			e := newRelayEnv(t, TopicConfig{Store: store})
			e.publish("t", data(0))
			store.err = tt.err
			r := e.publish("t", &actorpb.PublishItem{Data: []byte(`1`), Key: tt.key})
			require.NotNil(t, r.Error)
			require.Equal(t, tt.retry, r.Retry)
		})
	}
}

// A stale activation (a newer one numbered past its head) that a joiner is
// ahead of stops and sends the relay to the current one, instead of taking
// the joiner back in time; a position the store never had is answered
// recovered:false, as the protocol says.
func TestStaleActivationSendsJoinersOn(t *testing.T) {
	store := newFakeStore()
	e := newRelayEnv(t, TopicConfig{Store: store})
	for i := range 3 {
		e.publish("t", data(i))
	}
	epoch := e.publish("t", data(3)).Epoch // head 4, this activation holds fence 1
	// Another node's activation claims the topic and publishes 5 and 6.
	st, err := store.Open(context.Background(), "t", "", 100, 0)
	require.NoError(t, err)
	require.NoError(t, store.Append(context.Background(), "t", st.Fence, []StoredMessage{
		{Seq: 5, At: time.Now().UnixNano(), Frame: []byte(`{"op":"msg","topic":"t","epoch":"` + epoch + `","seq":5,"ts":0,"data":5}`)},
		{Seq: 6, At: time.Now().UnixNano(), Frame: []byte(`{"op":"msg","topic":"t","epoch":"` + epoch + `","seq":6,"ts":0,"data":6}`)},
	}, 0))
	c := e.connect()
	c.send(`{"op":"sub","id":1,"topic":"t","since":{"epoch":"` + epoch + `","seq":5}}`)
	frames := c.next(t, 2)
	require.Equal(t, "ok", frames[0].Op, frames[0].Raw)
	require.True(t, *frames[0].Recovered, frames[0].Raw)
	require.Equal(t, uint64(6), frames[0].Seq)
	require.Equal(t, uint64(6), frames[1].Seq, frames[1].Raw)

	c2 := e.connect()
	c2.send(`{"op":"sub","id":2,"topic":"t","since":{"epoch":"` + epoch + `","seq":40}}`)
	ok := c2.next(t, 1)[0]
	require.Equal(t, "ok", ok.Op, ok.Raw)
	require.False(t, *ok.Recovered)
	require.Equal(t, uint64(6), ok.Seq)
}

// openFailingStore is a durable fakeStore whose Open fails a number of
// times first, as while Redis is away.
type openFailingStore struct {
	*fakeStore
	fails atomic.Int32
}

func (s *openFailingStore) Open(ctx context.Context, topic, newEpoch string, limit int, minAt int64) (*TopicState, error) {
	if s.fails.Add(-1) >= 0 {
		return nil, errors.Join(errors.New("connection refused"), ErrNotWritten)
	}
	return s.fakeStore.Open(ctx, topic, newEpoch, limit, minAt)
}

// An activation whose store does not answer tells the joining relay to ask
// again, which it does backing off, and the subscription is made as soon as
// the store is back, not after the relay's join timeout.
func TestRelayAsksAgainWhileTheStoreIsAway(t *testing.T) {
	store := &openFailingStore{fakeStore: newFakeStore()}
	store.fails.Store(4)
	system := actor.NewActorSystem(actor.WithLoggerFactory(testutil.DiscardActorLogs),
		actor.WithDeadLetterThrottleInterval(10*time.Millisecond))
	t.Cleanup(system.Shutdown)
	e := &env{t: t, system: system, topics: NewLocalTopics(system, TopicConfig{Store: store})}
	e.relays = NewRelays(system, e.topics, RelayConfig{JoinTimeout: 10 * time.Second})
	e.conns = NewConns(system, e.topics, e.relays, ConnConfig{MaxMessage: 1024})
	c := e.connect()
	start := time.Now()
	c.send(`{"op":"sub","id":1,"topic":"t"}`)
	ok := c.next(t, 1)[0]
	require.Equal(t, "ok", ok.Op, ok.Raw)
	require.Less(t, time.Since(start), 5*time.Second)
	e.publish("t", data(1))
	require.Equal(t, uint64(1), c.next(t, 1)[0].Seq)
}
