package webrtc

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// echo is the Accept of the tests: it answers each frame with itself, and
// keeps the sessions so tests can write to and close them.
type echo struct {
	mu       sync.Mutex
	sessions []transport.Session
	closed   chan error
}

func newEcho() *echo { return &echo{closed: make(chan error, 16)} }

func (e *echo) accept(s transport.Session) transport.Handler {
	e.mu.Lock()
	e.sessions = append(e.sessions, s)
	e.mu.Unlock()
	return echoHandler{e, s}
}

func (e *echo) session(t *testing.T) transport.Session {
	t.Helper()
	var s transport.Session
	require.Eventually(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(e.sessions) > 0 {
			s = e.sessions[len(e.sessions)-1]
		}
		return s != nil
	}, 5*time.Second, 5*time.Millisecond)
	return s
}

type echoHandler struct {
	e *echo
	s transport.Session
}

func (h echoHandler) HandleFrame(f []byte)   { _ = h.s.Write(bytes.Clone(f)) }
func (h echoHandler) HandleClosed(err error) { h.e.closed <- err }

// startServer starts a Server on a free UDP port behind an HTTP test
// server, both closed at the end of the test.
func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	cfg.UDPAddr = "127.0.0.1:0"
	s, err := New(cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		hs.Close()
		require.NoError(t, s.Close())
	})
	return s, hs.URL + Path
}

// client is a pion peer connection speaking the protocol's client side.
type client struct {
	pc      *webrtc.PeerConnection
	main    *webrtc.DataChannel
	dg      *webrtc.DataChannel
	frames  chan string
	dgrams  chan string
	open    chan struct{}
	stateCh chan webrtc.PeerConnectionState
}

type clientOptions struct {
	noDatagram bool
	unordered  bool
	header     http.Header
	noAnswer   bool // never apply the answer: ICE cannot complete
	// editAnswer, if set, changes the answer before it is applied.
	editAnswer func(string) string
}

func newClient(t *testing.T) (*webrtc.PeerConnection, *webrtc.API) {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	return pc, api
}

// offer makes the client's offer, with gathering complete.
func (c *client) offer(t *testing.T) string {
	t.Helper()
	o, err := c.pc.CreateOffer(nil)
	require.NoError(t, err)
	done := webrtc.GatheringCompletePromise(c.pc)
	require.NoError(t, c.pc.SetLocalDescription(o))
	<-done
	return c.pc.LocalDescription().SDP
}

func post(t *testing.T, url, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/sdp")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return resp, string(b)
}

// dial connects a client to url and waits for "topicast" to open.
func dial(t *testing.T, url string, opts clientOptions) *client {
	t.Helper()
	pc, _ := newClient(t)
	c := &client{pc: pc, frames: make(chan string, 1024), dgrams: make(chan string, 1024),
		open: make(chan struct{}), stateCh: make(chan webrtc.PeerConnectionState, 16)}
	t.Cleanup(func() { _ = pc.Close() })
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		select {
		case c.stateCh <- s:
		default:
		}
	})
	init := &webrtc.DataChannelInit{}
	if opts.unordered {
		f, z := false, uint16(0)
		init.Ordered, init.MaxRetransmits = &f, &z
	}
	main, err := pc.CreateDataChannel(ChannelLabel, init)
	require.NoError(t, err)
	c.main = main
	main.OnOpen(func() { close(c.open) })
	main.OnMessage(func(m webrtc.DataChannelMessage) {
		for f := range strings.SplitSeq(string(m.Data), "\n") {
			c.frames <- f
		}
	})
	if !opts.noDatagram {
		f, z := false, uint16(0)
		dg, err := pc.CreateDataChannel(DatagramChannelLabel, &webrtc.DataChannelInit{Ordered: &f, MaxRetransmits: &z})
		require.NoError(t, err)
		c.dg = dg
		dg.OnMessage(func(m webrtc.DataChannelMessage) { c.dgrams <- string(m.Data) })
	}
	resp, answer := post(t, url, c.offer(t), opts.header)
	require.Equal(t, http.StatusCreated, resp.StatusCode, answer)
	require.Equal(t, "application/sdp", resp.Header.Get("Content-Type"))
	if opts.noAnswer {
		return c
	}
	if opts.editAnswer != nil {
		answer = opts.editAnswer(answer)
	}
	require.NoError(t, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}))
	select {
	case <-c.open:
	case <-time.After(10 * time.Second):
		t.Fatal("the topicast channel did not open")
	}
	return c
}

func (c *client) next(t *testing.T) string {
	t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame in 5 s")
		return ""
	}
}

// waitState waits for the client's peer connection to reach one of states.
func (c *client) waitState(t *testing.T, states ...webrtc.PeerConnectionState) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case s := <-c.stateCh:
			for _, want := range states {
				if s == want {
					return
				}
			}
		case <-deadline:
			t.Fatalf("the peer connection did not reach %v", states)
		}
	}
}

func TestFramesBothWays(t *testing.T) {
	e := newEcho()
	_, url := startServer(t, Config{Accept: e.accept})
	c := dial(t, url, clientOptions{})
	require.NoError(t, c.main.SendText("{\"op\":\"ping\"}\n{\"op\":\"pong\"}\n\n"))
	require.Equal(t, `{"op":"ping"}`, c.next(t))
	require.Equal(t, `{"op":"pong"}`, c.next(t))

	s := e.session(t)
	require.Equal(t, "webrtc", s.Info().Transport)
	require.True(t, strings.HasPrefix(s.Info().ID, "rtc-"))
	// Many frames written at once arrive whole and in order, joined into
	// as few messages as the client's max-message-size allows.
	frames := make([][]byte, 2000)
	for i := range frames {
		frames[i] = fmt.Appendf(nil, `{"op":"msg","n":%d,"pad":"%s"}`, i, strings.Repeat("x", 100))
	}
	require.NoError(t, s.WriteMany(frames))
	for i := range frames {
		require.Equal(t, string(frames[i]), c.next(t))
	}
}

func TestDatagrams(t *testing.T) {
	e := newEcho()
	_, url := startServer(t, Config{Accept: e.accept})
	c := dial(t, url, clientOptions{})
	s := e.session(t).(transport.DatagramSession)
	// The datagram channel opens after "topicast": until then datagrams
	// go over the stream.
	require.Eventually(t, func() bool {
		sent, err := s.WriteDatagram([]byte(`{"op":"msg","seq":1}`))
		require.NoError(t, err)
		return sent
	}, 5*time.Second, 10*time.Millisecond)
	select {
	case d := <-c.dgrams:
		require.Equal(t, `{"op":"msg","seq":1}`, d)
	case <-time.After(5 * time.Second):
		t.Fatal("no datagram")
	}
	big := []byte(`{"op":"msg","data":"` + strings.Repeat("y", MaxDatagramSize) + `"}`)
	sent, err := s.WriteDatagram(big)
	require.NoError(t, err)
	require.False(t, sent, "a frame over MaxDatagramSize goes over the stream")

	// Without the datagram channel, datagrams are never sent.
	c2 := dial(t, url, clientOptions{noDatagram: true})
	_ = c2
	s2 := e.session(t).(transport.DatagramSession)
	time.Sleep(100 * time.Millisecond)
	sent, err = s2.WriteDatagram([]byte(`{"op":"msg","seq":1}`))
	require.NoError(t, err)
	require.False(t, sent)
}

func TestServerCloseSendsCloseFrame(t *testing.T) {
	e := newEcho()
	_, url := startServer(t, Config{Accept: e.accept})
	c := dial(t, url, clientOptions{})
	s := e.session(t)
	require.NoError(t, s.Write([]byte(`{"op":"msg","seq":1}`)))
	s.Close(transport.DisconnectSlow)
	// A slow-consumer close drops what is queued; the close frame comes.
	for {
		f := c.next(t)
		if code, reason, ok := wire.ParseCloseFrame([]byte(f)); ok {
			require.Equal(t, wire.CloseSlowConsumer, code)
			require.Equal(t, transport.DisconnectSlow.Reason, reason)
			break
		}
	}
	c.waitState(t, webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected)
	select {
	case err := <-e.closed:
		d, ok := transport.AsDisconnect(err)
		require.True(t, ok, "%v", err)
		require.Equal(t, wire.CloseSlowConsumer, d.Code)
	case <-time.After(5 * time.Second):
		t.Fatal("HandleClosed was not called")
	}
}

func TestClientCloseEndsSession(t *testing.T) {
	e := newEcho()
	srv, url := startServer(t, Config{Accept: e.accept})
	c := dial(t, url, clientOptions{})
	e.session(t)
	require.Equal(t, 1, srv.Sessions())
	require.NoError(t, c.pc.Close())
	select {
	case <-e.closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the session did not end when the client closed its peer connection")
	}
	require.Eventually(t, func() bool { return srv.Sessions() == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestShutdownClosesWithGoingAway(t *testing.T) {
	e := newEcho()
	srv, err := New(Config{Accept: e.accept, UDPAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := dial(t, hs.URL+Path, clientOptions{})
	e.session(t)
	require.NoError(t, srv.Close())
	for {
		f := c.next(t)
		if code, _, ok := wire.ParseCloseFrame([]byte(f)); ok {
			require.Equal(t, wire.CloseGoingAway, code)
			break
		}
	}
	pc, _ := newClient(t)
	defer pc.Close() //nolint:errcheck
	_, err = pc.CreateDataChannel(ChannelLabel, nil)
	require.NoError(t, err)
	resp, body := post(t, hs.URL+Path, (&client{pc: pc}).offer(t), nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
}

func TestUnorderedMainChannelRefused(t *testing.T) {
	e := newEcho()
	_, url := startServer(t, Config{Accept: e.accept})
	c := dial(t, url, clientOptions{unordered: true})
	code, reason, ok := wire.ParseCloseFrame([]byte(c.next(t)))
	require.True(t, ok)
	require.Equal(t, wire.CloseProtocolError, code)
	require.Contains(t, reason, "ordered and reliable")
}

func TestTooLargeFrameCloses(t *testing.T) {
	e := newEcho()
	_, url := startServer(t, Config{Accept: e.accept, MaxMessage: 1000})
	// An honest client keeps to the max-message-size of the answer; this
	// one is told a larger one.
	c := dial(t, url, clientOptions{editAnswer: func(a string) string {
		return strings.Replace(a, fmt.Sprintf("a=max-message-size:%d", 1000+frameSlack), "a=max-message-size:1000000", 1)
	}})
	require.NoError(t, c.main.SendText(`{"op":"pub","data":"`+strings.Repeat("z", 1000+frameSlack)+`"}`))
	code, _, ok := wire.ParseCloseFrame([]byte(c.next(t)))
	require.True(t, ok)
	require.Equal(t, wire.CloseTooLarge, code)
}

func TestConnectTimeoutForgetsPeer(t *testing.T) {
	e := newEcho()
	srv, url := startServer(t, Config{Accept: e.accept, ConnectTimeout: 300 * time.Millisecond})
	dial(t, url, clientOptions{noAnswer: true})
	require.Equal(t, 1, srv.Pending())
	require.Eventually(t, func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.peers) == 0 && srv.Pending() == 0
	}, 5*time.Second, 10*time.Millisecond)
}

func TestBadOffers(t *testing.T) {
	e := newEcho()
	_, url := startServer(t, Config{Accept: e.accept})
	pc, _ := newClient(t)
	defer pc.Close() //nolint:errcheck
	_, err := pc.CreateDataChannel(ChannelLabel, nil)
	require.NoError(t, err)
	c := &client{pc: pc}
	good := c.offer(t)

	audio, _ := newClient(t)
	defer audio.Close() //nolint:errcheck
	_, err = audio.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio)
	require.NoError(t, err)
	_, err = audio.CreateDataChannel(ChannelLabel, nil)
	require.NoError(t, err)
	audioOffer := (&client{pc: audio}).offer(t)

	noData := strings.Split(good, "m=application")[0]

	for _, tc := range []struct {
		name, body, contentType string
		status                  int
		code                    string
	}{
		{"not SDP", "hello", "application/sdp", 400, "bad_request"},
		{"JSON", `{"sdp":"v=0"}`, "application/json", 400, "bad_request"},
		{"no data channel section", noData, "application/sdp", 400, "bad_request"},
		{"media section", audioOffer, "application/sdp", 400, "bad_request"},
		{"over 64 KiB", good + strings.Repeat("a=x-pad:"+strings.Repeat("p", 100)+"\r\n", 700), "application/sdp", 413, "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", tc.contentType)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode, string(b))
			require.Contains(t, string(b), `"code":"`+tc.code+`"`)
		})
	}
}

func TestAdmission(t *testing.T) {
	e := newEcho()
	conns := 0
	var mu sync.Mutex
	_, url := startServer(t, Config{
		Accept:         e.accept,
		TokensRequired: true,
		Authorize: func(r *http.Request) error {
			if transport.RequestToken(r) != "good" {
				return wire.Errorf(wire.CodeUnauthorized, "bad token")
			}
			return nil
		},
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "http://ok.example" },
		MaxConns:    1,
		Conns: func() int {
			mu.Lock()
			defer mu.Unlock()
			return conns
		},
	})
	pc, _ := newClient(t)
	defer pc.Close() //nolint:errcheck
	_, err := pc.CreateDataChannel(ChannelLabel, nil)
	require.NoError(t, err)
	offer := (&client{pc: pc}).offer(t)

	resp, body := post(t, url, offer, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no token: %s", body)
	resp, body = post(t, url, offer, http.Header{"Authorization": {"Bearer bad"}})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, body)
	resp, body = post(t, url, offer, http.Header{"Authorization": {"Bearer good"}, "Origin": {"http://evil.example"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)

	mu.Lock()
	conns = 1
	mu.Unlock()
	resp, body = post(t, url+"?token=good", offer, nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	require.Contains(t, body, `"code":"unavailable"`)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))

	mu.Lock()
	conns = 0
	mu.Unlock()
	c := dial(t, url+"?token=good", clientOptions{})
	require.Equal(t, "good", e.session(t).Info().Token)
	_ = c
}

func TestConfigErrors(t *testing.T) {
	accept := newEcho().accept
	for _, cfg := range []Config{
		{},
		{Accept: accept, ICEServers: []string{"http://not-stun"}},
		{Accept: accept, PublicIPs: []string{"not-an-ip"}},
		{Accept: accept, UDPAddr: "nonsense"},
	} {
		_, err := New(cfg)
		require.Error(t, err, "%+v", cfg)
	}
	s, err := New(Config{Accept: accept, UDPAddr: "127.0.0.1:0", ICEServers: []string{"stun:stun.example:3478"},
		PublicIPs: []string{"203.0.113.7"}})
	require.NoError(t, err)
	require.Equal(t, []string{"stun:stun.example:3478"}, s.ICEServers())
	require.NoError(t, s.Close())
}

// TestPublicIPInAnswer checks the answer names the public address instead
// of the host's.
func TestPublicIPInAnswer(t *testing.T) {
	_, url := startServer(t, Config{Accept: newEcho().accept, PublicIPs: []string{"203.0.113.7"}, ConnectTimeout: 200 * time.Millisecond})
	pc, _ := newClient(t)
	defer pc.Close() //nolint:errcheck
	_, err := pc.CreateDataChannel(ChannelLabel, nil)
	require.NoError(t, err)
	resp, answer := post(t, url, (&client{pc: pc}).offer(t), nil)
	require.Equal(t, http.StatusCreated, resp.StatusCode, answer)
	require.Contains(t, answer, "203.0.113.7")
	require.NotContains(t, answer, " 127.0.0.1 ")
}
