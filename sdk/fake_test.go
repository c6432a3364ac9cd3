package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
)

// fakeServer is a scripted WebSocket server: each test plays the server's
// side of the protocol frame by frame.
type fakeServer struct {
	srv   *httptest.Server
	url   string
	conns chan *fakeConn

	mu   sync.Mutex
	live []*fakeConn
	wg   sync.WaitGroup // handlers, which read their connection
}

// fakeConn is one connection to the fake server.
type fakeConn struct {
	nc     net.Conn
	wmu    sync.Mutex
	frames chan map[string]any // client frames, decoded
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{conns: make(chan *fakeConn, 16)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		fc := &fakeConn{nc: nc, frames: make(chan map[string]any, 1024)}
		f.mu.Lock()
		f.live = append(f.live, fc)
		f.wg.Add(1)
		f.mu.Unlock()
		defer f.wg.Done()
		f.conns <- fc
		defer close(fc.frames)
		for {
			msg, op, err := wsutil.ReadClientData(nc)
			if err != nil {
				return
			}
			if op != ws.OpText {
				continue
			}
			for _, line := range strings.Split(string(msg), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					panic("client sent a frame that is not JSON: " + line)
				}
				fc.frames <- m
			}
		}
	}))
	f.url = "ws" + strings.TrimPrefix(f.srv.URL, "http")
	t.Cleanup(f.close)
	return f
}

func (f *fakeServer) close() {
	f.mu.Lock()
	for _, fc := range f.live {
		_ = fc.nc.Close() // ends its handler
	}
	f.mu.Unlock()
	f.wg.Wait()
	f.srv.Close()
}

// accept waits for the next connection.
func (f *fakeServer) accept(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case fc := <-f.conns:
		return fc
	case <-time.After(5 * time.Second):
		t.Fatal("no connection to the fake server")
		return nil
	}
}

// send writes frames as one WebSocket message.
func (fc *fakeConn) send(t *testing.T, frames ...string) {
	t.Helper()
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	require.NoError(t, wsutil.WriteServerText(fc.nc, []byte(strings.Join(frames, "\n"))))
}

// closeWith sends a close frame and closes the connection.
func (fc *fakeConn) closeWith(t *testing.T, code wire.DisconnectCode) {
	t.Helper()
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	body := ws.NewCloseFrameBody(ws.StatusCode(code), "fake")
	require.NoError(t, ws.WriteFrame(fc.nc, ws.NewCloseFrame(body)))
	require.NoError(t, fc.nc.Close())
}

// expect returns the next client frame with op, skipping pings.
func (fc *fakeConn) expect(t *testing.T, op string) map[string]any {
	t.Helper()
	for {
		select {
		case m, ok := <-fc.frames:
			require.True(t, ok, "connection closed while waiting for %q", op)
			if m["op"] == wire.OpPing && op != wire.OpPing {
				continue
			}
			require.Equal(t, op, m["op"], "frame %v", m)
			return m
		case <-time.After(5 * time.Second):
			t.Fatalf("no %q frame from the client", op)
			return nil
		}
	}
}

// subscribeAsync runs Subscribe in the background and returns its outcome.
func subscribeAsync(c *sdk.Client, topic string, h func(sdk.Message), opts ...sdk.SubOption) <-chan error {
	out := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Subscribe(ctx, topic, h, opts...)
		out <- err
	}()
	return out
}

func fastBackoff(rec *recorder) sdk.Config {
	return sdk.Config{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, OnEvent: rec.onEvent}
}

// TestDeliveryStateMachine plays the server to check what reaches the
// application: repeats are dropped, resets, gaps and lost recoveries are
// reported in order with the messages, and a reconnection resubscribes from
// the last message delivered.
func TestDeliveryStateMachine(t *testing.T) {
	f := newFakeServer(t)
	rec := newRecorder()
	c := dial(t, f.url, fastBackoff(rec))
	fc := f.accept(t)

	done := subscribeAsync(c, "scores", rec.handle)
	sub := fc.expect(t, wire.OpSub)
	require.Equal(t, "scores", sub["topic"])
	require.Nil(t, sub["since"])
	fc.send(t, `{"op":"ok","id":`+jsonNum(sub["id"])+`,"topic":"scores","epoch":"e1","seq":0}`)
	require.NoError(t, <-done)

	fc.send(t,
		`{"op":"msg","topic":"scores","epoch":"e1","seq":1,"ts":1764190000123,"data":{"a":1}}`,
		`{"op":"msg","topic":"scores","epoch":"e1","seq":2,"ts":1764190000124,"data":2}`,
		`{"op":"msg","topic":"scores","epoch":"e1","seq":2,"ts":1764190000124,"data":2}`,
		`{"op":"msg","topic":"other","epoch":"e1","seq":1,"ts":1,"data":0}`,
		``,
		`{"op":"msg","topic":"scores","epoch":"e1","seq":1,"ts":1764190000123,"data":1}`,
		`{"op":"msg","topic":"scores","epoch":"e1","seq":3,"ts":1764190000125,"data":3}`)
	fc.send(t, `{"op":"reset","topic":"scores","epoch":"e2","seq":0}`)
	fc.send(t, `{"op":"msg","topic":"scores","epoch":"e2","seq":1,"ts":1,"data":1}`,
		`{"op":"msg","topic":"scores","epoch":"e2","seq":3,"ts":1,"data":3}`)
	fc.send(t, `{"op":"error","code":"bad_request","message":"unknown op"}`)
	msgs := rec.waitMessages(t, 5)
	require.Equal(t, json.RawMessage(`{"a":1}`), msgs[0].Data)
	require.Equal(t, time.UnixMilli(1764190000123), msgs[0].TS)
	var e *wire.Error
	require.ErrorAs(t, rec.waitEvents(t, sdk.EventError, 1)[0].Err, &e)
	require.Equal(t, wire.CodeBadRequest, e.Code)

	// The server goes: the client resubscribes from e2:3.
	fc.closeWith(t, wire.CloseSlowConsumer)
	fc = f.accept(t)
	sub = fc.expect(t, wire.OpSub)
	require.Equal(t, map[string]any{"epoch": "e2", "seq": float64(3)}, sub["since"])
	fc.send(t, `{"op":"ok","id":`+jsonNum(sub["id"])+`,"topic":"scores","epoch":"e3","seq":7,"recovered":false}`,
		`{"op":"msg","topic":"scores","epoch":"e3","seq":8,"ts":1,"data":8}`)
	rec.waitMessages(t, 6)

	// Again, and this time the history fills the gap, overlapping what was
	// delivered.
	fc.closeWith(t, wire.CloseGoingAway)
	fc = f.accept(t)
	sub = fc.expect(t, wire.OpSub)
	require.Equal(t, map[string]any{"epoch": "e3", "seq": float64(8)}, sub["since"])
	fc.send(t, `{"op":"ok","id":`+jsonNum(sub["id"])+`,"topic":"scores","epoch":"e3","seq":10,"recovered":true}`,
		`{"op":"msg","topic":"scores","epoch":"e3","seq":8,"ts":1,"data":8}`,
		`{"op":"msg","topic":"scores","epoch":"e3","seq":9,"ts":1,"data":9}`,
		`{"op":"msg","topic":"scores","epoch":"e3","seq":10,"ts":1,"data":10}`)
	rec.waitMessages(t, 8)

	// The server ends the subscription: nothing of it is delivered after.
	fc.send(t, `{"op":"error","topic":"scores","code":"forbidden","message":"token changed"}`,
		`{"op":"msg","topic":"scores","epoch":"e3","seq":11,"ts":1,"data":11}`)
	ended := rec.waitEvents(t, sdk.EventSubscriptionEnded, 1)[0]
	require.ErrorAs(t, ended.Err, &e)
	require.Equal(t, wire.CodeForbidden, e.Code)

	require.Equal(t, []string{
		"subscribed e1:0", "msg e1:1", "msg e1:2", "msg e1:3",
		"reset e2:0", "msg e2:1", "gap e2:1", "msg e2:3",
		"subscribed e3:7", "reset e3:7", "msg e3:8",
		"subscribed e3:10", "msg e3:9", "msg e3:10",
		"subscription_ended e3:10",
	}, rec.history())
	subscribed := rec.eventsOf(sdk.EventSubscribed)
	require.False(t, subscribed[1].Recovered)
	require.True(t, subscribed[2].Recovered)
	require.Equal(t, sdk.ResetNewEpoch, rec.eventsOf(sdk.EventReset)[0].Reason)
	require.Equal(t, sdk.ResetNotRecovered, rec.eventsOf(sdk.EventReset)[1].Reason)
	var ce *sdk.CloseError
	require.ErrorAs(t, rec.eventsOf(sdk.EventDisconnected)[0].Err, &ce)
	require.Equal(t, wire.CloseSlowConsumer, ce.Code)
	require.Len(t, rec.eventsOf(sdk.EventConnected), 3)
}

// TestHeartbeat checks that the client answers pings, pings a quiet server,
// and reconnects when the server stays silent.
func TestHeartbeat(t *testing.T) {
	f := newFakeServer(t)
	rec := newRecorder()
	cfg := fastBackoff(rec)
	cfg.PingAfter = 50 * time.Millisecond
	cfg.SilenceTimeout = 400 * time.Millisecond
	dial(t, f.url, cfg)
	fc := f.accept(t)

	start := time.Now()
	fc.send(t, `{"op":"ping"}`)
	fc.expect(t, wire.OpPong)
	fc.expect(t, wire.OpPing) // the server says nothing more: the client pings
	require.Less(t, time.Since(start), 300*time.Millisecond)

	// No pong: the client gives up on the silent server and reconnects.
	ev := rec.waitEvents(t, sdk.EventDisconnected, 1)[0]
	require.ErrorIs(t, ev.Err, sdk.ErrServerSilent)
	elapsed := time.Since(start)
	require.GreaterOrEqual(t, elapsed, 400*time.Millisecond)
	require.Less(t, elapsed, 2*time.Second)
	f.accept(t)
	rec.waitEvents(t, sdk.EventConnected, 2)
}

// TestSubscribeWhileDisconnected checks that Subscribe and Publish wait for
// the next connection, and that a retriable refusal of a resubscription is
// retried.
func TestSubscribeWhileDisconnected(t *testing.T) {
	f := newFakeServer(t)
	rec := newRecorder()
	cfg := fastBackoff(rec)
	cfg.MinBackoff, cfg.MaxBackoff = 200*time.Millisecond, 200*time.Millisecond
	c := dial(t, f.url, cfg)
	fc := f.accept(t)

	done := subscribeAsync(c, "a", rec.handle)
	sub := fc.expect(t, wire.OpSub)
	fc.send(t, `{"op":"ok","id":`+jsonNum(sub["id"])+`,"topic":"a","epoch":"e","seq":5}`)
	require.NoError(t, <-done)

	fc.closeWith(t, wire.CloseGoingAway)
	rec.waitEvents(t, sdk.EventDisconnected, 1)
	// Disconnected for up to 200 ms: these wait for the next connection.
	done = subscribeAsync(c, "b", rec.handle)
	pubDone := make(chan error, 1)
	go func() {
		_, err := c.Publish(context.Background(), "a", 1)
		pubDone <- err
	}()

	fc = f.accept(t)
	got := map[string]map[string]any{}
	for range 3 {
		m := <-fc.frames
		if m["op"] == wire.OpPing {
			continue
		}
		got[m["op"].(string)+" "+m["topic"].(string)] = m
	}
	require.Contains(t, got, "sub a")
	require.Contains(t, got, "sub b")
	require.Contains(t, got, "pub a")
	require.Equal(t, map[string]any{"epoch": "e", "seq": float64(5)}, got["sub a"]["since"])
	// a is refused for now; b and the pub succeed.
	fc.send(t,
		`{"op":"error","id":`+jsonNum(got["sub a"]["id"])+`,"code":"unavailable","message":"try again"}`,
		`{"op":"ok","id":`+jsonNum(got["sub b"]["id"])+`,"topic":"b","epoch":"e","seq":0}`,
		`{"op":"ok","id":`+jsonNum(got["pub a"]["id"])+`,"topic":"a","epoch":"e","seq":6}`)
	require.NoError(t, <-done)
	require.NoError(t, <-pubDone)
	// The client asks for a again, still from e:5.
	retry := fc.expect(t, wire.OpSub)
	require.Equal(t, "a", retry["topic"])
	require.Equal(t, map[string]any{"epoch": "e", "seq": float64(5)}, retry["since"])
}

func TestPublishConnectionLost(t *testing.T) {
	f := newFakeServer(t)
	rec := newRecorder()
	c := dial(t, f.url, fastBackoff(rec))
	fc := f.accept(t)
	pubDone := make(chan error, 1)
	go func() {
		_, err := c.Publish(context.Background(), "a", 1)
		pubDone <- err
	}()
	fc.expect(t, wire.OpPub)
	fc.closeWith(t, wire.CloseGoingAway)
	err := <-pubDone
	require.ErrorIs(t, err, sdk.ErrConnectionLost)
	var ce *sdk.CloseError
	require.ErrorAs(t, err, &ce)
	require.True(t, errors.Is(err, net.ErrClosed))
}

func jsonNum(v any) string {
	b, _ := json.Marshal(v) // a float64 from encoding/json always marshals
	return string(b)
}
