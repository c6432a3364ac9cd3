package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// A dashboard that reads one frame a second from a topic published at
// 1,000 msg/s for 30 s: with "mode":"latest" it is never closed, every
// frame is newer than the one before, the last it gets is the last
// published, and the node's backlog stays flat; the same client without
// latest, on a twin topic in the same run, is closed with 4008.
func TestLatestValueSlowDashboard(t *testing.T) {
	testutil.SkipIfShort(t)
	srv := startServer(t, server.Config{StatsInterval: -1, PublishRate: -1})
	ctx := context.Background()
	state := srv.Node().NodeState()

	dial := func(topic, mode string) *testutil.WSClient {
		c, err := testutil.DialWS(ctx, wsURL(srv), 128<<10)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		sub := fmt.Sprintf(`{"op":"sub","id":1,"topic":%q%s}`, topic, mode)
		require.NoError(t, c.Send(sub))
		f, err := c.ReadUntil(func(f testutil.Frame) bool { return f.ID == 1 }, nil)
		require.NoError(t, err)
		require.Equal(t, "ok", f.Op, f.Raw)
		return c
	}
	latest := dial("dash.latest", `,"mode":"latest"`)
	plain := dial("dash.all", "")

	// Both clients send pings (the server's keepalive wants to hear from
	// them; its own pings wait behind the data they do not read).
	stopPings := make(chan struct{})
	defer close(stopPings)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopPings:
				return
			case <-tick.C:
				_ = latest.Send(`{"op":"ping"}`)
				_ = plain.Send(`{"op":"ping"}`)
			}
		}
	}()

	// The latest client reads one frame a second while the publisher runs,
	// then as fast as it can.
	var published atomic.Bool
	var lastSeq, frames, older atomic.Uint64
	gotLast := make(chan struct{})
	var gotLastOnce sync.Once
	var finalSeq atomic.Uint64
	go latest.Read(func(f []byte) {
		topic, seq, ok := testutil.MsgSeq(f)
		if !ok || topic != "dash.latest" {
			return
		}
		frames.Add(1)
		if seq <= lastSeq.Load() {
			older.Add(1)
		}
		lastSeq.Store(seq)
		if published.Load() && seq == finalSeq.Load() {
			gotLastOnce.Do(func() { close(gotLast) })
		}
		if !published.Load() {
			time.Sleep(time.Second)
		}
	})
	go plain.Read(func([]byte) {
		if !published.Load() {
			time.Sleep(time.Second)
		}
	})

	const rate, seconds, batch = 1000, 30, 10
	pad := strings.Repeat("x", 1000)
	var maxBacklog int64
	tick := time.NewTicker(time.Second / (rate / batch))
	var res []wire.PublishResult
	for i := 0; i < rate*seconds; i += batch {
		<-tick.C
		items := make([]string, 0, 2*batch)
		for j := range batch {
			for _, topic := range []string{"dash.latest", "dash.all"} {
				items = append(items, fmt.Sprintf(`{"topic":%q,"data":{"n":%d,"pad":%q}}`, topic, i+j, pad))
			}
		}
		status, body := post(t, srv, `{"messages":[`+join(items)+`]}`)
		require.Equal(t, http.StatusOK, status, "%s", body)
		if i+batch >= rate*seconds {
			var out struct{ Results []wire.PublishResult }
			require.NoError(t, json.Unmarshal(body, &out))
			res = out.Results
		}
		maxBacklog = max(maxBacklog, state.PendingBytes())
	}
	tick.Stop()
	for _, r := range res {
		if r.Topic == "dash.latest" {
			finalSeq.Store(r.Seq)
		}
	}
	published.Store(true)
	if lastSeq.Load() == finalSeq.Load() {
		gotLastOnce.Do(func() { close(gotLast) }) // read before published was set
	}

	select {
	case <-gotLast:
	case <-latest.Done():
		t.Fatalf("the latest client was closed: %d %q, %v", latest.CloseCode, latest.CloseReason, latest.Err)
	case <-time.After(30 * time.Second):
		t.Fatalf("the latest client got up to seq %d of %d", lastSeq.Load(), finalSeq.Load())
	}
	select {
	case <-plain.Done():
		// The server closed it as a slow consumer; the client reads the
		// 4008 only when the close frame got past the data it did not read
		// (else its connection was dropped: docs/protocol.md).
		if plain.Err == nil {
			require.Equal(t, wire.CloseSlowConsumer, plain.CloseCode, "the plain client: %q", plain.CloseReason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client without latest was not closed")
	}
	fams := scrape(t, srv)
	require.Equal(t, 1.0, metricValue(fams, "topicast_connections_closed_total", "code", "4008"), "4008 closes")
	require.Equal(t, float64(state.Metrics.Conflated.Load()), metricValue(fams, "topicast_conflated_total"))
	require.Zero(t, older.Load(), "frames not newer than the one before")
	conflated := state.Metrics.Conflated.Load()
	t.Logf("latest client: %d frames of %d published, %d conflated; largest node backlog %d KiB",
		frames.Load(), finalSeq.Load(), conflated, maxBacklog>>10)
	require.Greater(t, conflated, uint64(rate*seconds/2), "most messages should have been conflated")
	// Flat: the plain client's queue (1 MiB before its 4008) and a frame
	// or two of the latest client's, never the 30 MB published.
	require.Less(t, maxBacklog, int64(2<<20))
}

// publishPadded publishes n messages of 1 KiB to topic, 100 per request,
// and returns the last seq.
func publishPadded(t *testing.T, srv *server.Server, topic string, n int) uint64 {
	t.Helper()
	pad := strings.Repeat("x", 1000)
	var last uint64
	for i := 0; i < n; i += 100 {
		items := make([]string, 0, 100)
		for j := i; j < min(i+100, n); j++ {
			items = append(items, fmt.Sprintf(`{"topic":%q,"data":{"n":%d,"pad":%q}}`, topic, j, pad))
		}
		status, body := post(t, srv, `{"messages":[`+join(items)+`]}`)
		require.Equal(t, http.StatusOK, status, "%s", body)
		var out struct{ Results []wire.PublishResult }
		require.NoError(t, json.Unmarshal(body, &out))
		last = out.Results[len(out.Results)-1].Seq
	}
	return last
}

// Latest-value subscriptions over a WebTransport stream and over SSE: a
// client that reads nothing while 1 KiB messages pour in is not closed,
// and once it reads it gets newer and newer messages up to the last one,
// the ones in between conflated in its queue.
func TestLatestValueOverWebTransportAndSSE(t *testing.T) {
	testutil.SkipIfShort(t)
	srv, wtURL, certHash := startWT(t, server.Config{StatsInterval: -1, PublishRate: -1})
	state := srv.Node().NodeState()

	t.Run("webtransport", func(t *testing.T) {
		c := dialWTRaw(t, wtURL, certHash, `{"op":"sub","id":1,"topic":"wt.latest","mode":"latest"}`)
		require.Equal(t, "ok", c.readUntil(t, func(f testutil.Frame) bool { return f.ID == 1 }).Op)
		before := state.Metrics.Conflated.Load()
		last := publishPadded(t, srv, "wt.latest", 5000) // the stream's window fills: the queue conflates
		var prev uint64
		for prev < last {
			f := c.readUntil(t, func(f testutil.Frame) bool { return f.Op == "msg" || f.Op == "error" })
			require.Equal(t, "msg", f.Op, f.Raw)
			require.Greater(t, f.Seq, prev)
			prev = f.Seq
		}
		t.Logf("webtransport: %d conflated", state.Metrics.Conflated.Load()-before)
		require.Greater(t, state.Metrics.Conflated.Load(), before)
	})

	t.Run("sse", func(t *testing.T) {
		s := openSSE(t, srv, "topic=sse.latest&mode=latest", "")
		readReady(t, s)
		before := state.Metrics.Conflated.Load()
		last := publishPadded(t, srv, "sse.latest", 20000) // more than the socket buffers hold
		var prev uint64
		for prev < last {
			ev, err := s.next()
			require.NoError(t, err)
			require.Empty(t, ev.name, "an unnamed (msg) event: %+v", ev)
			var m msgFrame
			require.NoError(t, json.Unmarshal([]byte(ev.data), &m))
			require.Greater(t, m.Seq, prev)
			prev = m.Seq
		}
		t.Logf("sse: %d conflated", state.Metrics.Conflated.Load()-before)
		require.Greater(t, state.Metrics.Conflated.Load(), before)
	})
}
