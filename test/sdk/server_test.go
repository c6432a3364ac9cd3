package sdktest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/httpapi"
	"github.com/topicast/topicast/transport/webrtc"
	"github.com/topicast/topicast/transport/websocket"
	"github.com/topicast/topicast/transport/webtransport"
)

// apiKey guards the shared server's publish endpoint.
const apiKey = "test-key"

// srv is the server most tests share: starting a node takes about a second
// and closing it two (protoactor sleeps). Tests use topics of their own.
var srv *testServer

func TestMain(m *testing.M) {
	var err error
	srv, err = startServer(serverOptions{
		// The tests break connections while publishing fast: a long
		// history keeps recovery about the SDK, not about history size.
		historySize: 50000,
		apiKeys:     []string{apiKey},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the test server:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := srv.close(); err != nil {
		fmt.Fprintln(os.Stderr, "close the test server:", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(testutil.LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type serverOptions struct {
	historySize int
	apiKeys     []string
	maxQueue    int
}

// testServer is an in-process topicast node wired like `topicast serve`,
// with hooks to break its clients' connections.
type testServer struct {
	URL   string // http://127.0.0.1:port
	WSURL string // ws://127.0.0.1:port/ws
	// WTURL is the WebTransport endpoint, https://127.0.0.1:port/wt, and
	// CertHash the SHA-256 of its development certificate.
	WTURL    string
	CertHash string
	// RTCURL is the WebRTC signalling endpoint, http://127.0.0.1:port/v1/webrtc.
	RTCURL string

	node   *cluster.Node
	ka     *transport.Keepalive
	wt     *webtransport.Server
	rtc    *webrtc.Server
	ws     *websocket.Handler
	http   *http.Server
	ln     *trackingListener
	served chan error

	// publishHook, if set, serves POST /v1/publish instead of the API
	// (next is the real one).
	publishHook atomic.Pointer[func(next http.Handler, w http.ResponseWriter, r *http.Request)]

	accepted atomic.Int64
	mu       sync.Mutex
	sessions map[transport.Session]struct{} // live WebSocket sessions
}

func startServer(opts serverOptions) (*testServer, error) {
	cfg := cluster.Config{}
	cfg.Topic.HistorySize = opts.historySize
	// room.* has presence (PROTOCOL.md 1.1), which is off elsewhere.
	cfg.Topic.Namespaces = actors.Namespaces{{Pattern: "room.*", Presence: true, JoinLeave: true}}
	node, err := cluster.New(cfg)
	if err != nil {
		return nil, err
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if err := node.Start(context.Background()); err != nil {
		_ = inner.Close() // the start error is the one to report
		return nil, err
	}
	ts := &testServer{
		node:     node,
		ka:       transport.NewKeepalive(transport.KeepaliveConfig{}),
		ln:       &trackingListener{Listener: inner, conns: make(map[string]net.Conn)},
		served:   make(chan error, 1),
		sessions: make(map[transport.Session]struct{}),
	}
	addr := inner.Addr().String()
	ts.URL, ts.WSURL = "http://"+addr, "ws://"+addr+"/ws"
	ts.wt, err = webtransport.New(webtransport.Config{
		Addr:            "127.0.0.1:0",
		Accept:          ts.accept,
		MaxPendingBytes: opts.maxQueue,
		Keepalive:       ts.ka,
		NodeState:       node.NodeState(),
	})
	if err == nil {
		err = ts.wt.Start(context.Background())
	}
	if err != nil {
		_ = inner.Close()                    // the start error is the one to report
		_ = node.Close(context.Background()) // likewise
		return nil, err
	}
	ts.WTURL, ts.CertHash = ts.wt.URL(), ts.wt.CertHash()
	ts.rtc, err = webrtc.New(webrtc.Config{
		UDPAddr:         "127.0.0.1:0",
		Accept:          ts.accept,
		MaxPendingBytes: opts.maxQueue,
		Keepalive:       ts.ka,
		NodeState:       node.NodeState(),
	})
	if err != nil {
		_ = inner.Close()                    // the start error is the one to report
		_ = ts.wt.Close()                    // likewise
		_ = node.Close(context.Background()) // likewise
		return nil, err
	}
	ts.RTCURL = ts.URL + webrtc.Path

	mux := http.NewServeMux()
	ts.ws = websocket.NewHandler(websocket.Config{
		Accept:          ts.accept,
		MaxPendingBytes: opts.maxQueue,
		Keepalive:       ts.ka,
		NodeState:       node.NodeState(),
	})
	mux.Handle("GET /ws", ts.ws)
	mux.Handle("POST "+webrtc.Path, ts.rtc)
	// GET /v1/info as internal/server answers it, for WebRTC's ICE servers.
	info := map[string]any{"webrtc": map[string]any{"url": webrtc.Path, "iceServers": ts.rtc.ICEServers()}}
	api := httpapi.New(httpapi.Config{Backend: node, Info: func() any { return info }, APIKeys: opts.apiKeys,
		NodeState: node.NodeState()})
	api.Register(mux)
	ts.http = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hook := ts.publishHook.Load(); hook != nil && r.URL.Path == "/v1/publish" {
				(*hook)(mux, w, r)
				return
			}
			mux.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { ts.served <- ts.http.Serve(ts.ln) }()
	return ts, nil
}

func (ts *testServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- ts.http.Shutdown(ctx) }()
	errs := []error{ts.node.Close(ctx), ts.wt.Close(), ts.rtc.Close()}
	ts.ka.Close()
	errs = append(errs, <-shut)
	if err := <-ts.served; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	errs = append(errs, ts.ws.Close())
	return errors.Join(errs...)
}

// accept keeps track of the live sessions, then hands them to the node.
func (ts *testServer) accept(s transport.Session) transport.Handler {
	ts.accepted.Add(1)
	ts.mu.Lock()
	ts.sessions[s] = struct{}{}
	ts.mu.Unlock()
	return &trackedHandler{Handler: ts.node.Accept(s), done: func() {
		ts.mu.Lock()
		delete(ts.sessions, s)
		ts.mu.Unlock()
	}}
}

type trackedHandler struct {
	transport.Handler
	done func()
}

func (h *trackedHandler) HandleClosed(err error) {
	h.done()
	h.Handler.HandleClosed(err)
}

// liveSessions returns the sessions open now.
func (ts *testServer) liveSessions() []transport.Session {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]transport.Session, 0, len(ts.sessions))
	for s := range ts.sessions {
		out = append(out, s)
	}
	return out
}

// closeSessions closes every live session with d, as the server does for a
// slow consumer (4008) or a shutdown (1001), and returns how many.
func (ts *testServer) closeSessions(d transport.Disconnect) int {
	ss := ts.liveSessions()
	for _, s := range ss {
		s.Close(d)
	}
	return len(ss)
}

// failSessions ends every live session as a broken connection would:
// without a close code (for WebRTC, the peer connection closes without a
// close frame). It returns how many.
func (ts *testServer) failSessions() int {
	ss := ts.liveSessions()
	for _, s := range ss {
		s.(interface{ Fail(error) }).Fail(errors.New("test: connection broken"))
	}
	return len(ss)
}

// resetSessions aborts the TCP connection of every live WebSocket session
// with a RST, and returns how many.
func (ts *testServer) resetSessions() int {
	n := 0
	for _, s := range ts.liveSessions() {
		if ts.ln.reset(s.Info().RemoteAddr) {
			n++
		}
	}
	return n
}

// waitSessions waits until n sessions are live.
func (ts *testServer) waitSessions(t testing.TB, n int) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() error {
		if got := len(ts.liveSessions()); got != n {
			return fmt.Errorf("%d live sessions, want %d", got, n)
		}
		return nil
	})
}

// setPublishHook installs h for the test's duration.
func (ts *testServer) setPublishHook(t testing.TB, h func(next http.Handler, w http.ResponseWriter, r *http.Request)) {
	ts.publishHook.Store(&h)
	t.Cleanup(func() { ts.publishHook.Store(nil) })
}

// trackingListener keeps the accepted connections, to reset them.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[string]net.Conn // by remote address
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	addr := c.RemoteAddr().String()
	l.mu.Lock()
	l.conns[addr] = c
	l.mu.Unlock()
	return &trackedConn{Conn: c, forget: func() {
		l.mu.Lock()
		if l.conns[addr] == c {
			delete(l.conns, addr)
		}
		l.mu.Unlock()
	}}, nil
}

// reset aborts the connection from addr with a TCP RST.
func (l *trackingListener) reset(addr string) bool {
	l.mu.Lock()
	c := l.conns[addr]
	l.mu.Unlock()
	if c == nil {
		return false
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // Close then sends RST
	}
	_ = c.Close() // the server's reader sees the error and ends the session
	return true
}

type trackedConn struct {
	net.Conn
	once   sync.Once
	forget func()
}

func (c *trackedConn) Close() error {
	c.once.Do(c.forget)
	return c.Conn.Close()
}
