package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/topicast/topicast/sdk/wire"
)

// rtcAnswerer is an in-process WebRTC server that speaks the signalling
// and channel side of the contract, scripted by each test like the
// WebSocket fakeServer: POST /v1/webrtc answers an offer, and each session
// whose "topicast" channel opens is handed to the test.
type rtcAnswerer struct {
	srv      *httptest.Server
	url      string
	api      *webrtc.API
	sessions chan *rtcSession
	posts    atomic.Int64
	infos    atomic.Int64
	// refuse, if set, answers an offer instead (it reports whether it
	// did).
	refuse atomic.Pointer[func(w http.ResponseWriter) bool]
	// deafAnswer makes the answerer close its peer connection before
	// answering: the client's ICE never completes.
	deafAnswer atomic.Bool
	// info is the body of GET /v1/info; empty: 404.
	info atomic.Pointer[string]

	mu  sync.Mutex
	pcs []*webrtc.PeerConnection
	wg  sync.WaitGroup // session readers
}

type answererOptions struct {
	// maxMessage, if set, is the answer's max-message-size.
	maxMessage uint32
}

func newAnswerer(t *testing.T, opts answererOptions) *rtcAnswerer {
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.DetachDataChannels()
	se.EnableDataChannelBlockWrite(true)
	if opts.maxMessage > 0 {
		se.SetSCTPMaxMessageSize(opts.maxMessage)
	}
	a := &rtcAnswerer{
		api: webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(&webrtc.MediaEngine{}),
			webrtc.WithInterceptorRegistry(&interceptor.Registry{})),
		sessions: make(chan *rtcSession, 16),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/webrtc", a.serveOffer)
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, _ *http.Request) {
		a.infos.Add(1)
		info := a.info.Load()
		if info == nil {
			http.NotFound(w, nil)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, *info)
	})
	a.srv = httptest.NewServer(mux)
	a.url = a.srv.URL + rtcPath
	t.Cleanup(a.close)
	return a
}

func (a *rtcAnswerer) close() {
	a.srv.Close()
	a.mu.Lock()
	pcs := a.pcs
	a.mu.Unlock()
	for _, pc := range pcs {
		_ = pc.GracefulClose() // some are closed already
	}
	a.wg.Wait()
}

func (a *rtcAnswerer) serveOffer(w http.ResponseWriter, r *http.Request) {
	a.posts.Add(1)
	if refuse := a.refuse.Load(); refuse != nil && (*refuse)(w) {
		return
	}
	offer, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	pc, err := a.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.mu.Lock()
	a.pcs = append(a.pcs, pc)
	a.mu.Unlock()
	s := &rtcSession{pc: pc, auth: r.Header.Get("Authorization"), frames: make(chan map[string]any, 4096),
		done:    make(chan struct{}),
		dgReady: make(chan struct{})}
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnOpen(func() {
			rw, err := detach(dc)
			if err != nil {
				panic(err)
			}
			switch dc.Label() {
			case rtcChannel:
				s.dc = rw
				a.wg.Add(1)
				go s.read(&a.wg)
				a.sessions <- s
			case rtcDatagramChannel:
				s.dg = rw
				close(s.dgReady)
			}
		})
	})
	err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)})
	var answer webrtc.SessionDescription
	if err == nil {
		answer, err = pc.CreateAnswer(nil)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err == nil {
		err = pc.SetLocalDescription(answer)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	<-gathered
	sdp := pc.LocalDescription().SDP
	if a.deafAnswer.Load() {
		_ = pc.Close() // its ports stop answering
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/v1/webrtc/1")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, sdp)
}

// next returns the next session whose channel opened.
func (a *rtcAnswerer) next(t *testing.T) *rtcSession {
	t.Helper()
	select {
	case s := <-a.sessions:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no webrtc session")
		return nil
	}
}

// rtcSession is the server's side of one client session.
type rtcSession struct {
	pc     *webrtc.PeerConnection
	auth   string
	dc     rtcChannelConn
	frames chan map[string]any // client frames, decoded; closed at the end
	done   chan struct{}       // closed when the client's channel ended

	// sizes are the lengths of the channel messages received.
	mu    sync.Mutex
	sizes []int
	raw   [][]byte

	dg      rtcChannelConn
	dgReady chan struct{}
}

func (s *rtcSession) read(wg *sync.WaitGroup) {
	defer wg.Done()
	defer close(s.done)
	defer close(s.frames)
	buf := make([]byte, 1<<20)
	for {
		n, err := s.dc.Read(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.sizes = append(s.sizes, n)
		s.raw = append(s.raw, bytes.Clone(buf[:n]))
		s.mu.Unlock()
		for line := range strings.SplitSeq(string(buf[:n]), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				panic("client sent a frame that is not JSON: " + line)
			}
			s.frames <- m
		}
	}
}

func (s *rtcSession) send(t *testing.T, frames ...string) {
	t.Helper()
	_, err := s.dc.WriteDataChannel([]byte(strings.Join(frames, "\n")), true)
	require.NoError(t, err)
}

func (s *rtcSession) sendDatagram(t *testing.T, frame string) {
	t.Helper()
	select {
	case <-s.dgReady:
	case <-time.After(5 * time.Second):
		t.Fatal("no datagram channel")
	}
	_, err := s.dg.WriteDataChannel([]byte(frame), true)
	require.NoError(t, err)
}

// closeWith closes the session as the contract says: an error frame
// naming the code, then, once the client has it (its SCTP acknowledged it,
// or it closed already), the peer connection. (Closing a pion peer
// connection aborts its SCTP association: data not acknowledged is lost.)
func (s *rtcSession) closeWith(t *testing.T, code wire.DisconnectCode, reason string) {
	t.Helper()
	s.send(t, fmt.Sprintf(`{"op":"error","code":%q,"message":%q}`, code, reason))
	deadline := time.Now().Add(5 * time.Second)
	for s.dc.(*datachannel.DataChannel).BufferedAmount() > 0 {
		select {
		case <-s.done:
			return
		case <-time.After(time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "the close frame is not acknowledged")
	}
	require.NoError(t, s.pc.Close())
}

// expect returns the next client frame, which must have op.
func (s *rtcSession) expect(t *testing.T, op string) map[string]any {
	t.Helper()
	select {
	case m, ok := <-s.frames:
		require.True(t, ok, "the session ended while waiting for %s", op)
		require.Equal(t, op, m["op"], "frame %v", m)
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s frame", op)
		return nil
	}
}

// ended waits for the client to end the session.
func (s *rtcSession) ended(t *testing.T) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-s.frames:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("the session did not end")
		}
	}
}

// rtcEvents collects a client's events and messages.
type rtcEvents struct {
	mu     sync.Mutex
	events []Event
	msgs   []Message
	wake   chan struct{}
}

func newRTCEvents() *rtcEvents { return &rtcEvents{wake: make(chan struct{}, 1)} }

func (r *rtcEvents) onEvent(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *rtcEvents) handle(m Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *rtcEvents) of(kind EventKind) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, e := range r.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (r *rtcEvents) seqs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, m := range r.msgs {
		out = append(out, m.Seq)
	}
	return out
}

func (r *rtcEvents) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "still waiting for %s", what)
		select {
		case <-r.wake:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (r *rtcEvents) waitEvent(t *testing.T, kind EventKind, n int) Event {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("%d %s events", n, kind), func() bool { return len(r.of(kind)) >= n })
	return r.of(kind)[n-1]
}

// checkLeaks fails t if a goroutine started during the test (pion's, the
// answerer's) is still there once its cleanups ran.
func checkLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func rtcConfig(ev *rtcEvents) Config {
	return Config{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, OnEvent: ev.onEvent}
}

// subscribeOn subscribes to topic, answered by s (head seq 0).
func subscribeOn(t *testing.T, c *Client, s *rtcSession, topic string, h func(Message), opts ...SubOption) map[string]any {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.Subscribe(context.Background(), topic, h, opts...)
		done <- err
	}()
	sub := s.expect(t, "sub")
	s.send(t, fmt.Sprintf(`{"op":"ok","id":%v,"topic":%q,"epoch":"e","seq":0}`, sub["id"], topic))
	require.NoError(t, <-done)
	return sub
}

func TestWebRTCURLs(t *testing.T) {
	for raw, want := range map[string]string{
		"http://127.0.0.1:8080/v1/webrtc":         "webrtc",
		"https://example.com/v1/webrtc":           "webrtc",
		"https://example.com/prefix/v1/webrtc/":   "webrtc",
		"http://127.0.0.1:8080/v1/webrtc?token=x": "webrtc",
		"https://127.0.0.1:4433/wt":               "webtransport",
		"ws://127.0.0.1:8080/ws":                  "websocket",
		"http://127.0.0.1:8080/ws":                "unsupported",
		"http://127.0.0.1:8080/v1/webrtcx":        "unsupported",
	} {
		cfg := Config{}.withDefaults()
		c := &Client{ws: newWSDialer(&cfg), wt: newWTDialer(&cfg), rtc: newRTCDialer(&cfg)}
		d, err := c.dialerFor(raw)
		got := "unsupported"
		switch d.(type) {
		case *rtcDialer:
			got = "webrtc"
		case *wtDialer:
			got = "webtransport"
		case *wsDialer:
			got = "websocket"
		}
		require.Equal(t, want, got, raw)
		if want == "unsupported" {
			require.ErrorIs(t, err, ErrUnsupportedURL)
			require.ErrorIs(t, checkURL(raw), ErrUnsupportedURL)
		} else {
			require.NoError(t, checkURL(raw))
		}
	}
}

// TestWebRTCFrames: the offer carries the token and both channels; frames
// go both ways, several in one channel message or one per message; Close
// ends the session.
func TestWebRTCFrames(t *testing.T) {
	checkLeaks(t)
	a := newAnswerer(t, answererOptions{})
	ev := newRTCEvents()
	cfg := rtcConfig(ev)
	cfg.Token = func(context.Context) (string, error) { return "tok", nil }
	c, err := Dial(context.Background(), a.url, cfg)
	require.NoError(t, err)
	s := a.next(t)
	require.Equal(t, "Bearer tok", s.auth)
	hello := s.expect(t, "hello")
	require.Equal(t, "tok", hello["token"])
	s.send(t, fmt.Sprintf(`{"op":"ok","id":%v}`, hello["id"]))
	require.Equal(t, a.url, ev.waitEvent(t, EventConnected, 1).URL)

	subscribeOn(t, c, s, "scores", ev.handle)
	msg := func(seq int) string {
		return fmt.Sprintf(`{"op":"msg","topic":"scores","epoch":"e","seq":%d,"ts":1,"data":{"n":%d}}`, seq, seq)
	}
	s.send(t, msg(1), msg(2), msg(3))
	s.send(t, msg(4))
	s.send(t, msg(5)+"\n") // an empty line is ignored
	ev.waitFor(t, "5 messages", func() bool { return len(ev.seqs()) == 5 })
	require.Equal(t, []uint64{1, 2, 3, 4, 5}, ev.seqs())

	pubDone := make(chan error, 1)
	go func() {
		res, err := c.Publish(context.Background(), "chat", map[string]string{"hi": "there"})
		if err == nil && res.Seq != 12 {
			err = fmt.Errorf("seq %d", res.Seq)
		}
		pubDone <- err
	}()
	pub := s.expect(t, "pub")
	require.Equal(t, map[string]any{"hi": "there"}, pub["data"])
	s.send(t, fmt.Sprintf(`{"op":"ok","id":%v,"topic":"chat","epoch":"e","seq":12}`, pub["id"]))
	require.NoError(t, <-pubDone)

	// The server's pings are answered.
	s.send(t, `{"op":"ping"}`)
	s.expect(t, "pong")

	require.NoError(t, c.Close())
	s.ended(t)
	require.Empty(t, ev.of(EventError))
	require.Equal(t, int64(1), a.posts.Load())
}

// TestWebRTCCloseFrames: an error frame naming a close code, then the end
// of the peer connection, is a *CloseError, which decides whether the
// client reconnects exactly as a WebSocket close does; the end of the
// peer connection without one is an abnormal close.
func TestWebRTCCloseFrames(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		code      wire.DisconnectCode // 0: no close frame
		reconnect bool
	}{
		{wire.CloseGoingAway, true},
		{wire.CloseSlowConsumer, true},
		{wire.CloseRateLimited, true}, // also an error code
		{wire.CloseNormal, true},
		{0, true},
		{wire.CloseUnauthorized, false}, // also an error code
		{wire.CloseTooLarge, false},     // also an error code
		{wire.CloseProtocolError, false},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			a := newAnswerer(t, answererOptions{})
			ev := newRTCEvents()
			c, err := Dial(context.Background(), a.url, rtcConfig(ev))
			require.NoError(t, err)
			defer func() { require.NoError(t, c.Close()) }()
			s := a.next(t)
			subscribeOn(t, c, s, "scores", ev.handle)
			s.send(t, `{"op":"msg","topic":"scores","epoch":"e","seq":1,"ts":1,"data":1}`)
			ev.waitFor(t, "a message", func() bool { return len(ev.seqs()) == 1 })

			if tc.code == 0 {
				require.NoError(t, s.pc.Close())
			} else {
				s.closeWith(t, tc.code, "test")
			}
			if !tc.reconnect {
				e := ev.waitEvent(t, EventClosed, 1)
				var ce *CloseError
				require.ErrorAs(t, e.Err, &ce)
				require.Equal(t, tc.code, ce.Code)
				require.Equal(t, "test", ce.Reason)
				<-c.Done()
				require.ErrorAs(t, c.Err(), &ce)
				require.Empty(t, ev.of(EventError), "the close frame is no error event")
				return
			}
			e := ev.waitEvent(t, EventDisconnected, 1)
			var ce *CloseError
			if tc.code == 0 {
				require.False(t, errors.As(e.Err, &ce), "%v", e.Err)
				require.ErrorIs(t, e.Err, net.ErrClosed)
				require.ErrorContains(t, e.Err, "without a close frame")
			} else {
				require.ErrorAs(t, e.Err, &ce)
				require.Equal(t, tc.code, ce.Code)
			}
			// The client recovers from where it stopped.
			s2 := a.next(t)
			sub := s2.expect(t, "sub")
			require.Equal(t, map[string]any{"epoch": "e", "seq": float64(1)}, sub["since"])
			s2.send(t, fmt.Sprintf(`{"op":"ok","id":%v,"topic":"scores","epoch":"e","seq":2,"recovered":true}`, sub["id"]),
				`{"op":"msg","topic":"scores","epoch":"e","seq":2,"ts":1,"data":2}`)
			ev.waitFor(t, "the recovered message", func() bool { return len(ev.seqs()) == 2 })
			require.Equal(t, []uint64{1, 2}, ev.seqs())
			require.Empty(t, ev.of(EventError), "the close frame is no error event")
		})
	}
}

// TestWebRTCErrorFrameNotClose: an error frame without id whose code is
// also a close name is an ordinary error when no close follows: at once
// when more data comes, after rtcCloseFollowWait otherwise.
func TestWebRTCErrorFrameNotClose(t *testing.T) {
	checkLeaks(t)
	a := newAnswerer(t, answererOptions{})
	ev := newRTCEvents()
	c, err := Dial(context.Background(), a.url, rtcConfig(ev))
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	s := a.next(t)

	s.send(t, `{"op":"error","code":"unauthorized","message":"bad refresh"}`)
	s.send(t, `{"op":"ping"}`)
	s.expect(t, "pong")
	e := ev.waitEvent(t, EventError, 1)
	var we *wire.Error
	require.ErrorAs(t, e.Err, &we)
	require.Equal(t, wire.CodeUnauthorized, we.Code)

	start := time.Now()
	s.send(t, `{"op":"ping"}`, `{"op":"error","code":"rate_limited","message":"slow down"}`)
	s.expect(t, "pong")
	e = ev.waitEvent(t, EventError, 2)
	require.ErrorAs(t, e.Err, &we)
	require.Equal(t, wire.CodeRateLimited, we.Code)
	require.GreaterOrEqual(t, time.Since(start), rtcCloseFollowWait)

	// The connection is still up.
	s.send(t, `{"op":"ping"}`)
	s.expect(t, "pong")
	require.Empty(t, ev.of(EventDisconnected))
}

// TestWebRTCDatagrams: a datagram subscription gets msg frames from the
// datagram channel, never older than what it has, and larger ones from the
// reliable channel.
func TestWebRTCDatagrams(t *testing.T) {
	checkLeaks(t)
	a := newAnswerer(t, answererOptions{})
	ev := newRTCEvents()
	c, err := Dial(context.Background(), a.url, rtcConfig(ev))
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	s := a.next(t)
	sub := subscribeOn(t, c, s, "pos", ev.handle, Datagram())
	require.Equal(t, "datagram", sub["delivery"])

	msg := func(seq int) string {
		return fmt.Sprintf(`{"op":"msg","topic":"pos","epoch":"e","seq":%d,"ts":1,"data":%d}`, seq, seq)
	}
	last := func() uint64 {
		seqs := ev.seqs()
		if len(seqs) == 0 {
			return 0
		}
		return seqs[len(seqs)-1]
	}
	s.sendDatagram(t, msg(2))
	ev.waitFor(t, "seq 2", func() bool { return last() == 2 })
	s.sendDatagram(t, msg(1)) // older: dropped
	s.sendDatagram(t, msg(2)) // a repeat: dropped
	s.sendDatagram(t, msg(3))
	ev.waitFor(t, "seq 3", func() bool { return last() == 3 })
	s.send(t, msg(5)) // too large for a datagram, say
	ev.waitFor(t, "seq 5", func() bool { return last() == 5 })
	s.sendDatagram(t, msg(4)) // late
	s.sendDatagram(t, msg(6))
	ev.waitFor(t, "seq 6", func() bool { return last() == 6 })
	require.Equal(t, []uint64{2, 3, 5, 6}, ev.seqs())
}

// TestWebRTCMessageSizes: writes respect the server's max-message-size,
// split between frames; a frame over it fails the write; reads take
// messages larger than the first buffer, up to MaxReadBytes.
func TestWebRTCMessageSizes(t *testing.T) {
	checkLeaks(t)
	const maxMessage = 1000
	a := newAnswerer(t, answererOptions{maxMessage: maxMessage})
	cfg := Config{MaxReadBytes: 200 << 10}.withDefaults()
	d := newRTCDialer(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tc, err := d.dial(ctx, a.url, "")
	require.NoError(t, err)
	defer tc.abort()
	require.Equal(t, maxMessage, tc.(*rtcConn).maxWrite)
	s := a.next(t)

	frame := func(n int) []byte {
		return fmt.Appendf(nil, `{"op":"ping","pad":%q}`, strings.Repeat("x", n-len(`{"op":"ping","pad":""}`)))
	}
	frames := [][]byte{frame(400), frame(400), frame(400), frame(999), frame(1000), frame(30), frame(30)}
	require.NoError(t, tc.writeFrames(frames))
	for range frames {
		s.expect(t, "ping")
	}
	s.mu.Lock()
	require.Equal(t, []int{801, 400, 999, 1000, 61}, s.sizes)
	s.mu.Unlock()
	err = tc.writeFrames([][]byte{frame(30), frame(1001)})
	require.ErrorContains(t, err, "over the webrtc channel's largest message (1000 bytes)")

	// Reads.
	big := `{"op":"ping","pad":"` + strings.Repeat("y", 100<<10) + `"}`
	s.send(t, big)
	got, err := tc.readFrames()
	require.NoError(t, err)
	require.Equal(t, big, string(got))
	s.send(t, big, big)
	_, err = tc.readFrames()
	require.ErrorIs(t, err, ErrMessageTooLarge)
}

// TestWebRTCRefusals: the server's error answers to the offer are
// *wire.Error, and those after which a WebSocket session would have been
// closed for good also carry that *CloseError: the client does not try
// again after them, and does after the others.
func TestWebRTCRefusals(t *testing.T) {
	checkLeaks(t)
	jsonError := func(status int, code, msg string) func(w http.ResponseWriter) bool {
		return func(w http.ResponseWriter) bool {
			w.Header().Set("Content-Type", "application/json")
			if status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
			return true
		}
	}
	a := newAnswerer(t, answererOptions{})
	for _, tc := range []struct {
		refuse func(w http.ResponseWriter) bool
		code   wire.ErrorCode
		close  wire.DisconnectCode
		text   string
	}{
		{refuse: jsonError(401, "unauthorized", "token expired"), code: wire.CodeUnauthorized, close: wire.CloseUnauthorized},
		{refuse: jsonError(400, "bad_request", "no topicast channel"), code: wire.CodeBadRequest, close: wire.CloseProtocolError},
		{refuse: jsonError(413, "too_large", "offer over 64 KiB"), code: wire.CodeTooLarge, close: wire.CloseTooLarge},
		{refuse: jsonError(403, "forbidden", "origin"), code: wire.CodeForbidden},
		{refuse: jsonError(503, "unavailable", "full"), code: wire.CodeUnavailable},
		{refuse: func(w http.ResponseWriter) bool { http.NotFound(w, nil); return true }, code: wire.CodeInternal, text: "404 Not Found"},
		{refuse: func(w http.ResponseWriter) bool {
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "v=0")
			return true
		}, text: "not application/sdp"},
		{refuse: func(w http.ResponseWriter) bool {
			w.Header().Set("Content-Type", "application/sdp")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "hello")
			return true
		}, text: "the server's answer"},
	} {
		a.refuse.Store(&tc.refuse)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := Dial(ctx, a.url, Config{})
		cancel()
		require.Error(t, err)
		if tc.text != "" {
			require.ErrorContains(t, err, tc.text)
		}
		var we *wire.Error
		if tc.code != 0 {
			require.ErrorAs(t, err, &we, "%v", err)
			require.Equal(t, tc.code, we.Code, "%v", err)
		}
		var ce *CloseError
		if tc.close != 0 {
			require.ErrorAs(t, err, &ce, "%v", err)
			require.Equal(t, tc.close, ce.Code)
			require.Equal(t, we.Message, ce.Reason)
		} else {
			require.False(t, errors.As(err, &ce), "%v", err)
		}
	}

	// A refusal that allows trying again: the client does, until one is
	// accepted.
	a.refuse.Store(nil)
	ev := newRTCEvents()
	c, err := Dial(context.Background(), a.url, rtcConfig(ev))
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	s := a.next(t)
	var refused atomic.Int64
	unavailable := jsonError(503, "unavailable", "full")
	refuse := func(w http.ResponseWriter) bool { return refused.Add(1) <= 3 && unavailable(w) }
	a.refuse.Store(&refuse)
	posts := a.posts.Load()
	require.NoError(t, s.pc.Close())
	s = a.next(t)
	require.Equal(t, posts+4, a.posts.Load())
	ev.waitEvent(t, EventConnected, 2)

	// A refusal that forbids it: the client stops, as after a 4001 close.
	unauthorized := jsonError(401, "unauthorized", "token expired")
	a.refuse.Store(&unauthorized)
	posts = a.posts.Load()
	require.NoError(t, s.pc.Close())
	e := ev.waitEvent(t, EventClosed, 1)
	var ce *CloseError
	require.ErrorAs(t, e.Err, &ce)
	require.Equal(t, wire.CloseUnauthorized, ce.Code)
	require.Equal(t, "token expired", ce.Reason)
	<-c.Done()
	require.Equal(t, ce, c.Err())
	require.Equal(t, posts+1, a.posts.Load())
}

// TestWebRTCDialTimeout: when ICE never completes, the dial fails within
// DialTimeout, and nothing of pion is left behind.
func TestWebRTCDialTimeout(t *testing.T) {
	checkLeaks(t)
	a := newAnswerer(t, answererOptions{})
	a.deafAnswer.Store(true)
	start := time.Now()
	_, err := Dial(context.Background(), a.url, Config{DialTimeout: time.Second})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "wait for the topicast channel")
	require.Less(t, time.Since(start), 3*time.Second)
}

// TestWebRTCICEServers: Config.ICEServers wins; without them the server's
// info lists them, asked once per server.
func TestWebRTCICEServers(t *testing.T) {
	checkLeaks(t)
	a := newAnswerer(t, answererOptions{})
	bogus := `{"webrtc":{"url":"x","iceServers":["bogus:example.com"]}}`
	a.info.Store(&bogus)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Dial(ctx, a.url, Config{})
	require.ErrorContains(t, err, "bogus:example.com")
	require.Equal(t, int64(1), a.infos.Load())

	_, err = Dial(ctx, a.url, Config{ICEServers: []string{"bogus:configured"}})
	require.ErrorContains(t, err, "bogus:configured")
	require.Equal(t, int64(1), a.infos.Load())

	none := `{"webrtc":{"url":"x","iceServers":[]}}`
	a.info.Store(&none)
	ev := newRTCEvents()
	c, err := Dial(ctx, a.url, rtcConfig(ev))
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	require.NoError(t, a.next(t).pc.Close())
	a.next(t)
	require.Equal(t, int64(2), a.infos.Load(), "asked once per client")

	// A server without info: host candidates only.
	a.info.Store(nil)
	c2, err := Dial(ctx, a.url, Config{})
	require.NoError(t, err)
	a.next(t)
	require.NoError(t, c2.Close())
}
