package test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// sdkRecorder collects what an SDK client hands to the application.
type sdkRecorder struct {
	mu     sync.Mutex
	msgs   map[string][]sdk.Message
	events []sdk.Event
	// eventAt holds when each event came.
	eventAt []time.Time
}

func newSDKRecorder() *sdkRecorder { return &sdkRecorder{msgs: make(map[string][]sdk.Message)} }

func (r *sdkRecorder) handle(m sdk.Message) {
	r.mu.Lock()
	r.msgs[m.Topic] = append(r.msgs[m.Topic], m)
	r.mu.Unlock()
}

func (r *sdkRecorder) onEvent(e sdk.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.eventAt = append(r.eventAt, time.Now())
	r.mu.Unlock()
}

func (r *sdkRecorder) messages(topic string) []sdk.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sdk.Message(nil), r.msgs[topic]...)
}

func (r *sdkRecorder) count(topic string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs[topic])
}

// lastAt returns when the last event of kind came.
func (r *sdkRecorder) lastAt(kind sdk.EventKind) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].Kind == kind {
			return r.eventAt[i]
		}
	}
	return time.Time{}
}

func (r *sdkRecorder) eventsOf(kinds ...sdk.EventKind) []sdk.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sdk.Event
	for _, e := range r.events {
		for _, k := range kinds {
			if e.Kind == k {
				out = append(out, e)
			}
		}
	}
	return out
}

// publishRange publishes the messages first..last to topic, 100 per POST,
// each with data {"n":N,"pad":pad}.
func publishRange(t *testing.T, srv *server.Server, topic string, first, last int, pad string) {
	t.Helper()
	for from := first; from <= last; from += 100 {
		var items []string
		for n := from; n <= min(from+99, last); n++ {
			items = append(items, fmt.Sprintf(`{"topic":%q,"data":{"n":%d,"pad":%q}}`, topic, n, pad))
		}
		status, body := post(t, srv, `{"messages":[`+strings.Join(items, ",")+`]}`)
		require.Equal(t, http.StatusOK, status, "%s", body)
	}
}

// TestWTDeliveryAndRecovery: an SDK client on WebTransport receives 10,000
// messages in order, exactly once, although the server closes its session
// half-way and the client recovers with since.
//
// The server has no API to close a session, so the test makes it close
// one: the client goes through a UDP relay on loopback, and the relay
// drops everything from the client to the server for a while. The server,
// whose keepalive allows 1 s of silence, closes the session with 1001
// (or 4008, if its writes stalled for want of ACKs); the close still
// reaches the client. 500 messages are published while the client has no
// session; once the relay lets its packets through again, the client
// reconnects and resubscribes from the last message it delivered.
//
// (Stalling the other direction instead, for a slow-consumer close, needs
// more than 10 MB in flight: quic-go's congestion and flow-control
// windows grow that large on loopback.)
func TestWTDeliveryAndRecovery(t *testing.T) {
	const total = 10000
	srv, wtURL, hash := startWT(t, server.Config{
		Node: cluster.Config{Topic: actors.TopicConfig{HistorySize: 2 * total}},
		Keepalive: transport.KeepaliveConfig{
			PingAfter:    200 * time.Millisecond,
			SilenceLimit: time.Second,
			SweepEvery:   50 * time.Millisecond,
		},
		// The close waits behind a write that the missing ACKs may stall:
		// this bounds that wait (the close is then 4008).
		WriteTimeout: 2 * time.Second,
	})
	relay := newLossyRelay(t, wtURL, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rec := newSDKRecorder()
	c, err := sdk.Dial(ctx, relay.url(), sdk.Config{
		CertHash:   hash,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
		OnEvent:    rec.onEvent,
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	const topic = "wt.recovery"
	_, err = c.Subscribe(ctx, topic, rec.handle)
	require.NoError(t, err)

	pad := strings.Repeat("x", 400)
	publishRange(t, srv, topic, 1, 2000, pad)
	testutil.Eventually(t, 30*time.Second, func() error {
		if n := rec.count(topic); n < 2000 {
			return fmt.Errorf("%d of 2000 messages before the cut", n)
		}
		return nil
	})
	require.Equal(t, 1, srv.Node().Conns())
	require.Empty(t, rec.eventsOf(sdk.EventDisconnected), "a disconnection before the cut")

	relay.cutUp.Store(true)
	cutAt := time.Now()
	published := 2000
	for srv.Node().Conns() > 0 {
		require.Less(t, published, 4000, "the server did not close the silent session")
		publishRange(t, srv, topic, published+1, published+10, pad)
		published += 10
		time.Sleep(100 * time.Millisecond)
	}
	closedAfter, closedAt := time.Since(cutAt), published
	// What is published now reaches the client only by recovery.
	publishRange(t, srv, topic, published+1, published+500, pad)
	published += 500
	relay.cutUp.Store(false)
	uncutAt := time.Now()
	publishRange(t, srv, topic, published+1, total, pad)

	testutil.Eventually(t, time.Minute, func() error {
		if n := rec.count(topic); n < total {
			return fmt.Errorf("%d of %d messages", n, total)
		}
		return nil
	})
	msgs := rec.messages(topic)
	require.Len(t, msgs, total)
	for i, m := range msgs {
		require.Equal(t, uint64(i+1), m.Seq)
		require.Equal(t, fmt.Sprintf(`{"n":%d,"pad":%q}`, i+1, pad), string(m.Data))
	}

	disc := rec.eventsOf(sdk.EventDisconnected)
	require.NotEmpty(t, disc)
	subs := rec.eventsOf(sdk.EventSubscribed)
	require.GreaterOrEqual(t, len(subs), 2)
	for _, e := range subs[1:] {
		require.True(t, e.Recovered, "resubscription %v", e)
	}
	require.Empty(t, rec.eventsOf(sdk.EventReset, sdk.EventGap, sdk.EventSubscriptionEnded, sdk.EventClosed))
	t.Logf("session closed by the server %v after the cut, at message %d; the client saw %q; "+
		"it resubscribed (recovered) %v after the relay reopened",
		closedAfter.Round(time.Millisecond), closedAt, disc[0].Err,
		rec.lastAt(sdk.EventSubscribed).Sub(uncutAt).Round(time.Millisecond))
}

// TestWTDatagrams: a datagram subscription gets msg frames as single QUIC
// datagrams (no newline) whose seq never goes back, a message too large
// for a datagram over the stream, and the newest value in the end; the SDK
// hands out strictly increasing seqs.
func TestWTDatagrams(t *testing.T) {
	srv, wtURL, hash := startWT(t, server.Config{})
	const topic = "wt.datagrams"
	raw := dialWTRaw(t, wtURL, hash, `{"op":"sub","id":1,"topic":"`+topic+`","delivery":"datagram"}`)
	ok := raw.readUntil(t, func(f testutil.Frame) bool { return f.ID == 1 })
	require.Equal(t, "ok", ok.Op, ok.Raw)

	rec := newSDKRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := sdk.Dial(ctx, wtURL, sdk.Config{CertHash: hash, OnEvent: rec.onEvent})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	_, err = c.Subscribe(ctx, topic, rec.handle, sdk.Datagram())
	require.NoError(t, err)

	// The raw client's datagrams, read in the background.
	type dgram struct {
		raw []byte
		err error
	}
	dgrams := make(chan dgram, 4096)
	go func() {
		for {
			b, err := raw.sess.ReceiveDatagram(ctx)
			dgrams <- dgram{b, err}
			if err != nil {
				return
			}
		}
	}()

	var last uint64
	for i := range 300 {
		last = publish(t, srv, topic, fmt.Sprintf(`{"i":%d}`, i)).Seq
	}
	var seqs []uint64
	newest := uint64(0)
	// Datagrams may be lost even on loopback: publish until the newest
	// arrives.
	for tail := 0; newest < last; tail++ {
		require.Less(t, tail, 20, "the newest value does not arrive (have %d, published %d)", newest, last)
		if tail > 0 {
			last = publish(t, srv, topic, `"tail"`).Seq
		}
		timeout := time.After(500 * time.Millisecond)
	read:
		for newest < last {
			select {
			case d := <-dgrams:
				require.NoError(t, d.err)
				require.False(t, bytes.HasSuffix(d.raw, []byte("\n")), "a datagram holds one frame, without newline")
				f := testutil.Decode(t, d.raw)
				require.Equal(t, "msg", f.Op)
				require.Equal(t, topic, f.Topic)
				require.GreaterOrEqual(t, f.Seq, newest, "seq went back")
				newest = f.Seq
				seqs = append(seqs, f.Seq)
			case <-timeout:
				break read
			}
		}
	}
	t.Logf("raw client: %d datagrams for %d messages", len(seqs), last)

	// Too large for a datagram: it comes on the stream.
	big := fmt.Sprintf(`{"big":%q}`, strings.Repeat("y", 3000))
	res := publish(t, srv, topic, big)
	f := raw.readUntil(t, func(f testutil.Frame) bool { return f.Op == "msg" })
	require.Equal(t, res.Seq, f.Seq)
	require.JSONEq(t, big, string(f.Data))

	testutil.Eventually(t, 10*time.Second, func() error {
		msgs := rec.messages(topic)
		if len(msgs) == 0 || msgs[len(msgs)-1].Seq != res.Seq {
			return fmt.Errorf("the SDK client has %d messages, not yet seq %d", len(msgs), res.Seq)
		}
		return nil
	})
	msgs := rec.messages(topic)
	for i := 1; i < len(msgs); i++ {
		require.Greater(t, msgs[i].Seq, msgs[i-1].Seq)
	}
	require.Empty(t, rec.eventsOf(sdk.EventGap, sdk.EventReset))
	t.Logf("SDK client: %d of %d messages", len(msgs), res.Seq)
}

// TestWTBadFramesLikeWebSocket: a malformed frame, an unknown op, data
// over the limit and a line over the limit plus 4 KiB get the same answer
// over WebTransport (raw webtransport-go client) as over WebSocket.
func TestWTBadFramesLikeWebSocket(t *testing.T) {
	const maxMessage = 1024
	srv, wtURL, hash := startWT(t, server.Config{Node: cluster.Config{MaxMessage: maxMessage}})
	huge := fmt.Sprintf(`{"op":"pub","id":9,"topic":"t","data":%q}`, strings.Repeat("z", maxMessage+4096))
	tooLarge := fmt.Sprintf(`{"op":"pub","id":8,"topic":"t","data":%q}`, strings.Repeat("z", maxMessage+10))

	type outcome struct {
		closeCode wire.DisconnectCode
		reply     testutil.Frame
	}
	overWT := func(t *testing.T, frame string) outcome {
		c := dialWTRaw(t, wtURL, hash, frame)
		if strings.Contains(frame, `"id"`) && len(frame) < maxMessage+4096 {
			reply := c.readUntil(t, func(f testutil.Frame) bool { return f.ID != 0 })
			// The session stays open.
			c.send(t, `{"op":"ping"}`)
			c.readUntil(t, func(f testutil.Frame) bool { return f.Op == "pong" })
			return outcome{reply: reply}
		}
		return outcome{closeCode: c.closeCode(t)}
	}
	overWS := func(t *testing.T, frame string) outcome {
		c, err := testutil.DialWS(context.Background(), wsURL(srv), 0)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.Send(frame))
		if strings.Contains(frame, `"id"`) && len(frame) < maxMessage+4096 {
			reply, err := c.ReadUntil(func(f testutil.Frame) bool { return f.ID != 0 }, nil)
			require.NoError(t, err)
			require.NoError(t, c.Send(`{"op":"ping"}`))
			_, err = c.ReadUntil(func(f testutil.Frame) bool { return f.Op == "pong" }, nil)
			require.NoError(t, err)
			return outcome{reply: reply}
		}
		c.Read(func([]byte) {})
		return outcome{closeCode: c.CloseCode}
	}

	for _, tc := range []struct {
		name, frame string
		code        wire.DisconnectCode
		errCode     string
	}{
		{"malformed JSON", `{"op":"sub",`, wire.CloseProtocolError, ""},
		{"unknown op", `{"op":"nope","id":3}`, 0, "bad_request"},
		{"data over the limit", tooLarge, 0, "too_large"},
		{"line over the limit plus 4 KiB", huge, wire.CloseTooLarge, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wt, ws := overWT(t, tc.frame), overWS(t, tc.frame)
			require.Equal(t, tc.code, wt.closeCode, "webtransport")
			require.Equal(t, tc.code, ws.closeCode, "websocket")
			if tc.errCode != "" {
				for _, o := range []outcome{wt, ws} {
					require.Equal(t, "error", o.reply.Op, o.reply.Raw)
					require.Equal(t, tc.errCode, o.reply.Code, o.reply.Raw)
				}
				require.Equal(t, ws.reply.Raw, wt.reply.Raw)
			}
		})
	}
}
