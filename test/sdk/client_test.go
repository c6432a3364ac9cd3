package sdktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

func TestSubscribeAndPublish(t *testing.T) {
	ctx := testCtx(t)
	rec := newRecorder()
	c := dial(t, srv.WSURL, sdk.Config{OnEvent: rec.onEvent})
	topic := topicFor(t)
	sub, err := c.Subscribe(ctx, topic, rec.handle)
	require.NoError(t, err)
	require.Equal(t, topic, sub.Topic())

	start := time.Now().Add(-time.Second)
	for i := 1; i <= 20; i++ {
		res, err := c.Publish(ctx, topic, map[string]int{"i": i})
		require.NoError(t, err)
		require.Equal(t, uint64(i), res.Seq)
		require.Equal(t, topic, res.Topic)
	}
	p := newPublisher(t, sdk.PublisherConfig{})
	for i := 21; i <= 40; i++ {
		res, err := p.Publish(ctx, topic, json.RawMessage(fmt.Sprintf(`{ "i" : %d }`, i)))
		require.NoError(t, err)
		require.Equal(t, uint64(i), res.Seq)
	}

	msgs := rec.waitMessages(t, 40)
	require.Len(t, msgs, 40)
	for i, m := range msgs {
		require.Equal(t, topic, m.Topic)
		require.Equal(t, uint64(i+1), m.Seq)
		require.Equal(t, msgs[0].Epoch, m.Epoch)
		require.JSONEq(t, fmt.Sprintf(`{"i":%d}`, i+1), string(m.Data))
		require.Equal(t, fmt.Sprintf(`{"i":%d}`, i+1), string(m.Data), "data arrives compacted")
		require.WithinRange(t, m.TS, start, time.Now().Add(time.Second))
	}
	require.Len(t, rec.eventsOf(sdk.EventConnected), 1)
}

func TestSubscribeValidation(t *testing.T) {
	ctx := testCtx(t)
	c := dial(t, srv.WSURL, sdk.Config{})
	var e *wire.Error

	_, err := c.Subscribe(ctx, "bad topic!", func(sdk.Message) {})
	require.ErrorAs(t, err, &e)
	require.Equal(t, wire.CodeBadRequest, e.Code)

	_, err = c.Subscribe(ctx, topicFor(t), nil)
	require.Error(t, err)

	topic := topicFor(t)
	_, err = c.Subscribe(ctx, topic, func(sdk.Message) {})
	require.NoError(t, err)
	_, err = c.Subscribe(ctx, topic, func(sdk.Message) {})
	require.ErrorIs(t, err, sdk.ErrAlreadySubscribed)
}

func TestClientPublishErrors(t *testing.T) {
	ctx := testCtx(t)
	rec := newRecorder()
	// MaxMessage -1: no local size check, so the server answers.
	c := dial(t, srv.WSURL, sdk.Config{MaxMessage: -1, OnEvent: rec.onEvent})
	topic := topicFor(t)
	var e *wire.Error

	t.Run("server refuses sys topics", func(t *testing.T) {
		_, err := c.Publish(ctx, "sys:test", 1)
		require.ErrorAs(t, err, &e)
		require.Equal(t, wire.CodeForbidden, e.Code)
		require.NotZero(t, e.ID, "the error answers the pub's id")
	})
	t.Run("server refuses data over its limit", func(t *testing.T) {
		big := `"` + strings.Repeat("x", 65536) + `"`
		_, err := c.Publish(ctx, topic, json.RawMessage(big))
		require.ErrorAs(t, err, &e)
		require.Equal(t, wire.CodeTooLarge, e.Code)
	})
	t.Run("client refuses data over MaxMessage", func(t *testing.T) {
		small := dial(t, srv.WSURL, sdk.Config{MaxMessage: 10})
		_, err := small.Publish(ctx, topic, "more than ten bytes")
		require.ErrorAs(t, err, &e)
		require.Equal(t, wire.CodeTooLarge, e.Code)
	})
	t.Run("client refuses invalid JSON and topics", func(t *testing.T) {
		_, err := c.Publish(ctx, topic, []byte(`{"a":`))
		require.ErrorAs(t, err, &e)
		require.Equal(t, wire.CodeBadRequest, e.Code)
		_, err = c.Publish(ctx, "no spaces", 1)
		require.ErrorAs(t, err, &e)
		require.Equal(t, wire.CodeBadRequest, e.Code)
		_, err = c.Publish(ctx, topic, func() {})
		require.ErrorAs(t, err, &e)
		require.Equal(t, wire.CodeBadRequest, e.Code)
	})
	// Errors leave the connection up.
	res, err := c.Publish(ctx, topic, "fine")
	require.NoError(t, err)
	require.Equal(t, uint64(1), res.Seq)
	require.Len(t, rec.eventsOf(sdk.EventConnected), 1)
	require.Empty(t, rec.eventsOf(sdk.EventDisconnected))
}

func TestUnsubscribe(t *testing.T) {
	ctx := testCtx(t)
	c := dial(t, srv.WSURL, sdk.Config{})
	p := newPublisher(t, sdk.PublisherConfig{})
	topic := topicFor(t)

	first := newRecorder()
	sub, err := c.Subscribe(ctx, topic, first.handle)
	require.NoError(t, err)
	_, err = p.Publish(ctx, topic, 1)
	require.NoError(t, err)
	first.waitMessages(t, 1)

	require.NoError(t, sub.Unsubscribe(ctx))
	require.NoError(t, sub.Unsubscribe(ctx), "a second Unsubscribe does nothing")
	for i := 2; i <= 5; i++ {
		_, err = p.Publish(ctx, topic, i)
		require.NoError(t, err)
	}

	// Subscribing again starts from now: the next message is 6.
	second := newRecorder()
	_, err = c.Subscribe(ctx, topic, second.handle)
	require.NoError(t, err)
	_, err = p.Publish(ctx, topic, 6)
	require.NoError(t, err)
	msgs := second.waitMessages(t, 1)
	require.Equal(t, uint64(6), msgs[0].Seq)
	require.Len(t, first.messages(), 1, "no delivery after Unsubscribe")
}

func TestSince(t *testing.T) {
	ctx := testCtx(t)
	p := newPublisher(t, sdk.PublisherConfig{})
	topic := topicFor(t)
	var epoch string
	for i := 1; i <= 10; i++ {
		res, err := p.Publish(ctx, topic, i)
		require.NoError(t, err)
		epoch = res.Epoch
	}

	t.Run("recovers after seq", func(t *testing.T) {
		rec := newRecorder()
		c := dial(t, srv.WSURL, sdk.Config{OnEvent: rec.onEvent})
		_, err := c.Subscribe(ctx, topic, rec.handle, sdk.Since(epoch, 4))
		require.NoError(t, err)
		msgs := rec.waitMessages(t, 6)
		for i, m := range msgs {
			require.Equal(t, uint64(5+i), m.Seq)
		}
		require.Empty(t, rec.eventsOf(sdk.EventReset))
	})
	t.Run("another epoch is a reset", func(t *testing.T) {
		rec := newRecorder()
		c := dial(t, srv.WSURL, sdk.Config{OnEvent: rec.onEvent})
		_, err := c.Subscribe(ctx, topic, rec.handle, sdk.Since("gone", 3))
		require.NoError(t, err)
		ev := rec.waitEvents(t, sdk.EventReset, 1)[0]
		require.Equal(t, sdk.ResetNotRecovered, ev.Reason)
		require.Equal(t, topic, ev.Topic)
		require.Equal(t, epoch, ev.Epoch)
		head := ev.Seq
		require.GreaterOrEqual(t, head, uint64(10))
		res, err := p.Publish(ctx, topic, "live")
		require.NoError(t, err)
		msgs := rec.waitMessages(t, 1)
		require.Equal(t, res.Seq, msgs[0].Seq)
		require.Equal(t, head+1, msgs[0].Seq)
	})
}

// TestCloseCodes checks what the client does when the server closes its
// connection with each code of the protocol.
func TestCloseCodes(t *testing.T) {
	for _, tc := range []struct {
		code      wire.DisconnectCode
		reconnect bool
	}{
		{code: wire.CloseGoingAway, reconnect: true},
		{code: wire.CloseSlowConsumer, reconnect: true},
		{code: wire.CloseRateLimited, reconnect: true},
		{code: wire.CloseTooLarge, reconnect: false},
		{code: wire.CloseUnauthorized, reconnect: false},
		{code: wire.CloseProtocolError, reconnect: false},
	} {
		t.Run(fmt.Sprint(uint16(tc.code)), func(t *testing.T) {
			ctx := testCtx(t)
			srv.waitSessions(t, 0)
			rec := newRecorder()
			c := dial(t, srv.WSURL, sdk.Config{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, OnEvent: rec.onEvent})
			topic := topicFor(t)
			_, err := c.Subscribe(ctx, topic, rec.handle)
			require.NoError(t, err)
			srv.waitSessions(t, 1)
			before := srv.accepted.Load()

			require.Equal(t, 1, srv.closeSessions(transport.Disconnect{Code: tc.code, Reason: "test"}))
			var ce *sdk.CloseError
			if !tc.reconnect {
				select {
				case <-c.Done():
				case <-ctx.Done():
					t.Fatal("the client did not stop")
				}
				require.ErrorAs(t, c.Err(), &ce)
				require.Equal(t, tc.code, ce.Code)
				require.Equal(t, "test", ce.Reason)
				require.ErrorIs(t, c.Err(), net.ErrClosed)
				ev := rec.waitEvents(t, sdk.EventClosed, 1)[0]
				require.ErrorAs(t, ev.Err, &ce)
				time.Sleep(100 * time.Millisecond) // 10 backoffs: a reconnect would show
				require.Equal(t, before, srv.accepted.Load(), "no reconnection")
				_, err := c.Publish(ctx, topic, 1)
				require.ErrorAs(t, err, &ce)
				_, err = c.Subscribe(ctx, topicFor(t), rec.handle)
				require.ErrorAs(t, err, &ce)
				return
			}
			ev := rec.waitEvents(t, sdk.EventDisconnected, 1)[0]
			require.ErrorAs(t, ev.Err, &ce)
			require.Equal(t, tc.code, ce.Code)
			rec.waitEvents(t, sdk.EventConnected, 2)
			res, err := c.Publish(ctx, topic, "after")
			require.NoError(t, err)
			msgs := rec.waitMessages(t, 1)
			require.Equal(t, res.Seq, msgs[0].Seq)
			require.NoError(t, c.Err())
		})
	}
}

func TestDialFallback(t *testing.T) {
	ctx := testCtx(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "ws://" + ln.Addr().String() + "/ws"
	require.NoError(t, ln.Close()) // nothing listens there now

	rec := newRecorder()
	c := dial(t, dead, sdk.Config{FallbackURLs: []string{srv.WSURL}, OnEvent: rec.onEvent})
	require.Equal(t, srv.WSURL, rec.waitEvents(t, sdk.EventConnected, 1)[0].URL)
	_, err = c.Publish(ctx, topicFor(t), 1)
	require.NoError(t, err)

	_, err = sdk.Dial(ctx, dead, sdk.Config{})
	require.Error(t, err)
	_, err = sdk.Dial(ctx, "http://127.0.0.1:8080/ws", sdk.Config{})
	require.ErrorIs(t, err, sdk.ErrUnsupportedURL)
}

func TestCloseFailsCallsInProgress(t *testing.T) {
	ctx := testCtx(t)
	c := dial(t, srv.WSURL, sdk.Config{})
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close twice is fine")
	_, err := c.Publish(ctx, topicFor(t), 1)
	require.ErrorIs(t, err, sdk.ErrClosed)
	_, err = c.Subscribe(ctx, topicFor(t), func(sdk.Message) {})
	require.True(t, errors.Is(err, sdk.ErrClosed))
	require.ErrorIs(t, c.Err(), sdk.ErrClosed)
}
