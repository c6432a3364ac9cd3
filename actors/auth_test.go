package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/auth"
)

var guardSecret = []byte("actors-test-secret-0123456789abcdef")

// guardClock is a clock that tests set (GuardConfig.Now): tokens are
// signed at time.Now and checked at time.Now plus the offset. In a synctest
// bubble time.Now is the bubble's fake clock.
type guardClock struct{ offset atomic.Int64 }

func (c *guardClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// newGuardEnv is newEnv with a short dead-letter throttle: watching a relay
// that just stopped goes through dead letters, whose throttle goroutine
// must end before goleak looks.
func newGuardEnv(t *testing.T) *env {
	t.Helper()
	system := actor.NewActorSystem(actor.WithLoggerFactory(testutil.DiscardActorLogs),
		actor.WithDeadLetterThrottleInterval(time.Millisecond))
	t.Cleanup(system.Shutdown)
	e := &env{t: t, system: system, topics: NewLocalTopics(system, TopicConfig{})}
	e.relays = NewRelays(system, e.topics, RelayConfig{JoinTimeout: time.Second})
	e.conns = NewConns(system, e.topics, e.relays, ConnConfig{MaxMessage: 1024})
	return e
}

func (e *env) guarded(cfg GuardConfig) (*Guard, transport.AcceptFunc) {
	g := NewGuard(cfg)
	return g, g.Wrap(e.conns.Accept)
}

// connectWith starts a guarded connection with token in its URL.
func (e *env) connectWith(accept transport.AcceptFunc, token string) *client {
	s := testutil.NewSession()
	s.Info().Token = token
	h := accept(s)
	hc := &onceClosed{Handler: h}
	e.t.Cleanup(func() { hc.HandleClosed(nil) })
	return &client{sess: s, handler: hc}
}

// onceClosed lets a test end a session before its cleanup does.
type onceClosed struct {
	transport.Handler
	once sync.Once
}

func (h *onceClosed) HandleClosed(err error) { h.once.Do(func() { h.Handler.HandleClosed(err) }) }

func guardToken(t *testing.T, ttl time.Duration, subscribe ...string) string {
	t.Helper()
	tok, err := auth.Sign(guardSecret, auth.Claims{Subject: "a", Expires: time.Now().Add(ttl), Subscribe: subscribe, Publish: auth.Patterns{"pub.*"}})
	require.NoError(t, err)
	return tok
}

// TestGuardHello runs in a synctest bubble: the hello timer (time.AfterFunc
// in the connection actor) fires on the bubble's fake clock, so waiting past
// it takes no time.
func TestGuardHello(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newGuardEnv(t)
		_, accept := e.guarded(GuardConfig{TokenSecret: guardSecret, HelloTimeout: 100 * time.Millisecond})

		c := e.connectWith(accept, "")
		require.Equal(t, wire.CloseProtocolError, c.sess.WaitClosed(t, 5*time.Second).Code, "no hello in time")

		c = e.connectWith(accept, "")
		c.send(`{"op":"ping"}`)
		require.Equal(t, "pong", c.next(t, 1)[0].Op)
		c.send(`{"op":"hello","id":1,"token":"` + guardToken(t, time.Hour, "t") + `"}`)
		require.Equal(t, "ok", c.next(t, 1)[0].Op)
		c.send(`{"op":"sub","id":2,"topic":"t"}`)
		require.Equal(t, "ok", c.next(t, 1)[0].Op)
		time.Sleep(200 * time.Millisecond) // fake time: past the hello timeout, which hello stopped
		synctest.Wait()                    // the actor has handled whatever fired
		require.Nil(t, c.sess.Closed())

		c = e.connectWith(accept, "")
		c.send(`{"op":"pub","id":1,"topic":"pub.x","data":1}`)
		require.Equal(t, wire.CloseUnauthorized, c.sess.WaitClosed(t, 5*time.Second).Code, "pub before hello")

		c = e.connectWith(accept, "bad")
		// Commands that come while it closes are dropped.
		c.send(`{"op":"refresh","id":1,"token":"` + guardToken(t, time.Hour, "t") + `"}`)
		c.send(`{"op":"sub","id":2,"topic":"t"}`)
		require.Equal(t, wire.CloseUnauthorized, c.sess.WaitClosed(t, 5*time.Second).Code, "bad URL token")
		require.Empty(t, c.sess.Frames())
	})
}

// TestGuardServiceSession: a session that proved an API key (gRPC
// Subscribe, SessionInfo.Service) needs no token, even when tokens are
// required, and is not held to a token's patterns; it is still counted
// and limited.
func TestGuardServiceSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newGuardEnv(t)
		g, accept := e.guarded(GuardConfig{TokenSecret: guardSecret, HelloTimeout: 100 * time.Millisecond})
		s := testutil.NewSession()
		s.Info().Service = true
		h := &onceClosed{Handler: accept(s)}
		t.Cleanup(func() { h.HandleClosed(nil) })
		c := &client{sess: s, handler: h}
		c.send(`{"op":"sub","id":1,"topic":"sys:stats"}`)
		require.Equal(t, "ok", c.next(t, 1)[0].Op)
		time.Sleep(200 * time.Millisecond) // fake time: past the hello timeout, which does not apply
		synctest.Wait()
		require.Nil(t, c.sess.Closed())
		require.Equal(t, 1, g.Conns())
	})
}

// TestGuardTokenExpiry runs in a synctest bubble, like TestGuardHello: the
// expiry timers fire on the fake clock.
func TestGuardTokenExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newGuardEnv(t)
		clock := &guardClock{}
		_, accept := e.guarded(GuardConfig{TokenSecret: guardSecret, Now: clock.now})
		// expiringSoon returns a token that the guard's clock sees expire in
		// 100 ms (exp has a resolution of one second).
		expiringSoon := func() string {
			exp := time.Unix(time.Now().Unix()+60, 0)
			tok, err := auth.Sign(guardSecret, auth.Claims{Subject: "a", Expires: exp})
			require.NoError(t, err)
			clock.offset.Store(int64(time.Until(exp) - 100*time.Millisecond))
			return tok
		}
		c := e.connectWith(accept, expiringSoon())
		d := c.sess.WaitClosed(t, 5*time.Second)
		require.Equal(t, wire.CloseUnauthorized, d.Code)
		require.Contains(t, d.Reason, "expired")

		// A refresh re-arms the timer: the old one is ignored.
		c = e.connectWith(accept, expiringSoon())
		c.send(`{"op":"refresh","id":1,"token":"` + guardToken(t, time.Hour) + `"}`)
		require.Equal(t, "ok", c.next(t, 1)[0].Op)
		time.Sleep(300 * time.Millisecond) // fake time: past the first token's expiry
		synctest.Wait()                    // the actor has handled whatever fired
		require.Nil(t, c.sess.Closed())
	})
}

func TestGuardRefreshNarrower(t *testing.T) {
	e := newGuardEnv(t)
	_, accept := e.guarded(GuardConfig{TokenSecret: guardSecret})
	c := e.connectWith(accept, guardToken(t, time.Hour, "a", "b"))
	c.send(`{"op":"sub","id":1,"topic":"a"}`)
	c.send(`{"op":"sub","id":2,"topic":"b"}`)
	c.next(t, 2)
	c.send(`{"op":"refresh","id":3,"token":"bad"}`)
	f := c.next(t, 1)[0]
	require.Equal(t, "unauthorized", f.Code)
	require.Equal(t, uint64(3), f.ID)
	c.send(`{"op":"refresh","id":4,"token":"` + guardToken(t, time.Hour, "a") + `"}`)
	frames := c.next(t, 2)
	require.Equal(t, "ok", frames[0].Op)
	require.Equal(t, uint64(4), frames[0].ID)
	require.Equal(t, "error", frames[1].Op)
	require.Equal(t, "b", frames[1].Topic)
	require.Equal(t, "forbidden", frames[1].Code)
	require.Zero(t, frames[1].ID)
	e.publish("b", data(1))
	e.publish("a", data(2))
	f = c.next(t, 1)[0]
	require.Equal(t, "msg", f.Op)
	require.Equal(t, "a", f.Topic)
}

func TestGuardLimits(t *testing.T) {
	e := newGuardEnv(t)
	g, accept := e.guarded(GuardConfig{MaxConns: 2, MaxSubscriptions: 2, CommandRate: 1, CommandBurst: 3})
	c1 := e.connectWith(accept, "")
	_ = e.connectWith(accept, "")
	refused := e.connectWith(accept, "")
	require.Equal(t, DisconnectTooManyConns, refused.sess.WaitClosed(t, time.Second))
	require.Equal(t, 2, g.Conns())

	c1.send(`{"op":"sub","id":1,"topic":"a"}`)
	c1.send(`{"op":"sub","id":2,"topic":"b"}`)
	c1.send(`{"op":"sub","id":3,"topic":"c"}`)
	for _, f := range c1.next(t, 3) { // the relays answer, the actor refuses: any order
		if f.ID == 3 {
			require.Equal(t, "bad_request", f.Code, f.Raw)
		} else {
			require.Equal(t, "ok", f.Op, f.Raw)
		}
	}
	c1.send(`{"op":"sub","id":4,"topic":"c"}`)
	f := c1.next(t, 1)[0]
	require.Equal(t, "rate_limited", f.Code)
	require.Equal(t, uint64(4), f.ID)
	for range 3 {
		c1.send(`{"op":"ping"}`)
	}
	require.Equal(t, DisconnectFlood, c1.sess.WaitClosed(t, time.Second))
	c1.handler.(interface{ HandleClosed(error) }).HandleClosed(nil)
	require.Equal(t, 1, g.Conns())
}
