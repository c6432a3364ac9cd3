package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
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

	"github.com/topicast/topicast/internal/server"
)

// webrtcFlags are the Chromium flags of the WebRTC tests. Headless Chromium
// in a container has no multicast DNS: with its default of hiding local
// addresses behind *.local names in ICE candidates, two tabs never reach
// each other (and the server cannot resolve the names either), so the
// candidates must carry the addresses themselves.
var webrtcFlags = []chromedp.ExecAllocatorOption{
	chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
}

// p2pState is what examples/webrtc-p2p/index.html records in window.p2p.
type p2pState struct {
	State       string   `json:"state"`
	Transport   string   `json:"transport"`
	Me          string   `json:"me"`
	Peer        string   `json:"peer"`
	Sent        []string `json:"sent"`
	Received    []string `json:"received"`
	Error       string   `json:"error"`
	Signalling  string   `json:"signalling"`
	Gathering   string   `json:"gathering"`
	Connection  string   `json:"connection"`
	Transport2P string   `json:"candidatePair"`
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

// TestP2PExample runs examples/webrtc-p2p in two tabs of one Chromium: they
// signal through topicast (offers, answers and candidates published on the
// room's topic, which keeps them in its history) and open a data channel
// between themselves, over which a message goes each way. Those messages do
// not pass through the server: no delivery is counted while they travel, and
// no topic's history holds them.
func TestP2PExample(t *testing.T) {
	srv := startTopicast(t, false, server.Config{})
	b := newBrowser(t, webrtcFlags...)
	const room = "p2p.test"
	page := examplesServer(t) + "/webrtc-p2p/index.html?room=" + room + "&server=" + url.QueryEscape("http://"+srv.Addr())

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
