package sdk_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
)

// subscribeSync subscribes c to topic while the test plays the server on
// fc: it answers the sub (at head e1:0) and returns the subscription and
// the sub frame.
func subscribeSync(t *testing.T, c *sdk.Client, fc *fakeConn, topic string, h func(sdk.Message), opts ...sdk.SubOption) (*sdk.Subscription, map[string]any) {
	t.Helper()
	type result struct {
		sub *sdk.Subscription
		err error
	}
	out := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := c.Subscribe(ctx, topic, h, opts...)
		out <- result{s, err}
	}()
	sub := fc.expect(t, wire.OpSub)
	fc.send(t, `{"op":"ok","id":`+jsonNum(sub["id"])+`,"topic":"`+topic+`","epoch":"e1","seq":0}`)
	r := <-out
	require.NoError(t, r.err)
	return r.sub, sub
}

// async runs f in the background with a 5 s context and returns its error.
func async(f func(ctx context.Context) error) <-chan error {
	out := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out <- f(ctx)
	}()
	return out
}

// collect returns the next n client frames but pings, by "op topic", and
// the keys in the order the frames came.
func collect(t *testing.T, fc *fakeConn, n int) (map[string]map[string]any, []string) {
	t.Helper()
	got := map[string]map[string]any{}
	var order []string
	for len(order) < n {
		select {
		case m, ok := <-fc.frames:
			require.True(t, ok, "connection closed")
			if m["op"] == wire.OpPing {
				continue
			}
			k := m["op"].(string) + " " + m["topic"].(string)
			got[k] = m
			order = append(order, k)
		case <-time.After(5 * time.Second):
			t.Fatalf("got %v, waiting for %d frames", order, n)
		}
	}
	return got, order
}

func answerOK(t *testing.T, fc *fakeConn, frame map[string]any) {
	t.Helper()
	fc.send(t, `{"op":"ok","id":`+jsonNum(frame["id"])+`}`)
}

// memberEvents returns the join, update and leave events recorded, as the
// lines of Event.String.
func memberEvents(rec *recorder) []string {
	var out []string
	for _, kind := range []sdk.EventKind{sdk.EventJoin, sdk.EventUpdate, sdk.EventLeave} {
		for _, e := range rec.eventsOf(kind) {
			out = append(out, e.String())
		}
	}
	return out
}

// TestPresenceFrames plays the server to check the frames of Presence,
// Enter, Leave and Client.Presence, the events the application gets, and
// that a reconnection subscribes with presence and enters again with the
// same info, once.
func TestPresenceFrames(t *testing.T) {
	f := newFakeServer(t)
	rec := newRecorder()
	c := dial(t, f.url, fastBackoff(rec))
	fc := f.accept(t)

	s, sub := subscribeSync(t, c, fc, "room.1", rec.handle, sdk.Presence())
	require.Equal(t, true, sub["presence"])
	plain, sub := subscribeSync(t, c, fc, "room.2", rec.handle)
	require.Nil(t, sub["presence"])

	done := async(func(ctx context.Context) error { return s.Enter(ctx, map[string]string{"name": "ada"}) })
	enter := fc.expect(t, wire.OpEnter)
	require.Equal(t, "room.1", enter["topic"])
	require.Equal(t, map[string]any{"name": "ada"}, enter["info"])
	answerOK(t, fc, enter)
	require.NoError(t, <-done)

	// Events of room.2, whose subscription did not ask for them, and of a
	// topic not subscribed are dropped.
	fc.send(t,
		`{"op":"join","topic":"room.1","client":"alice","conn":"n1-ws-1","info":{"name":"alice"}}`,
		`{"op":"join","topic":"room.2","client":"bob","conn":"n1-ws-2"}`,
		`{"op":"join","topic":"room.3","client":"bob","conn":"n1-ws-2"}`,
		`{"op":"update","topic":"room.1","client":"alice","conn":"n1-ws-1","info":{"name":"alice","away":true}}`,
		`{"op":"leave","topic":"room.1","client":"alice","conn":"n1-ws-1"}`)
	rec.waitEvents(t, sdk.EventLeave, 1)
	require.Equal(t, []string{
		`join room.1 alice n1-ws-1 {"name":"alice"}`,
		`update room.1 alice n1-ws-1 {"name":"alice","away":true}`,
		`leave room.1 alice n1-ws-1`,
	}, memberEvents(rec))
	join := rec.eventsOf(sdk.EventJoin)[0]
	require.Equal(t, &wire.Member{Client: "alice", Conn: "n1-ws-1", Info: json.RawMessage(`{"name":"alice"}`)}, join.Member)
	require.Nil(t, rec.eventsOf(sdk.EventLeave)[0].Member.Info)

	type answer struct {
		p   *wire.Presence
		err error
	}
	asked := make(chan answer, 1)
	go func() {
		p, err := c.Presence(context.Background(), "room.1")
		asked <- answer{p, err}
	}()
	q := fc.expect(t, wire.OpPresence)
	require.Equal(t, "room.1", q["topic"])
	fc.send(t, `{"op":"ok","id":`+jsonNum(q["id"])+`,"topic":"room.1","count":3,"members":[`+
		`{"client":"ada","conn":"n1-ws-7","info":{"name":"ada"}},{"client":"bob","conn":"n2-wt-1"}]}`)
	a := <-asked
	require.NoError(t, a.err)
	require.Equal(t, &wire.Presence{Topic: "room.1", Count: 3, Members: []wire.Member{
		{Client: "ada", Conn: "n1-ws-7", Info: json.RawMessage(`{"name":"ada"}`)},
		{Client: "bob", Conn: "n2-wt-1"},
	}}, a.p)

	// The connection breaks: the client subscribes again with presence,
	// then enters again with the same info, once.
	fc.closeWith(t, wire.CloseGoingAway)
	fc = f.accept(t)
	got, order := collect(t, fc, 3)
	require.ElementsMatch(t, []string{"sub room.1", "sub room.2", "enter room.1"}, order)
	require.Less(t, slices.Index(order, "sub room.1"), slices.Index(order, "enter room.1"))
	require.Equal(t, true, got["sub room.1"]["presence"])
	require.Nil(t, got["sub room.2"]["presence"])
	enter = got["enter room.1"]
	require.Equal(t, map[string]any{"name": "ada"}, enter["info"])
	for _, topic := range []string{"room.1", "room.2"} {
		fc.send(t, `{"op":"ok","id":`+jsonNum(got["sub "+topic]["id"])+`,"topic":"`+topic+`","epoch":"e1","seq":0,"recovered":true}`)
	}
	answerOK(t, fc, enter)

	// Enter again changes the info; Leave ends the membership.
	done = async(func(ctx context.Context) error {
		return s.Enter(ctx, json.RawMessage(` {"name": "ada", "away": true} `))
	})
	enter = fc.expect(t, wire.OpEnter)
	require.Equal(t, map[string]any{"name": "ada", "away": true}, enter["info"])
	answerOK(t, fc, enter)
	require.NoError(t, <-done)
	done = async(s.Leave)
	leave := fc.expect(t, wire.OpLeave)
	require.Equal(t, "room.1", leave["topic"])
	answerOK(t, fc, leave)
	require.NoError(t, <-done)
	require.NoError(t, s.Leave(context.Background()), "not a member: nothing to do")

	// Not a member any more: the next connection gets the subs only. The
	// ping the test asks for shows that nothing came between.
	fc.closeWith(t, wire.CloseGoingAway)
	fc = f.accept(t)
	for range 2 {
		m := fc.expect(t, wire.OpSub)
		fc.send(t, `{"op":"ok","id":`+jsonNum(m["id"])+`,"topic":"`+m["topic"].(string)+`","epoch":"e1","seq":0,"recovered":true}`)
	}
	fc.send(t, `{"op":"ping"}`)
	fc.expect(t, wire.OpPong)

	// An Enter without info sends none; a refused one is no membership.
	done = async(func(ctx context.Context) error { return plain.Enter(ctx, nil) })
	enter = fc.expect(t, wire.OpEnter)
	require.Equal(t, "room.2", enter["topic"])
	require.NotContains(t, enter, "info")
	fc.send(t, `{"op":"error","id":`+jsonNum(enter["id"])+`,"topic":"room.2","code":"bad_request","message":"presence is off by default"}`)
	var e *wire.Error
	require.ErrorAs(t, <-done, &e)
	require.Equal(t, wire.CodeBadRequest, e.Code)
	fc.closeWith(t, wire.CloseGoingAway)
	fc = f.accept(t)
	for range 2 {
		fc.expect(t, wire.OpSub)
	}
	fc.send(t, `{"op":"ping"}`)
	fc.expect(t, wire.OpPong)
}

// TestEnterLimits checks what Enter refuses without asking the server.
func TestEnterLimits(t *testing.T) {
	f := newFakeServer(t)
	rec := newRecorder()
	c := dial(t, f.url, fastBackoff(rec))
	fc := f.accept(t)
	s, _ := subscribeSync(t, c, fc, "room", rec.handle, sdk.Presence())
	ctx := context.Background()

	var e *wire.Error
	require.ErrorAs(t, s.Enter(ctx, strings.Repeat("x", wire.MaxPresenceInfo)), &e)
	require.Equal(t, wire.CodeTooLarge, e.Code)
	require.ErrorAs(t, s.Enter(ctx, json.RawMessage(`{"a":`)), &e)
	require.Equal(t, wire.CodeBadRequest, e.Code)
	require.ErrorAs(t, s.Enter(ctx, func() {}), &e)
	require.Equal(t, wire.CodeBadRequest, e.Code)
	_, err := c.Presence(ctx, "bad topic")
	require.ErrorAs(t, err, &e)

	// An info of exactly 1 KiB, compacted, goes.
	info := json.RawMessage(`"` + strings.Repeat("x", wire.MaxPresenceInfo-2) + `"` + "  ")
	done := async(func(ctx context.Context) error { return s.Enter(ctx, info) })
	enter := fc.expect(t, wire.OpEnter)
	require.Len(t, enter["info"], wire.MaxPresenceInfo-2)
	answerOK(t, fc, enter)
	require.NoError(t, <-done)

	// After Unsubscribe, which leaves first, Enter refuses.
	done = async(s.Unsubscribe)
	answerOK(t, fc, fc.expect(t, wire.OpLeave))
	answerOK(t, fc, fc.expect(t, wire.OpUnsub))
	require.NoError(t, <-done)
	require.ErrorIs(t, s.Enter(ctx, nil), sdk.ErrSubscriptionEnded)
	require.NoError(t, s.Leave(ctx))
}

// TestEnterAcrossReconnections checks an Enter made while disconnected or
// cut by a reconnection (it gets the answer from the next connection), and
// what happens when the server refuses to let the client enter again.
func TestEnterAcrossReconnections(t *testing.T) {
	f := newFakeServer(t)
	rec := newRecorder()
	cfg := fastBackoff(rec)
	cfg.PingAfter = 40 * time.Millisecond // the retry timer ticks every 10 ms
	// Each connection attempt waits for a value of gate: the test holds
	// the client disconnected as long as it needs.
	gate := make(chan struct{}, 3)
	for range 3 {
		gate <- struct{}{}
	}
	cfg.Token = func(ctx context.Context) (string, error) {
		select {
		case <-gate:
			return "", nil
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
	}
	c := dial(t, f.url, cfg)
	fc := f.accept(t)
	s, _ := subscribeSync(t, c, fc, "room", rec.handle, sdk.Presence())

	// The connection breaks before the enter's answer: the next one
	// enters, and that answer ends Enter.
	done := async(func(ctx context.Context) error { return s.Enter(ctx, 1) })
	fc.expect(t, wire.OpEnter)
	fc.closeWith(t, wire.CloseGoingAway)
	fc = f.accept(t)
	fc.expect(t, wire.OpSub)
	enter := fc.expect(t, wire.OpEnter)
	require.Equal(t, float64(1), enter["info"])
	answerOK(t, fc, enter)
	require.NoError(t, <-done)

	// The server refuses for now to let the client enter again: it
	// retries; then it refuses for good: the client reports it.
	fc.closeWith(t, wire.CloseGoingAway)
	fc = f.accept(t)
	fc.expect(t, wire.OpSub)
	enter = fc.expect(t, wire.OpEnter)
	fc.send(t, `{"op":"error","id":`+jsonNum(enter["id"])+`,"topic":"room","code":"unavailable","message":"try again"}`)
	enter = fc.expect(t, wire.OpEnter)
	require.Equal(t, float64(1), enter["info"])
	fc.send(t, `{"op":"error","id":`+jsonNum(enter["id"])+`,"topic":"room","code":"forbidden","message":"no"}`)
	ev := rec.waitEvents(t, sdk.EventError, 1)[0]
	require.Equal(t, "room", ev.Topic)
	var e *wire.Error
	require.ErrorAs(t, ev.Err, &e)
	require.Equal(t, wire.CodeForbidden, e.Code)

	// Enter while disconnected waits for the next connection; when it
	// gives up, that connection still sends it, once.
	fc.closeWith(t, wire.CloseGoingAway)
	rec.waitEvents(t, sdk.EventDisconnected, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s.Enter(ctx, "back"), context.DeadlineExceeded)
	gate <- struct{}{}
	fc = f.accept(t)
	fc.expect(t, wire.OpSub)
	enter = fc.expect(t, wire.OpEnter)
	require.Equal(t, "back", enter["info"])
	answerOK(t, fc, enter)
	fc.send(t, `{"op":"ping"}`)
	fc.expect(t, wire.OpPong)

	// The server ends the subscription: the client leaves too.
	fc.send(t, `{"op":"error","topic":"room","code":"forbidden","message":"token changed"}`)
	fc.expect(t, wire.OpLeave)
	require.ErrorIs(t, s.Enter(context.Background(), nil), sdk.ErrSubscriptionEnded)
}

// TestPresenceWithBroker runs two clients against the in-memory broker:
// each sees the other join, update and leave, Presence lists the members,
// and a client whose connection broke comes back with the same info.
func TestPresenceWithBroker(t *testing.T) {
	b := newBroker(apiKey)
	t.Cleanup(b.close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recA, recB := newRecorder(), newRecorder()
	a := dial(t, b.wsURL(), fastBackoff(recA))
	bob := dial(t, b.wsURL(), fastBackoff(recB))

	subB, err := bob.Subscribe(ctx, "room", recB.handle, sdk.Presence())
	require.NoError(t, err)
	subA, err := a.Subscribe(ctx, "room", recA.handle)
	require.NoError(t, err)
	require.NoError(t, subA.Enter(ctx, map[string]string{"name": "ada"}))
	require.NoError(t, subB.Enter(ctx, nil))
	recB.waitEvents(t, sdk.EventJoin, 2)
	require.NoError(t, subA.Enter(ctx, map[string]string{"name": "ada", "mood": "busy"}))
	recB.waitEvents(t, sdk.EventUpdate, 1)

	p, err := a.Presence(ctx, "room")
	require.NoError(t, err)
	require.Equal(t, 2, p.Count)
	require.Len(t, p.Members, 2)
	require.Less(t, p.Members[0].Conn, p.Members[1].Conn, "ordered by connection")
	ada := slices.IndexFunc(p.Members, func(m wire.Member) bool { return m.Info != nil })
	require.GreaterOrEqual(t, ada, 0)
	connA := p.Members[ada].Conn
	require.JSONEq(t, `{"name":"ada","mood":"busy"}`, string(p.Members[ada].Info))
	require.Nil(t, p.Members[1-ada].Info)
	require.Empty(t, recA.eventsOf(sdk.EventJoin), "A's subscription did not ask for presence")

	// A's connection breaks: bob sees A leave, then join again from a new
	// connection with the info it had.
	b.drop(connA)
	left := recB.waitEvents(t, sdk.EventLeave, 1)
	joins := recB.waitEvents(t, sdk.EventJoin, 3)
	require.Len(t, left, 1)
	require.Equal(t, connA, left[0].Member.Conn)
	again := joins[2].Member
	require.NotEqual(t, connA, again.Conn)
	require.JSONEq(t, `{"name":"ada","mood":"busy"}`, string(again.Info))
	p, err = bob.Presence(ctx, "room")
	require.NoError(t, err)
	require.Equal(t, 2, p.Count)

	// Unsubscribe leaves.
	require.NoError(t, subA.Unsubscribe(ctx))
	recB.waitEvents(t, sdk.EventLeave, 2)
	require.Equal(t, again.Conn, recB.eventsOf(sdk.EventLeave)[1].Member.Conn)
	p, err = bob.Presence(ctx, "room")
	require.NoError(t, err)
	require.Equal(t, 1, p.Count)
}
