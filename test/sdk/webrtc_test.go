package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/webrtc"
)

// publishAll publishes the values 0..n-1 to topic from 8 goroutines through
// batches, and returns once every one is published.
func publishAll(t *testing.T, ctx context.Context, topic string, n int, published *atomic.Int64) {
	t.Helper()
	p := newPublisher(t, sdk.PublisherConfig{BatchSize: 100, BatchDelay: time.Millisecond})
	next := make(chan int)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	})
	for range 8 {
		wg.Go(func() {
			for i := range next {
				if _, err := p.Publish(ctx, topic, i); err != nil {
					t.Errorf("publish %d: %v", i, err)
					return
				}
				if published != nil {
					published.Add(1)
				}
			}
		})
	}
	wg.Wait()
}

// requireAllInOrder checks that msgs are seqs 1..n, each value 0..n-1 once.
func requireAllInOrder(t *testing.T, msgs []sdk.Message, n int) {
	t.Helper()
	require.Len(t, msgs, n)
	seen := make([]bool, n)
	for k, m := range msgs {
		require.Equal(t, uint64(k+1), m.Seq, "delivery %d", k)
		var v int
		require.NoError(t, json.Unmarshal(m.Data, &v))
		require.False(t, seen[v], "value %d twice", v)
		seen[v] = true
	}
}

// TestWebRTCInOrder: over WebRTC, a client gets 10,000 messages of a
// topic once each and in order, on the reliable channel, and publishes
// itself.
func TestWebRTCInOrder(t *testing.T) {
	const total = 10000
	ctx := testCtx(t)
	rec := newRecorder()
	c := dial(t, srv.RTCURL, fastBackoff(rec))
	topic := topicFor(t)
	_, err := c.Subscribe(ctx, topic, rec.handle)
	require.NoError(t, err)
	require.Equal(t, srv.RTCURL, rec.waitEvents(t, sdk.EventConnected, 1)[0].URL)
	for _, s := range srv.liveSessions() {
		require.Equal(t, "webrtc", s.Info().Transport)
	}

	start := time.Now()
	publishAll(t, ctx, topic, total-1, nil)
	res, err := c.Publish(ctx, topic, total-1)
	require.NoError(t, err)
	require.Equal(t, uint64(total), res.Seq)
	rec.waitFor(t, 15*time.Second, fmt.Sprintf("%d messages", total), func() bool { return len(rec.messages()) >= total })
	t.Logf("%d messages in %v", total, time.Since(start).Round(time.Millisecond))
	requireAllInOrder(t, rec.messages(), total)
	require.Len(t, rec.eventsOf(sdk.EventConnected), 1)
	require.Empty(t, rec.eventsOf(sdk.EventDisconnected))
	require.Empty(t, rec.eventsOf(sdk.EventGap))
	require.Empty(t, rec.eventsOf(sdk.EventReset))
}

// TestWebRTCRecovery: while a service publishes, the server ends the
// client's WebRTC session again and again, as a slow consumer (4008), as
// going away (1001), and by closing the peer connection without a close
// frame. What the application sees: every message once, in order, with
// no gap and no reset; each break is an EventDisconnected with the code,
// followed by a reconnection that recovers with since.
func TestWebRTCRecovery(t *testing.T) {
	const total, breaks = 3000, 6
	ctx := testCtx(t)
	srv.waitSessions(t, 0)
	rec := newRecorder()
	c := dial(t, srv.RTCURL, fastBackoff(rec))
	topic := topicFor(t)
	_, err := c.Subscribe(ctx, topic, rec.handle)
	require.NoError(t, err)
	srv.waitSessions(t, 1)

	var published atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishAll(t, ctx, topic, total, &published)
	}()
	var want []error
	for k := range breaks {
		at := int64(300 + k*total/(breaks+1))
		for published.Load() < at && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		srv.waitSessions(t, 1)
		switch k % 3 {
		case 0:
			require.Equal(t, 1, srv.closeSessions(transport.Disconnect{Code: wire.CloseSlowConsumer, Reason: "test"}))
			want = append(want, &sdk.CloseError{Code: wire.CloseSlowConsumer, Reason: "test"})
		case 1:
			require.Equal(t, 1, srv.closeSessions(transport.Disconnect{Code: wire.CloseGoingAway, Reason: "test"}))
			want = append(want, &sdk.CloseError{Code: wire.CloseGoingAway, Reason: "test"})
		case 2:
			require.Equal(t, 1, srv.failSessions())
			want = append(want, nil)
		}
		rec.waitEvents(t, sdk.EventConnected, k+2)
	}
	<-done
	rec.waitFor(t, 15*time.Second, fmt.Sprintf("%d messages", total), func() bool { return len(rec.messages()) >= total })
	require.NoError(t, c.Close())
	requireAllInOrder(t, rec.messages(), total)
	require.Empty(t, rec.eventsOf(sdk.EventGap))
	require.Empty(t, rec.eventsOf(sdk.EventReset))
	require.Empty(t, rec.eventsOf(sdk.EventError))
	disc := rec.eventsOf(sdk.EventDisconnected)
	require.Len(t, disc, breaks)
	for k, e := range disc {
		var ce *sdk.CloseError
		if want[k] == nil {
			require.False(t, errors.As(e.Err, &ce), "break %d: %v", k, e.Err)
			require.ErrorIs(t, e.Err, net.ErrClosed)
			continue
		}
		require.ErrorAs(t, e.Err, &ce, "break %d", k)
		require.Equal(t, want[k], ce, "break %d", k)
	}
	subs := rec.eventsOf(sdk.EventSubscribed)
	require.Len(t, subs, breaks+1)
	for _, e := range subs[1:] {
		require.True(t, e.Recovered, "%+v", e)
	}
}

// TestWebRTCDatagramSubscription: over WebRTC's datagram channel, a
// datagram subscription gets seqs that never go backwards and the newest
// value in the end; a message too large for a datagram comes over the
// reliable channel.
func TestWebRTCDatagramSubscription(t *testing.T) {
	ctx := testCtx(t)
	rec := newRecorder()
	c := dial(t, srv.RTCURL, fastBackoff(rec))
	topic := topicFor(t)
	_, err := c.Subscribe(ctx, topic, rec.handle, sdk.Datagram())
	require.NoError(t, err)
	p := newPublisher(t, sdk.PublisherConfig{BatchSize: 50, BatchDelay: time.Millisecond})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				if _, err := p.Publish(ctx, topic, g*1000+i); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	newest := func() uint64 {
		msgs := rec.messages()
		if len(msgs) == 0 {
			return 0
		}
		return msgs[len(msgs)-1].Seq
	}
	// Datagrams may be lost: publish until the newest arrives.
	var last uint64
	for tries := 0; newest() < last || last == 0; tries++ {
		require.Less(t, tries, 20, "the newest value does not arrive")
		res, err := p.Publish(ctx, topic, "tail")
		require.NoError(t, err)
		last = res.Seq
		deadline := time.Now().Add(200 * time.Millisecond)
		for newest() < last && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	big := fmt.Sprintf("%q", strings.Repeat("x", 4000))
	res, err := p.Publish(ctx, topic, json.RawMessage(big))
	require.NoError(t, err)
	rec.waitFor(t, 5*time.Second, "the large message", func() bool { return newest() == res.Seq })
	msgs := rec.messages()
	for i := 1; i < len(msgs); i++ {
		require.Greater(t, msgs[i].Seq, msgs[i-1].Seq)
	}
	require.Equal(t, big, string(msgs[len(msgs)-1].Data))
	t.Logf("datagram subscription over webrtc: %d of %d messages", len(msgs), res.Seq)
	require.Empty(t, rec.eventsOf(sdk.EventGap))
	require.Empty(t, rec.eventsOf(sdk.EventDisconnected))
}

// TestWebRTCCloseCodes: the server's close of a WebRTC session (a close
// frame, then the end of the peer connection) is the same *CloseError as
// a WebSocket close, with the same reconnection policy, and a client that
// reconnects recovers what it missed.
func TestWebRTCCloseCodes(t *testing.T) {
	for _, tc := range []struct {
		code      wire.DisconnectCode
		reconnect bool
	}{
		{wire.CloseGoingAway, true},
		{wire.CloseSlowConsumer, true},
		{wire.CloseRateLimited, true},
		{wire.CloseTooLarge, false},
		{wire.CloseUnauthorized, false},
		{wire.CloseProtocolError, false},
	} {
		t.Run(fmt.Sprint(uint16(tc.code)), func(t *testing.T) {
			ctx := testCtx(t)
			srv.waitSessions(t, 0)
			rec := newRecorder()
			c := dial(t, srv.RTCURL, fastBackoff(rec))
			topic := topicFor(t)
			_, err := c.Subscribe(ctx, topic, rec.handle)
			require.NoError(t, err)
			srv.waitSessions(t, 1)
			p := newPublisher(t, sdk.PublisherConfig{})
			_, err = p.Publish(ctx, topic, 1)
			require.NoError(t, err)
			rec.waitMessages(t, 1)
			before := srv.accepted.Load()

			require.Equal(t, 1, srv.closeSessions(transport.Disconnect{Code: tc.code, Reason: "test"}))
			var ce *sdk.CloseError
			if !tc.reconnect {
				ev := rec.waitEvents(t, sdk.EventClosed, 1)[0]
				require.ErrorAs(t, ev.Err, &ce)
				require.Equal(t, tc.code, ce.Code)
				require.Equal(t, "test", ce.Reason)
				<-c.Done()
				require.ErrorAs(t, c.Err(), &ce)
				time.Sleep(100 * time.Millisecond) // 20 backoffs: a reconnection would show
				require.Equal(t, before, srv.accepted.Load(), "no reconnection")
				require.Empty(t, rec.eventsOf(sdk.EventError), "the close frame is no error event")
				return
			}
			ev := rec.waitEvents(t, sdk.EventDisconnected, 1)[0]
			require.ErrorAs(t, ev.Err, &ce)
			require.Equal(t, tc.code, ce.Code)
			require.Equal(t, "test", ce.Reason)
			for i := 2; i <= 5; i++ {
				_, err = p.Publish(ctx, topic, i)
				require.NoError(t, err)
			}
			msgs := rec.waitMessages(t, 5)
			for i, m := range msgs {
				require.Equal(t, uint64(i+1), m.Seq)
			}
			rec.waitEvents(t, sdk.EventConnected, 2)
			require.Empty(t, rec.eventsOf(sdk.EventReset))
			require.Empty(t, rec.eventsOf(sdk.EventError), "the close frame is no error event")
		})
	}
}

// TestWebRTCTokens: a server that requires tokens refuses an offer
// without one, or with a bad one, with 401: the client reports the
// *CloseError 4001 that a WebSocket session would have closed with, and
// does not try again.
func TestWebRTCTokens(t *testing.T) {
	ctx := testCtx(t)
	own, err := webrtc.New(webrtc.Config{
		UDPAddr:        "127.0.0.1:0",
		Accept:         srv.accept,
		TokensRequired: true,
		Authorize: func(r *http.Request) error {
			if transport.RequestToken(r) != "good" {
				return wire.Errorf(wire.CodeUnauthorized, "bad token")
			}
			return nil
		},
	})
	require.NoError(t, err)
	var offers atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.NotFound(w, r) // no GET /v1/info: no ICE servers
			return
		}
		offers.Add(1)
		own.ServeHTTP(w, r)
	}))
	defer func() {
		hs.Close()
		require.NoError(t, own.Close())
	}()
	url := hs.URL + webrtc.Path

	for _, token := range []string{"", "bad"} {
		cfg := sdk.Config{}
		if token != "" {
			cfg.Token = func(context.Context) (string, error) { return token, nil }
		}
		_, err := sdk.Dial(ctx, url, cfg)
		var ce *sdk.CloseError
		require.ErrorAs(t, err, &ce, "token %q", token)
		require.Equal(t, wire.CloseUnauthorized, ce.Code)
		var we *wire.Error
		require.ErrorAs(t, err, &we)
		require.Equal(t, wire.CodeUnauthorized, we.Code)
	}

	// A good token, which goes bad before the reconnection.
	var token atomic.Pointer[string]
	good, bad := "good", "bad"
	token.Store(&good)
	rec := newRecorder()
	cfg := fastBackoff(rec)
	cfg.Token = func(context.Context) (string, error) { return *token.Load(), nil }
	c := dial(t, url, cfg)
	_, err = c.Subscribe(ctx, topicFor(t), rec.handle)
	require.NoError(t, err)
	token.Store(&bad)
	before := offers.Load()
	srv.waitSessions(t, 1)
	require.Equal(t, 1, srv.failSessions())
	ev := rec.waitEvents(t, sdk.EventClosed, 1)[0]
	var ce *sdk.CloseError
	require.ErrorAs(t, ev.Err, &ce)
	require.Equal(t, wire.CloseUnauthorized, ce.Code)
	require.Equal(t, "bad token", ce.Reason)
	<-c.Done()
	time.Sleep(100 * time.Millisecond) // 20 backoffs: another attempt would show
	require.Equal(t, before+1, offers.Load(), "one refused attempt, not retried")
}
