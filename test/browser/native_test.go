package browser

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/server"
)

// TestNativeAPIs drives the browser's own WebTransport, WebSocket and
// EventSource against one server, from a page of another origin: each
// subscriber receives 1,000 messages, published over HTTP, once and in order,
// and WebTransport datagrams arrive with seqs that never go backwards.
func TestNativeAPIs(t *testing.T) {
	srv := startTopicast(t, true, server.Config{})
	b := newBrowser(t)
	b.open(t, srv)
	const n = 1000

	t.Run("webtransport", func(t *testing.T) {
		var sub struct {
			Answers []struct {
				Op    string `json:"op"`
				Topic string `json:"topic"`
				Seq   uint64 `json:"seq"`
			} `json:"answers"`
			MaxDatagramSize int `json:"maxDatagramSize"`
		}
		start := time.Now()
		b.call(t, &sub, "T.rawWT", "raw-wt", "raw.wt", "raw.dg")
		t.Logf("session and subscriptions up in %v; maxDatagramSize %d", time.Since(start).Round(time.Millisecond), sub.MaxDatagramSize)
		require.Len(t, sub.Answers, 2)
		for _, a := range sub.Answers {
			require.Equal(t, "ok", a.Op, "answer to the sub of %s", a.Topic)
			require.Zero(t, a.Seq)
		}

		start = time.Now()
		for i := range n {
			publish(t, srv, "raw.wt", i)
		}
		var r run
		b.call(t, &r, "T.wait", "raw-wt", "seqs", n, 30_000)
		requireSeqs(t, r, n, n)
		t.Logf("%d messages over the stream in %v", n, time.Since(start).Round(time.Millisecond))

		const dgs = 300
		for i := range dgs {
			publish(t, srv, "raw.dg", i)
		}
		b.call(t, &r, "T.waitLast", "raw-wt", "dg", dgs, 10_000)
		require.NotEmpty(t, r.Dg, "no datagram arrived")
		requireNonDecreasing(t, r.Dg, dgs)
		require.Empty(t, r.StreamDg, "datagram deliveries came over the stream")
		t.Logf("%d of %d datagram deliveries arrived", len(r.Dg), dgs)
		require.Empty(t, r.Events)
	})

	t.Run("websocket", func(t *testing.T) {
		b.call(t, nil, "T.rawWS", "raw-ws", "raw.ws")
		start := time.Now()
		for i := range n {
			publish(t, srv, "raw.ws", i)
		}
		var r run
		b.call(t, &r, "T.wait", "raw-ws", "seqs", n, 30_000)
		requireSeqs(t, r, n, n)
		require.Empty(t, r.Events)
		t.Logf("%d messages in %v", n, time.Since(start).Round(time.Millisecond))
	})

	t.Run("sse", func(t *testing.T) {
		var ready struct {
			Topics map[string]struct {
				Epoch string `json:"epoch"`
				Seq   uint64 `json:"seq"`
			} `json:"topics"`
		}
		b.call(t, &ready, "T.rawSSE", "raw-sse", "raw.sse")
		require.Contains(t, ready.Topics, "raw.sse")
		require.NotEmpty(t, ready.Topics["raw.sse"].Epoch)
		start := time.Now()
		for i := range n {
			publish(t, srv, "raw.sse", i)
		}
		var r run
		b.call(t, &r, "T.wait", "raw-sse", "seqs", n, 30_000)
		requireSeqs(t, r, n, n)
		for i, id := range r.IDs {
			require.NotEmpty(t, id, "event %d has no id (cursor)", i)
		}
		t.Logf("%d messages in %v", n, time.Since(start).Round(time.Millisecond))
	})

	b.screenshot(t, "native-apis")
}

// TestWebTransportCloseCode: a session the server closes with a code (4009
// for a malformed frame) ends in the browser with that code in
// WebTransport.closed. webtransport-go v0.13.0 sends STOP_SENDING on the
// CONNECT stream together with the close capsule, and Chromium then drops the
// capsule and rejects closed with "Connection lost"
// (quic-go/webtransport-go#242): the test skips while that is so.
func TestWebTransportCloseCode(t *testing.T) {
	srv := startTopicast(t, true, server.Config{})
	b := newBrowser(t)
	b.open(t, srv)
	b.call(t, nil, "T.rawWT", "close", "close.a", "close.b")
	b.call(t, nil, "T.send", "close", "{not json")
	var r run
	b.call(t, &r, "T.waitClosed", "close", 10_000)
	var got []string
	for _, e := range r.Events {
		var s string
		require.NoError(t, json.Unmarshal(e, &s))
		got = append(got, s)
	}
	for _, s := range got {
		if strings.HasPrefix(s, "closed: ") {
			t.Skipf("the close code did not reach Chromium (%q): quic-go/webtransport-go#242, in webtransport-go v0.13.0", s)
		}
	}
	// The reason ("malformed frame") comes with the code when the close
	// capsule wins its race with the stream's reset, and is empty when it
	// does not: the code is what must arrive.
	closed := false
	for _, s := range got {
		closed = closed || strings.HasPrefix(s, "closed 4009 ")
	}
	require.True(t, closed, "events: %q", got)
}
