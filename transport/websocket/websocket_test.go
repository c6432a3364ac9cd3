package websocket

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Handler that records frames and hands sessions to the test.
type recorder struct {
	mu       sync.Mutex
	frames   []string
	closed   chan error
	sessions chan transport.Session
	got      chan struct{}
}

func newRecorder() *recorder {
	return &recorder{closed: make(chan error, 16), sessions: make(chan transport.Session, 16), got: make(chan struct{}, 100)}
}

func (r *recorder) accept(s transport.Session) transport.Handler { r.sessions <- s; return r }

func (r *recorder) HandleFrame(f []byte) {
	r.mu.Lock()
	r.frames = append(r.frames, string(f))
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *recorder) HandleClosed(err error) { r.closed <- err }

func (r *recorder) waitFrames(t *testing.T, n int) []string {
	t.Helper()
	for range n {
		select {
		case <-r.got:
		case <-time.After(5 * time.Second):
			t.Fatal("frames did not arrive")
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.frames...)
}

func start(t *testing.T, cfg Config) (*recorder, string) {
	t.Helper()
	rec := newRecorder()
	cfg.Accept = rec.accept
	h := NewHandler(cfg)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, h.Close())
	})
	return rec, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, url string) (net.Conn, *wsutil.Reader) {
	t.Helper()
	conn, br, _, err := ws.Dial(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.Nil(t, br)
	return conn, nil
}

func readMessage(t *testing.T, conn net.Conn) ([]byte, error) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	b, _, err := wsutil.ReadServerData(conn)
	return b, err
}

func TestFramesBothWays(t *testing.T) {
	rec, url := start(t, Config{})
	conn, _ := dial(t, url)
	s := <-rec.sessions
	require.Equal(t, "ws", s.Info().Transport)

	// Several frames in one message, empty lines ignored.
	require.NoError(t, wsutil.WriteClientText(conn, []byte("{\"op\":\"ping\"}\n\n{\"op\":\"pong\"}")))
	require.Equal(t, []string{`{"op":"ping"}`, `{"op":"pong"}`}, rec.waitFrames(t, 2))

	// A fragmented message is put together.
	require.NoError(t, ws.WriteFrame(conn, ws.MaskFrame(ws.NewFrame(ws.OpText, false, []byte(`{"op":`)))))
	require.NoError(t, ws.WriteFrame(conn, ws.MaskFrame(ws.NewFrame(ws.OpContinuation, true, []byte(`"x"}`)))))
	require.Equal(t, `{"op":"x"}`, rec.waitFrames(t, 1)[2])

	// Frames queued together go out as one message, joined by \n.
	require.NoError(t, s.WriteMany([][]byte{[]byte(`{"a":1}`), []byte(`{"b":2}`)}))
	msg, err := readMessage(t, conn)
	require.NoError(t, err)
	require.Equal(t, "{\"a\":1}\n{\"b\":2}", string(msg))

	// A WebSocket ping is answered.
	require.NoError(t, ws.WriteFrame(conn, ws.MaskFrame(ws.NewPingFrame([]byte("hi")))))
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	f, err := readFrame(conn)
	require.NoError(t, err)
	require.Equal(t, ws.OpPong, f.Header.OpCode)
	require.Equal(t, "hi", string(f.Payload))

	// A client close is answered and ends the session.
	require.NoError(t, ws.WriteFrame(conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))))
	select {
	case err := <-rec.closed:
		d, ok := transport.AsDisconnect(err)
		require.True(t, ok, "%v", err)
		require.Equal(t, wire.CloseNormal, d.Code)
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end")
	}
}

// closeCode reads until the close frame and returns it with the messages
// before it.
func closeCode(t *testing.T, conn net.Conn) (wire.DisconnectCode, string, []string) {
	t.Helper()
	var msgs []string
	for {
		msg, err := readMessage(t, conn)
		var closed wsutil.ClosedError
		if errors.As(err, &closed) {
			return wire.DisconnectCode(closed.Code), closed.Reason, msgs
		}
		require.NoError(t, err, "expected a close frame")
		msgs = append(msgs, string(msg))
	}
}

func TestOversizeMessageClosesWith1009(t *testing.T) {
	rec, url := start(t, Config{MaxMessage: 100})
	conn, _ := dial(t, url)
	<-rec.sessions
	// The limit is the data limit plus 4 KiB for the rest of the frame.
	require.NoError(t, wsutil.WriteClientText(conn, bytes.Repeat([]byte("x"), 100+4096+1)))
	code, _, _ := closeCode(t, conn)
	require.Equal(t, wire.CloseTooLarge, code)
	require.ErrorIs(t, <-rec.closed, transport.DisconnectTooLarge)
}

func TestServerCloseSendsCodeAfterQueuedFrames(t *testing.T) {
	rec, url := start(t, Config{})
	conn, _ := dial(t, url)
	s := <-rec.sessions
	require.NoError(t, s.Write([]byte(`{"op":"msg"}`)))
	s.Close(transport.Disconnect{Code: wire.CloseGoingAway, Reason: "drain"})
	code, reason, msgs := closeCode(t, conn)
	require.Equal(t, wire.CloseGoingAway, code)
	require.Equal(t, "drain", reason)
	require.Equal(t, []string{`{"op":"msg"}`}, msgs)
	d, ok := transport.AsDisconnect(<-rec.closed)
	require.True(t, ok)
	require.Equal(t, wire.CloseGoingAway, d.Code)
}

func TestSlowConsumerCloseSends4008(t *testing.T) {
	rec, url := start(t, Config{})
	conn, _ := dial(t, url)
	s := <-rec.sessions
	s.Close(transport.DisconnectSlow)
	code, _, _ := closeCode(t, conn)
	require.Equal(t, wire.CloseSlowConsumer, code)
	require.ErrorIs(t, <-rec.closed, transport.DisconnectSlow)
}

func TestAbruptDisconnectEndsSession(t *testing.T) {
	rec, url := start(t, Config{})
	conn, _ := dial(t, url)
	s := <-rec.sessions
	require.NoError(t, conn.Close())
	select {
	case err := <-rec.closed:
		require.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end")
	}
	<-s.Context().Done()
	require.ErrorIs(t, s.Write([]byte("x")), transport.ErrClosed)
}

func TestOriginRefused(t *testing.T) {
	policy := transport.NewOriginPolicy([]string{"https://game.example.com"})
	_, url := start(t, Config{CheckOrigin: policy.Allow})
	for origin, want := range map[string]int{
		"https://evil.example.com":  http.StatusForbidden,
		"https://game.example.com":  http.StatusSwitchingProtocols,
		"http://localhost:3000":     http.StatusSwitchingProtocols,
		"http://127.0.0.1:9":        http.StatusSwitchingProtocols,
		"http://localhost.evil.com": http.StatusForbidden,
	} {
		d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Origin": {origin}})}
		conn, _, _, err := d.Dial(context.Background(), url)
		if want == http.StatusForbidden {
			var status ws.StatusError
			require.ErrorAs(t, err, &status, origin)
			require.Equal(t, want, int(status), origin)
			continue
		}
		require.NoError(t, err, origin)
		conn.Close()
	}
}

func TestWriteFramesIsOneSyscallWorthOfBytes(t *testing.T) {
	var out bytes.Buffer
	s := &session{conn: writerConn{&out}, timeout: time.Second}
	require.NoError(t, s.WriteFrames([][]byte{[]byte("ab"), []byte("cd")}))
	f, err := readFrame(&out)
	require.NoError(t, err)
	require.Equal(t, "ab\ncd", string(f.Payload))
	require.True(t, f.Header.Fin)
	require.Zero(t, out.Len())
	for _, n := range []int{125, 126, 65535, 65536} {
		hdr := appendHeader(nil, ws.OpText, n)
		h, err := ws.ReadHeader(bytes.NewReader(hdr))
		require.NoError(t, err)
		require.Equal(t, int64(n), h.Length)
	}
}

// writerConn is a net.Conn that appends writes to a buffer.
type writerConn struct{ w *bytes.Buffer }

func (c writerConn) Read([]byte) (int, error)         { return 0, errors.New("no reads") }
func (c writerConn) Write(b []byte) (int, error)      { return c.w.Write(b) }
func (c writerConn) Close() error                     { return nil }
func (c writerConn) LocalAddr() net.Addr              { return nil }
func (c writerConn) RemoteAddr() net.Addr             { return nil }
func (c writerConn) SetDeadline(time.Time) error      { return nil }
func (c writerConn) SetReadDeadline(time.Time) error  { return nil }
func (c writerConn) SetWriteDeadline(time.Time) error { return nil }

// readFrame reads one server frame (unmasked) whole; test frames are small.
func readFrame(r io.Reader) (ws.Frame, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return ws.Frame{}, err
	}
	payload := make([]byte, h.Length)
	_, err = io.ReadFull(r, payload)
	return ws.Frame{Header: h, Payload: payload}, err
}

// TestPeerVanishingWhileServerWritesEndsSession: when the client goes while
// the server writes and no reader runs, the write fails and closes the
// connection, which epoll never reports: the session must still end.
func TestPeerVanishingWhileServerWritesEndsSession(t *testing.T) {
	rec, url := start(t, Config{})
	frame := bytes.Repeat([]byte("x"), 1000)
	for round := range 50 {
		conn, _ := dial(t, url)
		s := <-rec.sessions
		for range 100 {
			require.NoError(t, s.Write(frame))
		}
		_, err := readMessage(t, conn)
		require.NoError(t, err)
		// A reset, not a FIN: the server's next write fails at once.
		require.NoError(t, conn.(*net.TCPConn).SetLinger(0))
		require.NoError(t, conn.Close())
		for i := 0; i < 1000 && s.Write(frame) == nil; i++ {
			time.Sleep(100 * time.Microsecond)
		}
		select {
		case <-rec.closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the session did not end after its peer left", round)
		}
	}
}

// TestFullSocketKeepsOrder fills the connection while the client does not
// read, so the pooled writer's non-blocking write takes only part of a
// message and the rest is finished on the session's own goroutine; a ping
// answered meanwhile must not cut into that message.
func TestFullSocketKeepsOrder(t *testing.T) {
	rec, url := start(t, Config{MaxPendingBytes: 64 << 20})
	conn, _ := dial(t, url)
	s := <-rec.sessions
	frame := []byte(strings.Repeat("x", 1000))
	partial := partialWrites.Load()
	const n = 20000 // about 20 MB: more than the socket buffers hold
	for i := range n {
		require.NoError(t, s.Write(append(strconv.AppendInt(nil, int64(i), 10), frame...)))
		if i == n/2 {
			require.NoError(t, ws.WriteFrame(conn, ws.MaskFrame(ws.NewPingFrame([]byte("mid")))))
		}
	}
	next, pongs := 0, 0
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	for next < n {
		f, err := readFrame(conn)
		require.NoError(t, err, "after %d frames, %d pongs", next, pongs)
		if f.Header.OpCode == ws.OpPong {
			pongs++
			continue
		}
		require.Equal(t, ws.OpText, f.Header.OpCode)
		for line := range strings.SplitSeq(string(f.Payload), "\n") {
			require.Equal(t, strconv.Itoa(next), strings.TrimSuffix(line, string(frame)), "frame %d", next)
			next++
		}
	}
	require.Equal(t, 1, pongs)
	require.Greater(t, partialWrites.Load(), partial, "the socket never filled: the test did not test the partial write")
	s.Close(transport.DisconnectShutdown)
}

// TestNonblockingWriteDoesNotAllocate guards the pooled writers' path: one
// write of a batch to a real socket allocates nothing.
func TestNonblockingWriteDoesNotAllocate(t *testing.T) {
	rec, url := start(t, Config{})
	conn, _ := dial(t, url)
	s := (<-rec.sessions).(*session)
	require.NotNil(t, s.raw, "a TCP session writes without waiting")
	go func() { _, _ = io.Copy(io.Discard, conn) }()
	frames := [][]byte{[]byte(`{"op":"msg","topic":"t","seq":1,"data":"x"}`), []byte(`{"op":"msg","topic":"t","seq":2,"data":"y"}`)}
	nb := nonblockingSession{s}
	allocs := testing.AllocsPerRun(1000, func() {
		finish, err := nb.TryWriteFrames(frames)
		if err != nil {
			t.Fatal(err)
		}
		if finish != nil {
			if err := finish(); err != nil {
				t.Fatal(err)
			}
		}
	})
	require.Zero(t, allocs)
	s.Close(transport.DisconnectShutdown)
}

// TestPooledWriteDoesNotWaitForAControlWrite: a pong being written to a full
// socket holds the session's write lock; the pooled writer must hand the
// message to the session's own goroutine instead of waiting for it.
func TestPooledWriteDoesNotWaitForAControlWrite(t *testing.T) {
	rec, url := start(t, Config{})
	conn, _ := dial(t, url)
	s := (<-rec.sessions).(*session)
	s.wmu.Lock() // as writeControl does while its write waits
	finish, err := nonblockingSession{s}.TryWriteFrames([][]byte{[]byte(`{"a":1}`)})
	require.NoError(t, err)
	require.NotNil(t, finish, "the pooled writer must not write under another writer")
	s.wmu.Unlock()
	require.NoError(t, finish())
	msg, err := readMessage(t, conn)
	require.NoError(t, err)
	require.Equal(t, `{"a":1}`, string(msg))
	s.Close(transport.DisconnectShutdown)
}

// TestRefusedUpgradeKeepsOrClosesTheConnection: a request that is no
// upgrade at all gets a 400 through net/http and its keep-alive
// connection serves the next request; an upgrade that fails the handshake
// (no key) is refused on the hijacked connection, which is then closed
// rather than left open with nobody reading it.
func TestRefusedUpgradeKeepsOrClosesTheConnection(t *testing.T) {
	_, url := start(t, Config{})
	addr := strings.TrimPrefix(url, "ws://")
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	br := bufio.NewReader(conn)
	for range 2 {
		_, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.False(t, resp.Close, "the connection is kept")
	}

	conn2, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn2.Close()
	require.NoError(t, conn2.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = fmt.Fprintf(conn2, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", addr)
	require.NoError(t, err)
	br2 := bufio.NewReader(conn2)
	resp, err := http.ReadResponse(br2, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	_, err = br2.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the server closed the hijacked connection")
}
