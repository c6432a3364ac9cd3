package browser

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// clientOpts are the options of the page's T.client.
type clientOpts struct {
	Topic      string   `json:"topic"`
	DgTopic    string   `json:"dgTopic,omitempty"`
	Transports []string `json:"transports,omitempty"`
	URL        string   `json:"url,omitempty"`
	Since      *since   `json:"since,omitempty"`
	Delta      bool     `json:"delta,omitempty"`
	// NoWebTransport hides WebTransport from the page.
	NoWebTransport bool `json:"noWebTransport,omitempty"`
	// TapChannels counts the messages of the page's data channels (run.Channels).
	TapChannels bool `json:"tapChannels,omitempty"`
}

type since struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

type connected struct {
	Transport string `json:"transport"`
	Position  struct {
		Epoch string `json:"epoch"`
		Seq   uint64 `json:"seq"`
	} `json:"position"`
}

type published struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
	Error string `json:"error"`
	Code  string `json:"code"`
}

// eventTypes returns the type of each event topicast.js reported besides
// connected and disconnected.
func eventTypes(t *testing.T, r run) []string {
	t.Helper()
	var types []string
	for _, raw := range r.Events {
		var e struct {
			Type string `json:"type"`
		}
		require.NoError(t, json.Unmarshal(raw, &e), "%s", raw)
		types = append(types, e.Type+" "+string(raw))
	}
	return types
}

// How a test forces a reconnection.
const (
	// freeze blocks the page longer than the server's silence limit: the
	// server closes the connection (1001) while the page cannot read.
	freeze = "freeze"
	// outage cuts the client's TCP connection at a proxy and refuses new
	// ones while messages are published.
	outage = "outage"
)

// wantCloseCode is the close code topicast.js reports after each kind of
// forced reconnection over each transport. A cut connection has no close
// frame (1006). A WebTransport session's code does not reach Chromium
// because of webtransport-go v0.13.0 (TestWebTransportCloseCode).
var wantCloseCode = map[string]int{
	"webtransport/" + freeze: 1006,
	"websocket/" + freeze:    1001,
	"websocket/" + outage:    1006,
	"sse/" + outage:          1006,
}

// TestClientReconnects: topicast.js, over each transport in turn, delivers
// 1,200 messages once and in order although its connection ends twice while
// messages are published (a frozen page closed by the server for silence, or
// an outage), by resubscribing from the last message it delivered. It also
// publishes over the transport, answers the server's pings, and
// (WebTransport) takes datagram subscriptions.
func TestClientReconnects(t *testing.T) {
	srv := startTopicast(t, true, server.Config{
		// Pinged after 200 ms without a pong, closed after 1.5 s of silence.
		Keepalive: transport.KeepaliveConfig{PingAfter: 200 * time.Millisecond, SilenceLimit: 1500 * time.Millisecond, SweepEvery: 50 * time.Millisecond},
	})
	b := newBrowser(t)
	forces := map[string][2]string{
		"webtransport": {freeze, freeze}, // UDP: no TCP proxy to cut
		"websocket":    {freeze, outage},
		"sse":          {outage, outage}, // the server never closes SSE for silence
	}
	for _, tr := range []string{"webtransport", "websocket", "sse"} {
		t.Run(tr, func(t *testing.T) {
			b.open(t, srv)
			p := newProxy(t, srv.Addr())
			feed := "feed." + tr
			opts := clientOpts{Topic: feed, Transports: []string{tr}}
			if tr == "webtransport" {
				opts.DgTopic = "pos"
			} else {
				opts.URL = p.URL()
			}
			var c connected
			start := time.Now()
			b.call(t, &c, "T.client", "c", opts)
			require.Equal(t, tr, c.Transport)
			require.Zero(t, c.Position.Seq)
			t.Logf("connected over %s in %v", c.Transport, time.Since(start).Round(time.Millisecond))

			start = time.Now()
			n, forced := 0, 0
			var r run
			for i := range 1000 {
				publish(t, srv, feed, n)
				n++
				if i != 299 && i != 599 {
					continue
				}
				how := forces[tr][forced]
				forced++
				switch how {
				case freeze:
					b.call(t, nil, "T.freeze", 2500)
				case outage:
					p.setDown(true)
				}
				for range 100 {
					publish(t, srv, feed, n)
					n++
				}
				if how == outage {
					p.setDown(false)
				}
				b.call(t, &r, "T.waitReconnected", "c", forced, 15_000)
				require.Len(t, r.Disconnects, forced, "disconnections after the %s", how)
				require.Equal(t, wantCloseCode[tr+"/"+how], r.Disconnects[forced-1], "close code after the %s", how)
				require.Equal(t, tr, r.Transport)
			}
			b.call(t, &r, "T.wait", "c", "seqs", n, 30_000)
			requireSeqs(t, r, n, n)
			require.Empty(t, eventTypes(t, r), "no reset or gap: everything was recovered")
			t.Logf("%d messages with %d forced reconnections in %v", n, forced, time.Since(start).Round(time.Millisecond))

			var pubs []published
			b.call(t, &pubs, "T.clientPublish", "c", feed, 5)
			if tr == "sse" {
				for _, p := range pubs {
					require.Equal(t, "unavailable", p.Code, "publish over SSE: %+v", p)
					require.Contains(t, p.Error, "only receives")
				}
			} else {
				for i, p := range pubs {
					require.Empty(t, p.Error)
					require.Equal(t, uint64(n+1+i), p.Seq)
				}
				b.call(t, &r, "T.wait", "c", "seqs", n+5, 10_000)
				require.Len(t, r.Seqs, n+5)
				require.Equal(t, "client-4", r.Ns[n+4])
			}

			if tr != "sse" {
				// Quiet for longer than the silence limit: only the pongs keep
				// the connection.
				b.call(t, nil, "T.idle", 2500)
				b.call(t, &r, "T.result", "c")
				require.Len(t, r.Disconnects, forced, "the client answers pings")
			}

			if opts.DgTopic != "" {
				const dgs = 200
				for i := range dgs {
					publish(t, srv, "pos", i)
				}
				b.call(t, &r, "T.waitLast", "c", "dg", dgs, 10_000)
				require.NotEmpty(t, r.Dg)
				requireNonDecreasing(t, r.Dg, dgs)
				t.Logf("%d of %d datagram deliveries arrived", len(r.Dg), dgs)
			}
			b.screenshot(t, "client-"+tr)
			b.call(t, nil, "T.close", "c")
		})
	}
}

// TestClientFallbackAndLoss: without WebTransport on the server topicast.js
// falls back to WebSocket; when its TCP connection is cut (no close frame) it
// reconnects and recovers, so the application still sees every message once.
func TestClientFallbackAndLoss(t *testing.T) {
	srv := startTopicast(t, false, server.Config{})
	b := newBrowser(t)

	t.Run("fallback", func(t *testing.T) {
		b.open(t, srv)
		var c connected
		b.call(t, &c, "T.client", "fb", clientOpts{Topic: "fb"}) // default order: webtransport, websocket, sse
		require.Equal(t, "websocket", c.Transport)
		var pubs []published
		b.call(t, &pubs, "T.clientPublish", "fb", "fb", 3)
		require.Equal(t, uint64(3), pubs[2].Seq, "%+v", pubs)
		var r run
		b.call(t, &r, "T.wait", "fb", "seqs", 3, 10_000)
		require.Equal(t, []uint64{1, 2, 3}, r.Seqs)
	})

	t.Run("connection lost", func(t *testing.T) {
		p := newProxy(t, srv.Addr())
		b.open(t, srv)
		var c connected
		b.call(t, &c, "T.client", "lost", clientOpts{Topic: "lost", Transports: []string{"websocket"}, URL: p.URL()})
		require.Equal(t, "websocket", c.Transport)
		const n = 1000
		var r run
		for i := range n {
			publish(t, srv, "lost", i)
			if i == n/2 {
				require.Equal(t, 1, p.cut(), "connections cut")
			}
		}
		b.call(t, &r, "T.wait", "lost", "seqs", n, 30_000)
		requireSeqs(t, r, n, n)
		require.Equal(t, []int{1006}, r.Disconnects)
		require.Empty(t, eventTypes(t, r))
		b.screenshot(t, "client-fallback-loss")
		// The server must notice that the cut connection, and the one the
		// previous page closed, are gone: only the new one stays.
		deadline := time.Now().Add(5 * time.Second)
		for srv.Node().Conns() != 1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		require.Equal(t, 1, srv.Node().Conns(), "sessions open on the server: it missed that a peer closed (see the server logs)")
	})
}

// TestClientNotRecovered: when the history cannot fill the gap, topicast.js
// reports a reset with recovered:false and goes on live from the head.
func TestClientNotRecovered(t *testing.T) {
	srv := startTopicast(t, false, server.Config{
		Node: cluster.Config{Topic: actors.TopicConfig{HistorySize: 50}},
	})
	b := newBrowser(t)

	t.Run("history too short", func(t *testing.T) {
		b.open(t, srv)
		p := newProxy(t, srv.Addr())
		var c connected
		b.call(t, &c, "T.client", "short", clientOpts{Topic: "short", Transports: []string{"websocket"}, URL: p.URL()})
		var r run
		for i := range 10 {
			publish(t, srv, "short", i)
		}
		b.call(t, &r, "T.wait", "short", "seqs", 10, 10_000)
		require.Len(t, r.Seqs, 10)
		p.setDown(true)
		publishBatch(t, srv, "short", 10, 200, 10) // only 161..210 stay in history
		p.setDown(false)
		b.call(t, &r, "T.waitReconnected", "short", 1, 15_000)
		require.Equal(t, []int{1006}, r.Disconnects)
		// "connected" comes before the subscription is answered: publish
		// only after the reset, or a message may land before the new
		// subscription's head and rightly never be delivered.
		b.call(t, &r, "T.wait", "short", "events", 1, 10_000)
		require.Len(t, r.Events, 1, "%s", r.Events)
		for i := range 10 {
			publish(t, srv, "short", 210+i)
		}
		b.call(t, &r, "T.wait", "short", "seqs", 20, 10_000)
		want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220}
		require.Equal(t, want, r.Seqs)
		require.Len(t, r.Events, 1, "%s", r.Events)
		requireReset(t, r.Events[0], "short", 210)
	})

	t.Run("since in another epoch", func(t *testing.T) {
		b.open(t, srv)
		for i := range 3 {
			publish(t, srv, "old", i)
		}
		var c connected
		b.call(t, &c, "T.client", "old", clientOpts{Topic: "old", Since: &since{Epoch: "gone", Seq: 2}})
		require.Equal(t, uint64(3), c.Position.Seq, "goes on from the head")
		var r run
		b.call(t, &r, "T.result", "old")
		require.Len(t, r.Events, 1, "%s", r.Events)
		requireReset(t, r.Events[0], "old", 3)
		publish(t, srv, "old", 3)
		b.call(t, &r, "T.wait", "old", "seqs", 1, 10_000)
		require.Equal(t, []uint64{4}, r.Seqs)
	})
}

// requireReset checks a {type:"reset", recovered:false} event.
func requireReset(t *testing.T, raw json.RawMessage, topic string, seq uint64) {
	t.Helper()
	var e struct {
		Type      string `json:"type"`
		Topic     string `json:"topic"`
		Seq       uint64 `json:"seq"`
		Recovered *bool  `json:"recovered"`
		Reason    string `json:"reason"`
	}
	require.NoError(t, json.Unmarshal(raw, &e))
	require.Equal(t, "reset", e.Type, "%s", raw)
	require.Equal(t, topic, e.Topic)
	require.Equal(t, seq, e.Seq, "%s", raw)
	require.NotNil(t, e.Recovered, "%s", raw)
	require.False(t, *e.Recovered)
	require.Equal(t, "not recovered", e.Reason)
}

// TestClientSubscriptions: subscriptions come and go on a live connection
// (over SSE the stream restarts with its cursor, so nothing is lost).
func TestClientSubscriptions(t *testing.T) {
	srv := startTopicast(t, false, server.Config{})
	b := newBrowser(t)
	for _, tr := range []string{"websocket", "sse"} {
		t.Run(tr, func(t *testing.T) {
			b.open(t, srv)
			a, other := "a."+tr, "b."+tr
			var c connected
			b.call(t, &c, "T.client", "subs", clientOpts{Topic: a, Transports: []string{tr}})
			require.Equal(t, tr, c.Transport)
			for i := range 50 {
				publish(t, srv, a, i)
			}
			b.call(t, nil, "T.subscribe", "subs", other) // while messages of a may be on the way
			for i := range 50 {
				publish(t, srv, a, 50+i)
				publish(t, srv, other, i)
			}
			var r run
			b.call(t, &r, "T.waitExtra", "subs", other, 50, 10_000)
			b.call(t, &r, "T.wait", "subs", "seqs", 100, 10_000)
			requireSeqs(t, r, 100, 100)
			require.Len(t, r.Extra[other], 50)
			for i, seq := range r.Extra[other] {
				require.Equal(t, uint64(i+1), seq)
			}

			b.call(t, nil, "T.unsubscribe", "subs", a)
			for i := range 10 {
				publish(t, srv, a, 100+i)
				publish(t, srv, other, 50+i)
			}
			b.call(t, &r, "T.waitExtra", "subs", other, 60, 10_000)
			require.Len(t, r.Extra[other], 60)
			require.Len(t, r.Seqs, 100, "no delivery after unsubscribe")
			require.Empty(t, eventTypes(t, r))
			require.Empty(t, r.Disconnects)
		})
	}
}

// deltaDoc is a 10 KiB JSON document of which message n changes one field.
func deltaDoc(n int) string {
	var b strings.Builder
	b.WriteString(`{"rows":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"row %03d","value":%d,"note":"ü%s"}`, i, i, (i*7+n*(i%3))%1000, strings.Repeat("·", 20))
	}
	fmt.Fprintf(&b, `],"n":%d}`, n)
	return b.String()
}

// TestClientDeltas: topicast.js asks for fossil deltas, rebuilds every
// message and hands the page the same data as a plain subscriber gets; the
// server counts the bytes saved.
func TestClientDeltas(t *testing.T) {
	srv := startTopicast(t, false, server.Config{})
	b := newBrowser(t)
	b.open(t, srv)
	var c connected
	b.call(t, &c, "T.client", "deltas", clientOpts{Topic: "board", Transports: []string{"websocket"}, Delta: true})
	const msgs = 200
	for i := range msgs {
		var res wire.PublishResult
		post(t, srv, `{"topic":"board","data":`+deltaDoc(i)+`}`, &res)
	}
	var r run
	b.call(t, &r, "T.wait", "deltas", "seqs", msgs, 20_000)
	require.Empty(t, eventTypes(t, r), "no error event: every delta applied")
	require.Empty(t, r.Disconnects)
	require.Len(t, r.Datas, msgs)
	for i, got := range r.Datas {
		require.JSONEq(t, deltaDoc(i), got, "message %d", i+1)
	}
	saved := srv.Node().NodeState().Metrics.DeltaBytesSaved.Load()
	t.Logf("%d messages of %d bytes: %d bytes saved by deltas", msgs, len(deltaDoc(0)), saved)
	require.Greater(t, saved, uint64(msgs/2*len(deltaDoc(0))), "most messages went as deltas")
}
