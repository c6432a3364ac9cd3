package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	pionwebrtc "github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
)

// rtcClient is a bare WebRTC client of the protocol, on pion: what a
// browser does, without the SDK.
type rtcClient struct {
	pc     *pionwebrtc.PeerConnection
	main   *pionwebrtc.DataChannel
	frames chan string
	dgrams chan string
}

// dialRTC connects to srv over WebRTC; editAnswer, if set, changes the
// server's answer before the client applies it.
func dialRTC(t *testing.T, srv *server.Server, query string, editAnswer func(string) string) *rtcClient {
	t.Helper()
	var se pionwebrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]pionwebrtc.NetworkType{pionwebrtc.NetworkTypeUDP4})
	pc, err := pionwebrtc.NewAPI(pionwebrtc.WithSettingEngine(se)).NewPeerConnection(pionwebrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	c := &rtcClient{pc: pc, frames: make(chan string, 4096), dgrams: make(chan string, 4096)}
	c.main, err = pc.CreateDataChannel("topicast", nil)
	require.NoError(t, err)
	open := make(chan struct{})
	c.main.OnOpen(func() { close(open) })
	c.main.OnMessage(func(m pionwebrtc.DataChannelMessage) {
		for f := range strings.SplitSeq(string(m.Data), "\n") {
			c.frames <- f
		}
	})
	no, zero := false, uint16(0)
	dg, err := pc.CreateDataChannel("topicast-datagram", &pionwebrtc.DataChannelInit{Ordered: &no, MaxRetransmits: &zero})
	require.NoError(t, err)
	dgOpen := make(chan struct{})
	dg.OnOpen(func() { close(dgOpen) })
	dg.OnMessage(func(m pionwebrtc.DataChannelMessage) { c.dgrams <- string(m.Data) })
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	gathered := pionwebrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(offer))
	<-gathered

	// The URL of /v1/info is relative to the server's.
	var info server.Info
	resp, err := httpClient.Get("http://" + srv.Addr() + "/v1/info")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&info))
	resp.Body.Close()
	require.NotNil(t, info.WebRTC)
	resp, err = httpClient.Post("http://"+srv.Addr()+info.WebRTC.URL+query, "application/sdp", strings.NewReader(pc.LocalDescription().SDP))
	require.NoError(t, err)
	answer, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", answer)
	if editAnswer != nil {
		answer = []byte(editAnswer(string(answer)))
	}
	require.NoError(t, pc.SetRemoteDescription(pionwebrtc.SessionDescription{Type: pionwebrtc.SDPTypeAnswer, SDP: string(answer)}))
	for _, ch := range []chan struct{}{open, dgOpen} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("a data channel did not open")
		}
	}
	return c
}

func (c *rtcClient) send(t *testing.T, frame string) {
	t.Helper()
	require.NoError(t, c.main.SendText(frame))
}

// next returns the next frame that is not a ping.
func (c *rtcClient) next(t *testing.T) string {
	t.Helper()
	for {
		select {
		case f := <-c.frames:
			if f != `{"op":"ping"}` {
				return f
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no frame in 10 s")
		}
	}
}

// TestWebRTCThroughTheNode runs the node's real connection actors over
// WebRTC: a subscription gets every message in order, a datagram
// subscription gets them on the datagram channel with seq never going
// backwards, a client pub is answered, and the metrics count the session
// as webrtc.
func TestWebRTCThroughTheNode(t *testing.T) {
	srv := startServer(t, server.Config{StatsInterval: -1, PublishRate: -1, WebRTCUDPAddr: "127.0.0.1:0"})
	c := dialRTC(t, srv, "", nil)
	c.send(t, `{"op":"sub","id":1,"topic":"rtc.a"}`+"\n"+`{"op":"sub","id":2,"topic":"rtc.dg","delivery":"datagram"}`)
	for range 2 {
		rep, ok := wire.ParseOK([]byte(c.next(t)))
		require.True(t, ok)
		require.Contains(t, []uint64{1, 2}, rep.ID)
	}
	const n = 1000
	var batch strings.Builder
	for i := 1; i <= n; i++ {
		if batch.Len() == 0 {
			batch.WriteString(`{"messages":[`)
		} else {
			batch.WriteString(",")
		}
		fmt.Fprintf(&batch, `{"topic":"rtc.a","data":{"i":%d}},{"topic":"rtc.dg","data":{"i":%d}}`, i, i)
		if i%100 == 0 {
			batch.WriteString("]}")
			status, body := post(t, srv, batch.String())
			require.Equal(t, http.StatusOK, status, "%s", body)
			batch.Reset()
		}
	}
	for want := uint64(1); want <= n; want++ {
		f := c.next(t)
		h, ok := wire.ParseHead([]byte(f))
		require.True(t, ok, f)
		if string(h.Topic) == "rtc.dg" { // a datagram sent over the stream (before the channel opened)
			want--
			continue
		}
		require.Equal(t, "rtc.a", string(h.Topic))
		require.Equal(t, want, h.Seq, f)
	}
	var last uint64
	got := 0
	timeout := time.After(10 * time.Second)
	for last < n {
		select {
		case d := <-c.dgrams:
			h, ok := wire.ParseHead([]byte(d))
			require.True(t, ok, d)
			require.Equal(t, "rtc.dg", string(h.Topic))
			require.GreaterOrEqual(t, h.Seq, last, "datagram seqs never go backwards")
			last = h.Seq
			got++
		case <-timeout:
			t.Fatalf("the datagram subscription stopped at seq %d", last)
		}
	}
	t.Logf("datagrams: %d of %d messages arrived, the newest included", got, n)

	c.send(t, `{"op":"pub","id":3,"topic":"rtc.b","data":{"from":"webrtc"}}`)
	rep, ok := wire.ParseOK([]byte(c.next(t)))
	require.True(t, ok)
	require.Equal(t, uint64(3), rep.ID)
	require.Equal(t, uint64(1), rep.Seq)

	require.Equal(t, 1.0, metricValue(scrape(t, srv), "topicast_connections", "transport", "webrtc"))
}

// TestWebRTCTokens: an offer with a bad token is refused with 401 before
// any peer connection exists, and a token that expires closes the session
// with the close frame of 4001.
func TestWebRTCTokens(t *testing.T) {
	srv := startServer(t, server.Config{StatsInterval: -1, WebRTCUDPAddr: "127.0.0.1:0",
		Guard: actors.GuardConfig{TokenSecret: secSecret}})
	resp, err := httpClient.Post("http://"+srv.Addr()+"/v1/webrtc?token=nonsense", "application/sdp", strings.NewReader(webrtcOffer(t)))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), `"code":"unauthorized"`)

	c := dialRTC(t, srv, secTokenQuery(secToken(t, "rtc-user", 1500*time.Millisecond, []string{"*"}, nil)), nil)
	c.send(t, `{"op":"sub","id":1,"topic":"rtc.t"}`)
	_, ok := wire.ParseOK([]byte(c.next(t)))
	require.True(t, ok)
	for {
		f := c.next(t)
		if code, _, ok := wire.ParseCloseFrame([]byte(f)); ok {
			require.Equal(t, wire.CloseUnauthorized, code)
			return
		}
	}
}

// TestWebRTCLossDatagramVsReliable is TestWTLossDatagramVsStream over
// WebRTC: through a relay that drops 5% of the UDP packets each way and
// delays each by 10 ms, the reliable channel's topic arrives complete and
// in order and the datagram channel's newest value keeps arriving. The
// answer's candidate is rewritten to the relay's port, as a 1:1 NAT would
// show it; the server learns the relay's address from its checks.
func TestWebRTCLossDatagramVsReliable(t *testing.T) {
	testutil.SkipIfShort(t)
	const (
		loss     = 0.05
		delay    = 10 * time.Millisecond
		rate     = 200
		duration = 5 * time.Second
	)
	srv := startServer(t, server.Config{StatsInterval: -1, PublishRate: -1, WebRTCUDPAddr: "127.0.0.1:0"})
	relay := newLossyUDPRelay(t, srv.WebRTCUDPAddr(), loss, delay)
	_, serverPort, err := net.SplitHostPort(srv.WebRTCUDPAddr())
	require.NoError(t, err)
	_, relayPort, err := net.SplitHostPort(relay.proxy.LocalAddr().String())
	require.NoError(t, err)
	c := dialRTC(t, srv, "", func(answer string) string {
		return strings.ReplaceAll(answer, " "+serverPort+" typ host", " "+relayPort+" typ host")
	})
	var closed atomic.Bool
	c.pc.OnConnectionStateChange(func(s pionwebrtc.PeerConnectionState) {
		if s == pionwebrtc.PeerConnectionStateFailed || s == pionwebrtc.PeerConnectionStateClosed {
			closed.Store(true)
		}
	})
	dg, st := &lossTopic{name: "loss.datagram"}, &lossTopic{name: "loss.stream"}
	c.send(t, `{"op":"sub","id":1,"topic":"loss.datagram","delivery":"datagram"}`+"\n"+`{"op":"sub","id":2,"topic":"loss.stream"}`)
	for range 2 {
		_, ok := wire.ParseOK([]byte(c.next(t)))
		require.True(t, ok)
	}
	done := make(chan struct{})
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		for {
			var f string
			select {
			case f = <-c.frames:
			case f = <-c.dgrams:
			case <-done:
				return
			}
			var m struct {
				Topic string          `json:"topic"`
				Seq   uint64          `json:"seq"`
				Data  json.RawMessage `json:"data"`
			}
			if json.Unmarshal([]byte(f), &m) != nil || m.Seq == 0 {
				continue // a ping
			}
			msg := sdk.Message{Topic: m.Topic, Seq: m.Seq, Data: m.Data}
			if m.Topic == dg.name {
				dg.handle(msg)
			} else {
				st.handle(msg)
			}
		}
	}()
	res := runLossWorkload(t, srv, dg, st, rate, duration)
	close(done)
	<-dispatched
	require.False(t, closed.Load(), "the peer connection broke")
	res.check(t, relay, loss, delay, rate)
}
