package browser

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
)

// dashState is what the dashboard shows, read from its DOM and window.dash.
type dashState struct {
	Connected      bool   `json:"connected"`
	Transport      string `json:"transport"`
	StatsSeen      int    `json:"statsSeen"`
	ChartPoints    int    `json:"chartPoints"`
	LatencyPoints  int    `json:"latencyPoints"`
	Nodes          string `json:"nodes"`
	Conns          string `json:"conns"`
	Publishes      string `json:"publishes"`
	Deliveries     string `json:"deliveries"`
	P50            string `json:"p50"`
	P99            string `json:"p99"`
	Topics         string `json:"topics"`
	TopicTable     string `json:"topicTable"`
	TryLog         string `json:"tryLog"`
	ReceivedTopics []any  `json:"received"`
}

const dashStateJS = `(() => {
  const d = window.dash || {};
  const t = (s) => document.querySelector(s)?.textContent ?? "";
  return {
    connected: !!d.connected, transport: d.transport || "", statsSeen: d.statsSeen || 0,
    chartPoints: d.chartPoints || 0, latencyPoints: d.latencyPoints || 0,
    nodes: t("#v-nodes"), conns: t("#v-conns"), publishes: t("#d-pubs"), deliveries: t("#d-dels"),
    p50: t("#v-p50"), p99: t("#v-p99"), topics: t("#v-topics"), topicTable: t("#topics tbody"),
    tryLog: t("#try-log"), received: (d.received || []).map((m) => m.topic),
  };
})()`

// leadingInt reads the number at the start of s ("1,234 in total" -> 1234).
func leadingInt(s string) int {
	s = strings.ReplaceAll(s, ",", "")
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(s[:end])
	return n
}

// TestDashboard opens the dashboard served at / by the server itself, which
// is a topicast.js client of sys:stats: it sees the node, then 100 published
// messages move the publish and delivery counters, the latency chart gets
// points, and "try it" publishes a message that comes back to the page.
func TestDashboard(t *testing.T) {
	srv := startTopicast(t, true, server.Config{})
	b := newBrowser(t)

	var st dashState
	read := func() dashState {
		t.Helper()
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[dashState](dashStateJS))
		require.NoError(t, err)
		return s
	}
	waitFor := func(what string, cond func(dashState) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st = read()
			if cond(st) {
				return
			}
			if time.Now().After(deadline) {
				b.screenshot(t, "dashboard-failed")
				t.Fatalf("dashboard: %s: not seen in 30 s; it shows %+v", what, st)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+srv.Addr()+"/")))
	cancel()
	waitFor("connected with stats", func(s dashState) bool { return s.Connected && s.StatsSeen >= 2 && s.Nodes == "1" })
	t.Logf("dashboard connected over %s", st.Transport)
	before := st

	// A subscriber on another connection, and 100 messages for it.
	wsc, err := testutil.DialWS(context.Background(), "ws://"+srv.Addr()+"/ws", 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = wsc.Close() })
	ok, err := wsc.Subscribe("dash.load", 1, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", ok.Op, ok.Raw)
	var got atomic.Int64
	go wsc.Read(func(f []byte) {
		if topic, _, ok := testutil.MsgSeq(f); ok && topic == "dash.load" {
			got.Add(1)
		}
	})
	// Let the page see the subscribed topic before the load, then publish.
	waitFor("the subscribed topic", func(s dashState) bool { return strings.Contains(s.TopicTable, "dash.load") })
	for i := range 10 {
		publishBatch(t, srv, "dash.load", i*10, 10, 16)
	}
	require.Eventually(t, func() bool { return got.Load() == 100 }, 10*time.Second, 20*time.Millisecond)

	waitFor("counters and chart moved", func(s dashState) bool {
		return leadingInt(s.Publishes) >= leadingInt(before.Publishes)+100 &&
			leadingInt(s.Deliveries) >= leadingInt(before.Deliveries)+100 &&
			s.ChartPoints > before.ChartPoints && s.LatencyPoints > 0 &&
			strings.HasSuffix(s.P99, "ms")
	})
	t.Logf("after 100 messages: publishes %q, deliveries %q, p50 %s, p99 %s, %d chart points (%d before)",
		st.Publishes, st.Deliveries, st.P50, st.P99, st.ChartPoints, before.ChartPoints)

	// A reloaded page starts with the stats of the last minutes, from the
	// topic's history.
	points := st.ChartPoints
	ctx, cancel = context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, chromedp.Reload()))
	waitFor("the history after a reload", func(s dashState) bool { return s.Connected && s.ChartPoints >= points })

	// Try it: the page subscribes to the topic, publishes and shows the message.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#try-topic"), "dash.try"),
		chromedp.SetValue(chromedp.CSS("#try-data"), `{"hello":"from the test"}`),
		chromedp.Click(chromedp.CSS("#try-btn")),
	))
	waitFor("the try-it message", func(s dashState) bool {
		return strings.Contains(s.TryLog, `← dash.try #1 {"hello":"from the test"}`) &&
			strings.Contains(s.TryLog, "published as #1")
	})
	// The page's own subscription shows in the topic table too.
	waitFor("both topics listed", func(s dashState) bool {
		return strings.Contains(s.TopicTable, "dash.try") && strings.Contains(s.TopicTable, "dash.load")
	})
	require.Equal(t, fmt.Sprint([]any{"dash.try"}), fmt.Sprint(st.ReceivedTopics))
	b.screenshot(t, "dashboard")
}
