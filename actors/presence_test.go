package actors

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/transport"
)

var presenceNamespaces = Namespaces{
	{Pattern: "room.*", Presence: true, JoinLeave: true},
	{Pattern: "count.*", Presence: true},
}

// presenceEnv returns an env whose namespaces allow presence, and the
// node's counters its relays keep.
func presenceEnv(t *testing.T) (*env, *transport.NodeMetrics) {
	e := newEnv(t, TopicConfig{Namespaces: presenceNamespaces})
	m := new(transport.NodeMetrics)
	e.relays = NewRelays(e.system, e.topics, RelayConfig{JoinTimeout: time.Second, Metrics: m})
	e.conns = NewConns(e.system, e.topics, e.relays, ConnConfig{MaxMessage: 1024, Namespaces: presenceNamespaces, NodeName: "n1"})
	return e, m
}

// Enter, update and leave reach a watcher subscribed with presence as
// join, update and leave events, in order; presence lists the members;
// a connection that closes leaves.
func TestPresenceEnterLeaveEvents(t *testing.T) {
	e, metrics := presenceEnv(t)
	watcher := e.connect()
	watcher.send(`{"op":"sub","id":1,"topic":"room.1","presence":true}`)
	require.Equal(t, "ok", watcher.next(t, 1)[0].Op)

	alice := e.connect()
	alice.send(`{"op":"enter","id":2,"topic":"room.1","info":{"name":"alice"}}`)
	require.Equal(t, "ok", alice.next(t, 1)[0].Op)
	join := watcher.next(t, 1)[0]
	require.Equal(t, "join", join.Op, join.Raw)
	require.Equal(t, "room.1", join.Topic)
	require.True(t, strings.HasPrefix(join.Conn, "n1-"), join.Raw)
	require.Equal(t, join.Conn, join.Client, "without tokens the client is the connection")
	require.JSONEq(t, `{"name":"alice"}`, string(join.Info))

	alice.send(`{"op":"enter","id":3,"topic":"room.1","info":{"name":"alice","away":true}}`)
	require.Equal(t, "ok", alice.next(t, 1)[0].Op)
	upd := watcher.next(t, 1)[0]
	require.Equal(t, "update", upd.Op, upd.Raw)
	require.JSONEq(t, `{"name":"alice","away":true}`, string(upd.Info))

	bob := e.connect()
	bob.send(`{"op":"enter","id":4,"topic":"room.1"}`)
	require.Equal(t, "ok", bob.next(t, 1)[0].Op)
	require.Equal(t, "join", watcher.next(t, 1)[0].Op)

	watcher.send(`{"op":"presence","id":5,"topic":"room.1"}`)
	ans := watcher.next(t, 1)[0]
	require.Equal(t, "ok", ans.Op, ans.Raw)
	require.Equal(t, uint64(5), ans.ID)
	require.Equal(t, 2, ans.Count)
	require.Len(t, ans.Members, 2)

	alice.send(`{"op":"leave","id":6,"topic":"room.1"}`)
	require.Equal(t, "ok", alice.next(t, 1)[0].Op)
	leave := watcher.next(t, 1)[0]
	require.Equal(t, "leave", leave.Op, leave.Raw)
	require.Equal(t, join.Conn, leave.Conn)
	require.Nil(t, leave.Info)

	// bob's connection closes: he leaves.
	bob.handler.(interface{ HandleClosed(error) }).HandleClosed(nil)
	require.Equal(t, "leave", watcher.next(t, 1)[0].Op)
	testutil.Eventually(t, 5*time.Second, func() error {
		p, err := e.topics.Presence(t.Context(), "room.1", 0)
		if err != nil {
			return err
		}
		if p.Count != 0 {
			return fmt.Errorf("%d members left", p.Count)
		}
		return nil
	})
	require.Equal(t, int64(0), metrics.PresenceMembers.Load())
}

// Presence needs a namespace that allows it; sub with presence needs
// join_leave; leave needs a membership; info over 1 KiB is too large.
func TestPresenceRefusals(t *testing.T) {
	e, _ := presenceEnv(t)
	c := e.connect()
	for _, step := range []struct{ send, code, in string }{
		{`{"op":"enter","id":1,"topic":"chat"}`, "bad_request", "presence is off by default"},
		{`{"op":"presence","id":2,"topic":"chat"}`, "bad_request", "presence is off by default"},
		{`{"op":"sub","id":3,"topic":"count.1","presence":true}`, "bad_request", "count.*"},
		{`{"op":"leave","id":4,"topic":"room.1"}`, "bad_request", "not a member"},
		{`{"op":"enter","id":5,"topic":"room.1","info":"` + strings.Repeat("x", 1100) + `"}`, "too_large", "info"},
	} {
		c.send(step.send)
		f := c.next(t, 1)[0]
		require.Equal(t, step.code, f.Code, step.send)
		require.Contains(t, f.Message, step.in, step.send)
	}
	// count.* allows members, not events.
	c.send(`{"op":"enter","id":6,"topic":"count.1"}`)
	require.Equal(t, "ok", c.next(t, 1)[0].Op)
	c.send(`{"op":"presence","id":7,"topic":"count.1"}`)
	require.Equal(t, 1, c.next(t, 1)[0].Count)
}

// 1,000 members entering one topic make exactly 1,000 joins for each
// watcher, and the count is exact; half of them closing makes exactly 500
// leaves.
func TestPresenceCrowd(t *testing.T) {
	testutil.SkipIfShort(t)
	const members, watchers = 1000, 10
	e, _ := presenceEnv(t)
	ws := make([]*client, watchers)
	for i := range ws {
		ws[i] = e.connect()
		ws[i].send(`{"op":"sub","id":1,"topic":"room.crowd","presence":true}`)
		require.Equal(t, "ok", ws[i].next(t, 1)[0].Op)
	}
	ms := make([]*client, members)
	for i := range ms {
		ms[i] = e.connect()
		ms[i].send(fmt.Sprintf(`{"op":"enter","id":1,"topic":"room.crowd","info":{"i":%d}}`, i))
	}
	count := func(w *client, op string, want int) {
		t.Helper()
		frames := w.sess.WaitFrames(t, w.seen+want, 20*time.Second)
		n := 0
		for _, f := range frames[w.seen:] {
			if f.Op == op {
				n++
			}
		}
		require.Equal(t, want, n, op)
		w.seen = len(frames)
	}
	for _, w := range ws {
		count(w, "join", members)
	}
	for _, m := range ms[:members/2] {
		m.handler.(interface{ HandleClosed(error) }).HandleClosed(nil)
	}
	for _, w := range ws {
		count(w, "leave", members/2)
	}
	p, err := e.topics.Presence(t.Context(), "room.crowd", 0)
	require.NoError(t, err)
	require.Equal(t, members/2, p.Count)
	require.Len(t, p.Members, members/2)
	time.Sleep(100 * time.Millisecond)
	for _, w := range ws {
		require.Len(t, w.sess.Frames(), w.seen, "no event beyond the exact count")
	}
}

// BenchmarkPresenceJoins makes one connection enter a topic per op, with
// 100 watchers subscribed to its presence events, and waits until every
// watcher has every join: the cost of a join, seen by all.
func BenchmarkPresenceJoins(b *testing.B) {
	const watchers = 100
	system := actor.NewActorSystem(actor.WithLoggerFactory(testutil.DiscardActorLogs))
	defer system.Shutdown()
	topics := NewLocalTopics(system, TopicConfig{Namespaces: presenceNamespaces})
	relays := NewRelays(system, topics, RelayConfig{})
	conns := NewConns(system, topics, relays, ConnConfig{Namespaces: presenceNamespaces})
	var seen, acked atomic.Int64
	for range watchers {
		h := conns.Accept(&countingSession{n: &seen})
		h.HandleFrame([]byte(`{"op":"sub","id":1,"topic":"room.bench","presence":true}`))
	}
	waitFor(b, &seen, watchers) // the subscriptions' oks
	seen.Store(0)
	enter := []byte(`{"op":"enter","id":1,"topic":"room.bench","info":{"name":"player"}}`)
	handlers := make([]interface{ HandleFrame([]byte) }, b.N)
	for i := range handlers {
		handlers[i] = conns.Accept(&countingSession{n: &acked, info: transport.SessionInfo{ID: fmt.Sprintf("m%d", i)}})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, h := range handlers {
		h.HandleFrame(enter)
	}
	waitFor(b, &seen, int64(b.N)*watchers)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
	b.ReportMetric(float64(b.N)*watchers/b.Elapsed().Seconds(), "events/s")
}

// With tokens, enter and presence need the token's subscribe permission
// (forbidden); the client of a member is the token's subject; a
// connection enters at most MaxSubscriptions topics.
func TestPresenceGuarded(t *testing.T) {
	e := newGuardEnv(t)
	e.topics = NewLocalTopics(e.system, TopicConfig{Namespaces: presenceNamespaces})
	e.relays = NewRelays(e.system, e.topics, RelayConfig{JoinTimeout: time.Second})
	e.conns = NewConns(e.system, e.topics, e.relays, ConnConfig{MaxMessage: 1024, Namespaces: presenceNamespaces, NodeName: "n1"})
	_, accept := e.guarded(GuardConfig{TokenSecret: guardSecret, MaxSubscriptions: 2})
	c := e.connectWith(accept, guardToken(t, time.Hour, "room.a", "room.b", "room.c"))
	c.send(`{"op":"sub","id":1,"topic":"room.a","presence":true}`)
	require.Equal(t, "ok", c.next(t, 1)[0].Op)

	c.send(`{"op":"enter","id":2,"topic":"room.z"}`)
	f := c.next(t, 1)[0]
	require.Equal(t, "forbidden", f.Code, f.Raw)
	c.send(`{"op":"presence","id":3,"topic":"room.z"}`)
	require.Equal(t, "forbidden", c.next(t, 1)[0].Code)

	c.send(`{"op":"enter","id":4,"topic":"room.a"}`)
	frames := c.next(t, 2) // the ok and the join, in either order
	ops := []string{frames[0].Op, frames[1].Op}
	require.ElementsMatch(t, []string{"ok", "join"}, ops)
	for _, f := range frames {
		if f.Op == "join" {
			require.Equal(t, "a", f.Client, "the token's subject")
			require.True(t, strings.HasPrefix(f.Conn, "n1-"), f.Raw)
		}
	}
	c.send(`{"op":"enter","id":5,"topic":"room.b"}`)
	require.Equal(t, "ok", c.next(t, 1)[0].Op)
	c.send(`{"op":"enter","id":6,"topic":"room.c"}`)
	f = c.next(t, 1)[0]
	require.Equal(t, "bad_request", f.Code, f.Raw)
	require.Contains(t, f.Message, "too many entered topics")
	c.send(`{"op":"enter","id":7,"topic":"room.a","info":1}`)
	require.Equal(t, "ok", c.next(t, 2)[0].Op, "entering again is an update, not one more topic")
}

// An enter followed at once by its leave, on a topic this node has no
// relay for yet, gets both answers in order (the relay must not stop with
// the enter unanswered).
func TestPresenceEnterThenLeaveAnswersBoth(t *testing.T) {
	e, _ := presenceEnv(t)
	for i := range 20 {
		c := e.connect()
		topic := fmt.Sprintf("room.quick%d", i)
		c.send(`{"op":"enter","id":2,"topic":"` + topic + `"}`)
		c.send(`{"op":"leave","id":3,"topic":"` + topic + `"}`)
		fs := c.next(t, 2)
		require.Equal(t, []uint64{2, 3}, []uint64{fs[0].ID, fs[1].ID}, "%s %s", fs[0].Raw, fs[1].Raw)
		require.Equal(t, "ok", fs[0].Op)
		require.Equal(t, "ok", fs[1].Op)
	}
}

// A refresh whose token no longer allows a topic ends the membership
// there: the others see the leave.
func TestPresenceRefreshRevokes(t *testing.T) {
	e := newGuardEnv(t)
	e.topics = NewLocalTopics(e.system, TopicConfig{Namespaces: presenceNamespaces})
	e.relays = NewRelays(e.system, e.topics, RelayConfig{JoinTimeout: time.Second})
	e.conns = NewConns(e.system, e.topics, e.relays, ConnConfig{MaxMessage: 1024, Namespaces: presenceNamespaces})
	_, accept := e.guarded(GuardConfig{TokenSecret: guardSecret})
	watcher := e.connectWith(accept, guardToken(t, time.Hour, "room.*"))
	watcher.send(`{"op":"sub","id":1,"topic":"room.r","presence":true}`)
	require.Equal(t, "ok", watcher.next(t, 1)[0].Op)
	m := e.connectWith(accept, guardToken(t, time.Hour, "room.*"))
	m.send(`{"op":"enter","id":1,"topic":"room.r"}`)
	require.Equal(t, "ok", m.next(t, 1)[0].Op)
	require.Equal(t, "join", watcher.next(t, 1)[0].Op)
	m.send(`{"op":"refresh","id":2,"token":"` + guardToken(t, time.Hour, "other.*") + `"}`)
	require.Equal(t, "ok", m.next(t, 1)[0].Op)
	require.Equal(t, "leave", watcher.next(t, 1)[0].Op)
}

// recordingRelay stands for a node's relay at a topic actor: it records
// the PresenceEvents it gets.
type recordingRelay struct {
	mu     sync.Mutex
	events []*actorpb.PresenceEvents
	joined chan *actorpb.JoinResponse
}

func (r *recordingRelay) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *actorpb.JoinResponse:
		r.joined <- msg
	case *actorpb.PresenceEvents:
		r.mu.Lock()
		r.events = append(r.events, msg)
		r.mu.Unlock()
	}
}

func (r *recordingRelay) frames() (n, messages int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		n += len(ev.Frames)
	}
	return n, len(r.events)
}

// A full set comes in chunks that replace the relay's set together, and a
// rebuild's events go out in chunks of bounded size, each naming the
// activation.
func TestPresenceFullSetInChunks(t *testing.T) {
	e, _ := presenceEnv(t)
	rec := &recordingRelay{joined: make(chan *actorpb.JoinResponse, 1)}
	relay := e.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return rec }))
	topic, _ := e.topics.TopicPID("room.big")
	e.system.Root.Send(topic, &actorpb.JoinRequest{Topic: "room.big", Relay: relay, Tag: 1, Rejoin: true})
	require.True(t, (<-rec.joined).Registered)

	const members = 600 // with 1 KiB infos: about 600 KiB, over two chunks
	info := []byte(`"` + strings.Repeat("i", 1000) + `"`)
	var all []*actorpb.PresenceMember
	for i := range members {
		all = append(all, &actorpb.PresenceMember{Client: "c", Conn: fmt.Sprintf("n1-ws-%d", i), Info: info})
	}
	half := members / 2
	e.system.Root.Send(topic, &actorpb.PresenceChange{Topic: "room.big", Relay: relay, Full: true, Entered: all[:half]})
	p, err := e.topics.Presence(t.Context(), "room.big", 0)
	require.NoError(t, err)
	require.Zero(t, p.Count, "a full set counts once its last chunk came")
	e.system.Root.Send(topic, &actorpb.PresenceChange{Topic: "room.big", Relay: relay, Full: true, Last: true, Entered: all[half:]})
	p, err = e.topics.Presence(t.Context(), "room.big", 0)
	require.NoError(t, err)
	require.Equal(t, members, p.Count)
	testutil.Eventually(t, 5*time.Second, func() error {
		if n, _ := rec.frames(); n != members {
			return fmt.Errorf("%d joins", n)
		}
		return nil
	})
	_, messages := rec.frames()
	require.GreaterOrEqual(t, messages, 3, "600 KiB of joins in chunks of at most 256 KiB")
	rec.mu.Lock()
	for _, ev := range rec.events {
		require.True(t, ev.Activation.Equal(topic))
		size := 0
		for _, f := range ev.Frames {
			size += len(f)
		}
		require.LessOrEqual(t, size, maxPresenceChunk)
	}
	rec.mu.Unlock()

	// The same set again, less one member: one leave, nothing else.
	e.system.Root.Send(topic, &actorpb.PresenceChange{Topic: "room.big", Relay: relay, Full: true, Last: true, Entered: all[1:]})
	testutil.Eventually(t, 5*time.Second, func() error {
		if n, _ := rec.frames(); n != members+1 {
			return fmt.Errorf("%d events", n)
		}
		return nil
	})
	p, err = e.topics.Presence(t.Context(), "room.big", 0)
	require.NoError(t, err)
	require.Equal(t, members-1, p.Count)
}

// A client that enters and leaves 1,000 times a second meets the command
// rate limit, then is closed as a flood; nothing is left behind: every
// join its watchers saw has its leave, the node counts no member, and the
// topic lists none.
func TestPresenceChurnIsLimited(t *testing.T) {
	e := newGuardEnv(t)
	m := new(transport.NodeMetrics)
	e.topics = NewLocalTopics(e.system, TopicConfig{Namespaces: presenceNamespaces})
	e.relays = NewRelays(e.system, e.topics, RelayConfig{JoinTimeout: time.Second, Metrics: m})
	e.conns = NewConns(e.system, e.topics, e.relays, ConnConfig{MaxMessage: 1024, Namespaces: presenceNamespaces})
	_, accept := e.guarded(GuardConfig{CommandRate: 100, CommandBurst: 100})
	watcher := e.connectWith(accept, "")
	watcher.send(`{"op":"sub","id":1,"topic":"room.churn","presence":true}`)
	require.Equal(t, "ok", watcher.next(t, 1)[0].Op)

	churner := e.connectWith(accept, "")
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 1; i <= 1000; i++ {
		<-tick.C
		if i%2 == 1 {
			churner.send(fmt.Sprintf(`{"op":"enter","id":%d,"topic":"room.churn"}`, i))
		} else {
			churner.send(fmt.Sprintf(`{"op":"leave","id":%d,"topic":"room.churn"}`, i))
		}
	}
	require.Equal(t, DisconnectFlood, churner.sess.WaitClosed(t, 5*time.Second))
	churner.handler.(interface{ HandleClosed(error) }).HandleClosed(nil)
	limited := 0
	for _, f := range churner.sess.WaitFrames(t, 1, time.Second) {
		if f.Code == "rate_limited" {
			limited++
		}
	}
	require.Positive(t, limited, "the rate limit answered before the close")

	testutil.Eventually(t, 5*time.Second, func() error {
		joins, leaves := 0, 0
		for _, f := range watcher.sess.Frames() {
			switch testutil.Decode(t, f).Op {
			case "join":
				joins++
			case "leave":
				leaves++
			}
		}
		if joins == 0 || joins != leaves {
			return fmt.Errorf("%d joins, %d leaves", joins, leaves)
		}
		if n := m.PresenceMembers.Load(); n != 0 {
			return fmt.Errorf("the node counts %d members", n)
		}
		return nil
	})
	p, err := e.topics.Presence(t.Context(), "room.churn", 0)
	require.NoError(t, err)
	require.Zero(t, p.Count)
}
