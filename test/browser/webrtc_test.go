package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/auth"
)

// webrtcFlags are the Chromium flags of the WebRTC tests. With Chromium's
// defaults both tests pass on a host with a network interface besides
// loopback (as where they were written): a tab's host candidates are then
// *.local names, which the server never resolves (it learns the tab's
// address from the tab's ICE checks, a peer-reflexive candidate) and which
// two tabs of one Chromium resolve by multicast DNS.
//   - WebRtcHideLocalIpsWithMdns disabled puts the addresses themselves in
//     the candidates: no multicast DNS needed between the tabs, and the
//     candidates in the logs say where the tabs are.
//   - --allow-loopback-in-peer-connection is what makes the server reachable
//     on a host with a loopback interface only (a network namespace:
//     without it the tab falls back to WebSocket). Two tabs still cannot
//     reach each other there: Chromium signals no candidate at all, so
//     TestP2PExample needs a host with a network interface.
var webrtcFlags = []chromedp.ExecAllocatorOption{
	chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
	chromedp.Flag("allow-loopback-in-peer-connection", true),
}

// p2pState is what examples/webrtc-p2p/index.html records in window.p2p.
type p2pState struct {
	State      string   `json:"state"`
	Transport  string   `json:"transport"`
	Me         string   `json:"me"`
	Peer       string   `json:"peer"`
	Sent       []string `json:"sent"`
	Received   []string `json:"received"`
	Error      string   `json:"error"`
	Signalling string   `json:"signalling"`
	Gathering  string   `json:"gathering"`
	Connection string   `json:"connection"`
}

const p2pStateJS = `(() => {
  const p = window.p2p || {};
  const pc = p.link && p.link.pc;
  return { state: p.state || "", transport: p.transport || "", me: p.me || "", peer: p.peer || "",
    sent: p.sent || [], received: p.received || [], error: p.error || "",
    signalling: pc ? pc.signalingState : "", gathering: pc ? pc.iceGatheringState : "",
    connection: pc ? pc.connectionState : "" };
})()`

// tab is one page of a browser.
type tab struct {
	name string
	ctx  context.Context
}

// newTab opens another tab in b's Chromium; it closes when t ends.
func newTab(t *testing.T, b *browser, name string) tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(ctx), "open a tab")
	require.NoError(t, chromedp.Listen(ctx, func(ev any) { b.onEvent(ev) }))
	return tab{name: name, ctx: ctx}
}

func (tb tab) navigate(t *testing.T, u string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(u)), "%s: open %s", tb.name, u)
}

// eval evaluates expr in the tab and decodes its value into out.
func (tb tab) eval(t *testing.T, out any, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	require.NoError(t, err, "%s: %s", tb.name, expr)
	if out != nil {
		require.NoError(t, json.Unmarshal(res, out), "%s: %s answered %s", tb.name, expr, res)
	}
}

func (tb tab) p2p(t *testing.T) p2pState {
	t.Helper()
	var st p2pState
	tb.eval(t, &st, p2pStateJS)
	return st
}

// waitP2P polls the tab's window.p2p until cond holds, for at most d.
func (tb tab) waitP2P(t *testing.T, what string, d time.Duration, cond func(p2pState) bool) p2pState {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := tb.p2p(t)
		if cond(st) {
			return st
		}
		require.Empty(t, st.Error, "%s: the page failed", tb.name)
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: not within %v: %+v", tb.name, what, d, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requireNetworkInterface skips t (fails it when CI is set) on a host whose
// only interface is loopback, where two Chromium tabs cannot connect
// (webrtcFlags).
func requireNetworkInterface(t *testing.T) {
	t.Helper()
	ifaces, err := net.Interfaces()
	require.NoError(t, err)
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		if addrs, err := ifc.Addrs(); err == nil && len(addrs) > 0 {
			return
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no network interface besides loopback: Chromium tabs cannot reach each other over WebRTC")
	}
	t.Skip("no network interface besides loopback: Chromium tabs cannot reach each other over WebRTC")
}

// examplesServer serves the repository's examples/ on 127.0.0.1, an origin
// topicast allows by default.
func examplesServer(t *testing.T) string {
	t.Helper()
	es := httptest.NewServer(http.FileServerFS(os.DirFS("../../examples")))
	t.Cleanup(es.Close)
	return es.URL
}

// metricValue sums the samples of metric name in srv's /metrics whose labels
// contain every one of labels (`transport="ws"`); false if there is none.
func metricValue(t *testing.T, srv *server.Server, name string, labels ...string) (float64, bool) {
	t.Helper()
	resp, err := httpClient.Get("http://" + srv.Addr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		sp := strings.LastIndexByte(rest, ' ')
		for _, l := range labels {
			if !strings.Contains(rest[:sp], l) {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(rest[sp+1:], 64)
		require.NoError(t, err, "%s", line)
		sum += v
		found = true
	}
	require.NoError(t, sc.Err())
	return sum, found
}

// historyOf returns the head and the data of the messages of topic, from
// GET /v1/history.
func historyOf(t *testing.T, srv *server.Server, topic string) (uint64, []json.RawMessage) {
	t.Helper()
	resp, err := httpClient.Get("http://" + srv.Addr() + "/v1/history?limit=1000&topic=" + url.QueryEscape(topic))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var h struct {
		Head     uint64 `json:"head"`
		Messages []struct {
			Data json.RawMessage `json:"data"`
		} `json:"messages"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
	datas := make([]json.RawMessage, len(h.Messages))
	for i, m := range h.Messages {
		datas[i] = m.Data
	}
	return h.Head, datas
}

// startWebRTC runs a server with WebRTC on a free loopback UDP port (and
// WebTransport when wt is set).
func startWebRTC(t *testing.T, wt bool, cfg server.Config) *server.Server {
	t.Helper()
	cfg.WebRTCUDPAddr = "127.0.0.1:0"
	return startTopicast(t, wt, cfg)
}

// TestClientWebRTC: topicast.js in a page without WebTransport, against a
// server that offers both, takes WebRTC from its default transport ladder
// (the server counts the session as transport="webrtc"). Over it the page
// receives 1,000 messages once and in order although the server closes the
// session once (a frozen page, silent for too long: the close frame says
// going_away, 1001) and its data channel closes once without a close frame
// (1006), each time reconnecting and recovering; it publishes, answers
// pings, and its datagram subscription gets messages over the
// "topicast-datagram" channel with seqs that never go backwards. A page that
// leaves "webrtc" out of its transports gets WebSocket.
func TestClientWebRTC(t *testing.T) {
	srv := startWebRTC(t, true, server.Config{
		// Pinged after 200 ms without a pong, closed after 1.5 s of silence.
		Keepalive: transport.KeepaliveConfig{PingAfter: 200 * time.Millisecond, SilenceLimit: 1500 * time.Millisecond, SweepEvery: 50 * time.Millisecond},
	})
	b := newBrowser(t, webrtcFlags...)

	t.Run("ladder", func(t *testing.T) {
		b.open(t, srv)
		var c connected
		start := time.Now()
		b.call(t, &c, "T.client", "rtc", clientOpts{Topic: "feed.rtc", DgTopic: "pos.rtc", NoWebTransport: true, TapChannels: true})
		require.Equal(t, "webrtc", c.Transport, "the transport after WebTransport")
		t.Logf("connected over %s in %v", c.Transport, time.Since(start).Round(time.Millisecond))
		conns, ok := metricValue(t, srv, "topicast_connections", `transport="webrtc"`)
		require.True(t, ok, `no topicast_connections{transport="webrtc"} in /metrics`)
		require.Equal(t, 1.0, conns, "WebRTC sessions open on the server")

		n := 0
		pub := func(k int) {
			for range k {
				publish(t, srv, "feed.rtc", n)
				n++
			}
		}
		var r run
		pub(400)
		b.call(t, nil, "T.freeze", 2500)
		pub(100) // while the page is frozen
		b.call(t, &r, "T.waitReconnected", "rtc", 1, 15_000)
		require.Equal(t, []int{1001}, r.Disconnects, "the close frame's code")
		require.Equal(t, "webrtc", r.Transport, "the transport after the reconnection")
		pub(300)
		// The session's channel closes without a close frame: abnormal.
		b.call(t, nil, "T.closeChannel", "rtc", "topicast")
		pub(100)
		b.call(t, &r, "T.waitReconnected", "rtc", 2, 15_000)
		require.Equal(t, []int{1001, 1006}, r.Disconnects, "a close without a close frame")
		require.Equal(t, "webrtc", r.Transport, "the transport after the reconnection")
		pub(100)
		b.call(t, &r, "T.wait", "rtc", "seqs", n, 30_000)
		requireSeqs(t, r, n, n)
		require.Empty(t, eventTypes(t, r), "no reset or gap: everything was recovered")
		require.GreaterOrEqual(t, r.Channels["topicast"], 1, "messages on the topicast channel")

		var pubs []published
		b.call(t, &pubs, "T.clientPublish", "rtc", "feed.rtc", 5)
		for i, p := range pubs {
			require.Empty(t, p.Error)
			require.Equal(t, uint64(n+1+i), p.Seq)
		}
		b.call(t, &r, "T.wait", "rtc", "seqs", n+5, 10_000)
		require.Len(t, r.Seqs, n+5)

		// Quiet for longer than the silence limit: only the pongs keep the session.
		b.call(t, nil, "T.idle", 2500)

		const dgs = 200
		for i := range dgs {
			publish(t, srv, "pos.rtc", i)
		}
		b.call(t, &r, "T.waitLast", "rtc", "dg", dgs, 10_000)
		require.NotEmpty(t, r.Dg)
		requireNonDecreasing(t, r.Dg, dgs)
		require.Positive(t, r.Channels["topicast-datagram"], "messages on the datagram channel")
		require.Equal(t, []int{1001, 1006}, r.Disconnects, "the client answers pings")
		t.Logf("%d of %d datagram deliveries arrived; channel messages %v", len(r.Dg), dgs, r.Channels)
		b.screenshot(t, "client-webrtc")
		b.call(t, nil, "T.close", "rtc")
		waitMetric(t, srv, 0, "topicast_connections", `transport="webrtc"`)
	})

	t.Run("excluded", func(t *testing.T) {
		b.open(t, srv)
		var c connected
		b.call(t, &c, "T.client", "ws", clientOpts{Topic: "feed.ws", NoWebTransport: true,
			Transports: []string{"webtransport", "websocket", "sse"}})
		require.Equal(t, "websocket", c.Transport)
		b.call(t, nil, "T.close", "ws")
	})
}

// tokenScript connects topicast.js over WebRTC only with a token, subscribes,
// and reports what the client saw: its events, and the subscription's answer.
const tokenScript = `(async (server, token) => {
  const { connect } = await import(server + "/topicast.js");
  const events = [];
  const c = await connect({ url: server, token, transports: ["webrtc"], onEvent: (e) => events.push(e) });
  let err = null, seqs = [];
  try {
    await c.subscribe("tok.a", (m) => seqs.push(m.seq)).ready;
  } catch (e) {
    err = { code: e.code, closeCode: e.closeCode ?? 0 };
  }
  for (let i = 0; i < 200 && !events.some((e) => e.type === "closed"); i++) await new Promise((r) => setTimeout(r, 10));
  const transport = c.transport;
  c.close();
  return { transport, events, err };
})`

// TestClientWebRTCToken: on a server that requires tokens, topicast.js sends
// its token with the offer (Authorization: Bearer); a refused one (401) ends
// the client as a 4001 close would over WebSocket.
func TestClientWebRTCToken(t *testing.T) {
	secret := []byte("browser-test-secret-0123456789abcdef")
	srv := startWebRTC(t, false, server.Config{Guard: actors.GuardConfig{TokenSecret: secret}})
	b := newBrowser(t, webrtcFlags...)
	type result struct {
		Transport string `json:"transport"`
		Events    []struct {
			Type      string `json:"type"`
			Transport string `json:"transport"`
			Code      int    `json:"code"`
		} `json:"events"`
		Err *struct {
			Code      string `json:"code"`
			CloseCode int    `json:"closeCode"`
		} `json:"err"`
	}

	t.Run("valid", func(t *testing.T) {
		b.open(t, srv)
		tok, err := auth.Sign(secret, auth.Claims{Subject: "ada", Expires: time.Now().Add(time.Hour), Subscribe: []string{"tok.*"}})
		require.NoError(t, err)
		var r result
		b.call(t, &r, tokenScript, "http://"+srv.Addr(), tok)
		require.Nil(t, r.Err, "the subscription was refused")
		require.Equal(t, "webrtc", r.Transport)
		require.Len(t, r.Events, 1, "%+v", r.Events)
		require.Equal(t, "connected", r.Events[0].Type)
	})

	t.Run("refused", func(t *testing.T) {
		b.open(t, srv)
		var r result
		b.call(t, &r, tokenScript, "http://"+srv.Addr(), "not-a-token")
		require.NotNil(t, r.Err, "the subscription went through")
		require.Equal(t, "unauthorized", r.Err.Code)
		require.Equal(t, 4001, r.Err.CloseCode)
		require.NotEmpty(t, r.Events)
		last := r.Events[len(r.Events)-1]
		require.Equal(t, "closed", last.Type, "%+v", r.Events)
		require.Equal(t, 4001, last.Code)
	})
}

// waitMetric waits up to 5 s for the metric (summed as by metricValue) to be want.
func waitMetric(t *testing.T, srv *server.Server, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, _ := metricValue(t, srv, name, labels...)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v is %v, want %v", name, labels, v, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestP2PExample runs examples/webrtc-p2p in two tabs of one Chromium: they
// signal through topicast (offers, answers and candidates published on the
// room's topic, which keeps them in its history) and open a data channel
// between themselves, over which a message goes each way. Those messages do
// not pass through the server: no delivery is counted while they travel, and
// no topic's history holds them.
func TestP2PExample(t *testing.T) {
	requireNetworkInterface(t)
	srv := startWebRTC(t, false, server.Config{})
	b := newBrowser(t, webrtcFlags...)
	const room = "p2p.test"
	page := examplesServer(t) + "/webrtc-p2p/index.html?room=" + room + "&server=" + url.QueryEscape("http://"+srv.Addr())

	t.Cleanup(func() {
		if t.Failed() {
			_, datas := historyOf(t, srv, room)
			for _, d := range datas {
				t.Logf("signalling on %s: %s", room, d)
			}
		}
	})
	alice := tab{name: "alice", ctx: b.ctx}
	bob := newTab(t, b, "bob")
	start := time.Now()
	alice.navigate(t, page)
	alice.waitP2P(t, "connected to topicast", 20*time.Second, func(s p2pState) bool { return s.State == "waiting" })
	bob.navigate(t, page)
	open := func(s p2pState) bool { return s.State == "open" }
	a := alice.waitP2P(t, "data channel open", 30*time.Second, open)
	bs := bob.waitP2P(t, "data channel open", 30*time.Second, open)
	t.Logf("data channel open in %v; alice %s and bob %s on topicast over %s and %s",
		time.Since(start).Round(time.Millisecond), a.Me[:8], bs.Me[:8], a.Transport, bs.Transport)
	require.Equal(t, bs.Me, a.Peer)
	require.Equal(t, a.Me, bs.Peer)

	// Let the negotiation settle (a last candidate or a second offer may
	// still be on its way) before counting deliveries.
	quiet := func(s p2pState) bool { return s.Signalling == "stable" && s.Gathering == "complete" }
	alice.waitP2P(t, "negotiation over", 10*time.Second, quiet)
	bob.waitP2P(t, "negotiation over", 10*time.Second, quiet)
	head, _ := historyOf(t, srv, room)
	for {
		time.Sleep(500 * time.Millisecond)
		h, _ := historyOf(t, srv, room)
		if h == head {
			break
		}
		head = h
	}
	before, ok := metricValue(t, srv, "topicast_deliveries_total")
	require.True(t, ok, "no topicast_deliveries_total in /metrics")
	require.Positive(t, before, "the signalling was delivered by topicast")

	hello := fmt.Sprintf("hello bob, %d", time.Now().UnixNano())
	reply := fmt.Sprintf("hello alice, %d", time.Now().UnixNano())
	alice.eval(t, nil, fmt.Sprintf("p2p.send(%q)", hello))
	bob.waitP2P(t, "alice's message", 10*time.Second, func(s p2pState) bool { return len(s.Received) == 1 })
	bob.eval(t, nil, fmt.Sprintf("p2p.send(%q)", reply))
	a = alice.waitP2P(t, "bob's message", 10*time.Second, func(s p2pState) bool { return len(s.Received) == 1 })
	bs = bob.p2p(t)
	require.Equal(t, []string{hello}, bs.Received)
	require.Equal(t, []string{reply}, a.Received)

	after, _ := metricValue(t, srv, "topicast_deliveries_total")
	require.Equal(t, before, after, "deliveries counted while the peers chatted")
	h, datas := historyOf(t, srv, room)
	require.Equal(t, head, h, "messages published on the room while the peers chatted")
	var offers, answers, candidates int
	for _, d := range datas {
		require.NotContains(t, string(d), "hello bob", "a chat message went through topicast")
		require.NotContains(t, string(d), "hello alice", "a chat message went through topicast")
		var m struct {
			From string `json:"from"`
			Data struct {
				Description *struct {
					Type string `json:"type"`
				} `json:"description"`
				Candidate json.RawMessage `json:"candidate"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(d, &m), "%s", d)
		require.Contains(t, []string{a.Me, bs.Me}, m.From, "%s", d)
		switch {
		case m.Data.Description != nil && m.Data.Description.Type == "offer":
			offers++
		case m.Data.Description != nil && m.Data.Description.Type == "answer":
			answers++
		case m.Data.Candidate != nil:
			candidates++
			var c struct {
				Candidate string `json:"candidate"`
			}
			require.NoError(t, json.Unmarshal(m.Data.Candidate, &c), "%s", d)
			t.Logf("%s's candidate: %s", m.From[:8], c.Candidate)
		}
	}
	t.Logf("signalling through topicast: %d messages, %d offers, %d answers, %d candidates", len(datas), offers, answers, candidates)
	require.Positive(t, offers)
	require.Positive(t, answers)
	require.Positive(t, candidates)
	b.screenshot(t, "webrtc-p2p-alice")

	// A tab that leaves says goodbye to the other.
	bob.eval(t, nil, "p2p.close()")
	alice.waitP2P(t, "bob gone", 10*time.Second, func(s p2pState) bool { return s.State == "closed" })
}
