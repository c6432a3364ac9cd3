package webtransport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

const waitFor = 5 * time.Second

// tlog routes the server's logs into t.Log until the test ends: quic-go's
// HTTP/3 layer may log from a goroutine that ends just after its
// connection closed, which is after Server.Close has returned.
type tlog struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func newTlog(t testing.TB) *tlog {
	w := &tlog{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *tlog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// recorder is a test Handler: it records frames and closes, and echoes each
// frame back when echo is set.
type recorder struct {
	s      transport.Session
	echo   bool
	frames chan string
	closed chan error
	calls  sync.Mutex
	nClose int
}

func (r *recorder) HandleFrame(frame []byte) {
	r.frames <- string(frame)
	if r.echo {
		_ = r.s.Write(bytes.Clone(frame)) // a closed session ends the test anyway
	}
}

func (r *recorder) HandleClosed(err error) {
	r.calls.Lock()
	r.nClose++
	r.calls.Unlock()
	r.closed <- err
}

func (r *recorder) nextFrame(t *testing.T) string {
	t.Helper()
	select {
	case f := <-r.frames:
		return f
	case <-time.After(waitFor):
		t.Fatal("no frame")
		return ""
	}
}

func (r *recorder) waitClosed(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.closed:
		return err
	case <-time.After(waitFor):
		t.Fatal("HandleClosed not called")
		return nil
	}
}

// harness is a server on 127.0.0.1:0 whose sessions arrive on accepted.
type harness struct {
	srv      *Server
	accepted chan *recorder
}

func newHarness(t *testing.T, cfg Config, echo bool) *harness {
	t.Helper()
	h := &harness{accepted: make(chan *recorder, 16)}
	cfg.Addr = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(newTlog(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Accept = func(s transport.Session) transport.Handler {
		r := &recorder{s: s, echo: echo, frames: make(chan string, 64), closed: make(chan error, 2)}
		h.accepted <- r
		return r
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	h.srv = srv
	return h
}

func (h *harness) start(t *testing.T) {
	t.Helper()
	require.NoError(t, h.srv.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, h.srv.Close()) })
}

func (h *harness) session(t *testing.T) *recorder {
	t.Helper()
	select {
	case r := <-h.accepted:
		return r
	case <-time.After(waitFor):
		t.Fatal("no session accepted")
		return nil
	}
}

// pin accepts only the certificate whose SHA-256 is hash, as a browser's
// serverCertificateHashes does.
func pin(hash string) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("no certificate")
		}
		sum := sha256.Sum256(raw[0])
		if got := hex.EncodeToString(sum[:]); got != hash {
			return fmt.Errorf("certificate hash %s, want %s", got, hash)
		}
		return nil
	}
}

// dial opens a session with a webtransport-go client that pins hash. The
// session is closed when the test ends.
func dial(t *testing.T, url, hash string, hdr http.Header) (*http.Response, *webtransport.Session, error) {
	t.Helper()
	return dialQUIC(t, url, hash, hdr, &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true})
}

func dialQUIC(t *testing.T, url, hash string, hdr http.Header, qconf *quic.Config) (*http.Response, *webtransport.Session, error) {
	t.Helper()
	tr := &webtransport.Transport{
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify:    true, // verified by pinning instead
			VerifyPeerCertificate: pin(hash),
			NextProtos:            []string{http3.NextProtoH3},
		},
		QUICConfig: qconf,
	}
	t.Cleanup(func() { _ = tr.Close() }) // always nil
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	rsp, sess, err := tr.Dial(ctx, url, hdr)
	if sess != nil {
		t.Cleanup(func() { _ = sess.CloseWithError(0, "") }) // always nil
	}
	return rsp, sess, err
}

// open dials and opens the client's stream; the server sees the stream only
// after its first write, so it writes hello.
func open(t *testing.T, h *harness, query string, hello string) (*webtransport.Session, *webtransport.Stream, *recorder) {
	t.Helper()
	_, sess, err := dial(t, h.srv.URL()+query, h.srv.CertHash(), nil)
	require.NoError(t, err)
	str, err := sess.OpenStreamSync(context.Background())
	require.NoError(t, err)
	_, err = str.Write([]byte(hello))
	require.NoError(t, err)
	return sess, str, h.session(t)
}

func readLine(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	return line
}

// sessionError waits for the client's session to end and returns its
// *webtransport.SessionError.
func sessionError(t *testing.T, sess *webtransport.Session, str *webtransport.Stream) *webtransport.SessionError {
	t.Helper()
	select {
	case <-sess.Context().Done():
	case <-time.After(waitFor):
		t.Fatal("session not closed")
	}
	_, err := str.Read(make([]byte, 1))
	var se *webtransport.SessionError
	require.ErrorAs(t, err, &se)
	return se
}

func TestNDJSONBothWays(t *testing.T) {
	h := newHarness(t, Config{}, true)
	h.start(t)
	require.Equal(t, fmt.Sprintf("https://127.0.0.1:%d/wt", h.srv.Addr().(*net.UDPAddr).Port), h.srv.URL())
	require.NotZero(t, h.srv.Addr().(*net.UDPAddr).Port)

	_, str, rec := open(t, h, "?token=abc", `{"op":"ping"}`)
	info := rec.s.Info()
	require.Equal(t, "wt", info.Transport)
	require.Equal(t, "abc", info.Token)
	require.True(t, strings.HasPrefix(info.ID, "wt-"))
	require.NotEmpty(t, info.RemoteAddr)

	// The first frame ends in the next write; blank lines and \r vanish; a
	// frame is split across writes.
	for _, chunk := range []string{"\n\r\n", `{"a":1}` + "\r\n\n{\"b\":", `2}` + "\n"} {
		_, err := str.Write([]byte(chunk))
		require.NoError(t, err)
	}
	require.Equal(t, `{"op":"ping"}`, rec.nextFrame(t))
	require.Equal(t, `{"a":1}`, rec.nextFrame(t))
	require.Equal(t, `{"b":2}`, rec.nextFrame(t))

	br := bufio.NewReader(str)
	require.Equal(t, `{"op":"ping"}`+"\n", readLine(t, br))
	require.Equal(t, `{"a":1}`+"\n", readLine(t, br))
	require.Equal(t, `{"b":2}`+"\n", readLine(t, br))

	// A batch from the Outbound: every frame ends in "\n".
	require.NoError(t, rec.s.WriteMany([][]byte{[]byte(`{"x":1}`), []byte(`{"x":2}`), []byte(`{"x":3}`)}))
	for i := 1; i <= 3; i++ {
		require.Equal(t, fmt.Sprintf(`{"x":%d}`+"\n", i), readLine(t, br))
	}

	// A frame near the limit in one piece arrives whole.
	big := `{"d":"` + strings.Repeat("x", 60000) + `"}`
	_, err := str.Write([]byte(big + "\n"))
	require.NoError(t, err)
	require.Equal(t, big, rec.nextFrame(t))
	require.Equal(t, big+"\n", readLine(t, br))
}

func TestLineTooLarge(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
	}{
		{"unfinished", strings.Repeat("x", 100+frameSlack+1)},
		{"complete", strings.Repeat("x", 100+frameSlack+1) + "\n"},
		{"after a frame", "{}\n" + strings.Repeat("y", 3*(100+frameSlack))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{MaxMessage: 100}, false)
			h.start(t)
			sess, str, rec := open(t, h, "", strings.Repeat("z", 100+frameSlack)+"\n") // exactly at the limit: fine
			require.Len(t, rec.nextFrame(t), 100+frameSlack)
			_, _ = str.Write([]byte(tc.data)) // may fail once the server closed
			se := sessionError(t, sess, str)
			require.True(t, se.Remote)
			require.EqualValues(t, 1009, se.ErrorCode)
			require.Equal(t, transport.DisconnectTooLarge, rec.waitClosed(t))
		})
	}
}

func TestServerCloseCode(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.start(t)
	sess, str, rec := open(t, h, "", "{}\n")
	rec.s.Close(transport.DisconnectSlow)
	se := sessionError(t, sess, str)
	require.True(t, se.Remote)
	require.EqualValues(t, wire.CloseSlowConsumer, se.ErrorCode)
	require.Equal(t, transport.DisconnectSlow.Reason, se.Message)
	require.Equal(t, transport.DisconnectSlow, rec.waitClosed(t))
	require.ErrorIs(t, rec.s.Write([]byte("{}")), transport.ErrClosed)
	ok, err := rec.s.(transport.DatagramSession).WriteDatagram([]byte("{}"))
	require.False(t, ok)
	require.ErrorIs(t, err, transport.ErrClosed)
}

// TestFramesBeforeClose records whether frames written just before a close
// reach the client: a WebTransport close resets the streams, so they may
// not. The protocol only promises the close code.
func TestFramesBeforeClose(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.start(t)
	sess, str, rec := open(t, h, "", "{}\n")
	require.NoError(t, rec.s.Write([]byte(`{"op":"error","code":"unauthorized"}`)))
	rec.s.Close(transport.Disconnect{Code: wire.CloseUnauthorized, Reason: "token expired"})
	got, err := io.ReadAll(str)
	t.Logf("client read %q before %v", got, err)
	se := sessionError(t, sess, str)
	require.EqualValues(t, wire.CloseUnauthorized, se.ErrorCode)
	rec.waitClosed(t)
}

// TestWriteTimeout: a client that stops reading is closed with 4008 once a
// write has waited WriteTimeout/2 to WriteTimeout; the close goes out on the
// CONNECT stream, which the stuck stream does not block.
func TestWriteTimeout(t *testing.T) {
	h := newHarness(t, Config{WriteTimeout: 100 * time.Millisecond, MaxPendingBytes: 8 << 20}, false)
	h.start(t)
	_, sess, err := dialQUIC(t, h.srv.URL(), h.srv.CertHash(), nil, &quic.Config{
		EnableDatagrams: true, EnableStreamResetPartialDelivery: true,
		InitialStreamReceiveWindow: 16 << 10, MaxStreamReceiveWindow: 16 << 10,
	})
	require.NoError(t, err)
	str, err := sess.OpenStreamSync(context.Background())
	require.NoError(t, err)
	_, err = str.Write([]byte("{}\n"))
	require.NoError(t, err)
	rec := h.session(t)
	frame := []byte(`{"d":"` + strings.Repeat("w", 1000) + `"}`)
	for range 100 { // 100 KB: more than the client's window
		if rec.s.Write(frame) != nil {
			break
		}
	}
	require.Equal(t, transport.DisconnectWriteSlow, rec.waitClosed(t))
	select {
	case <-sess.Context().Done():
	case <-time.After(waitFor):
		t.Fatal("client session not closed")
	}
	_, err = sess.AcceptStream(context.Background())
	var se *webtransport.SessionError
	require.ErrorAs(t, err, &se)
	require.EqualValues(t, wire.CloseSlowConsumer, se.ErrorCode)
}

func TestClientClose(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.start(t)
	sess, _, rec := open(t, h, "", "{}\n")
	rec.nextFrame(t)
	require.NoError(t, sess.CloseWithError(4000, "bye"))
	err := rec.waitClosed(t)
	require.Error(t, err)
	// webtransport-go's client closes its QUIC connection as soon as the
	// session is closed, so the server sees the session error or, when
	// the connection close wins, a connection or H3 error.
	var se *webtransport.SessionError
	if errors.As(err, &se) {
		require.EqualValues(t, 4000, se.ErrorCode)
	}
	_, isDisconnect := transport.AsDisconnect(err)
	require.False(t, isDisconnect)
	require.Eventually(t, func() bool { return h.srv.sessionCount() == 0 }, waitFor, 10*time.Millisecond)
	rec.calls.Lock()
	require.Equal(t, 1, rec.nClose)
	rec.calls.Unlock()
}

func TestClientFinishesStream(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.start(t)
	sess, str, rec := open(t, h, "", "{}\n{\"last\":true}") // no final newline
	require.NoError(t, str.Close())
	require.Equal(t, "{}", rec.nextFrame(t))
	require.Equal(t, `{"last":true}`, rec.nextFrame(t))
	require.Equal(t, transport.DisconnectNormal, rec.waitClosed(t))
	require.EqualValues(t, wire.CloseNormal, sessionError(t, sess, str).ErrorCode)
}

func TestDatagrams(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.start(t)
	sess, _, rec := open(t, h, "", "{}\n")
	ds, ok := rec.s.(transport.DatagramSession)
	require.True(t, ok)

	frame := []byte(`{"op":"msg","topic":"pos","seq":1,"data":"` + strings.Repeat("p", MaxDatagramSize-50) + `"}`)
	sent, err := ds.WriteDatagram(frame)
	require.NoError(t, err)
	require.True(t, sent)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	got, err := sess.ReceiveDatagram(ctx)
	require.NoError(t, err)
	require.Equal(t, frame, got) // one datagram, no newline

	exact := bytes.Repeat([]byte("e"), MaxDatagramSize)
	sent, err = ds.WriteDatagram(exact)
	require.NoError(t, err)
	require.True(t, sent)
	got, err = sess.ReceiveDatagram(ctx)
	require.NoError(t, err)
	require.Equal(t, exact, got)

	sent, err = ds.WriteDatagram(make([]byte, MaxDatagramSize+1))
	require.NoError(t, err)
	require.False(t, sent, "a frame over MaxDatagramSize goes over the stream")
}

func TestDatagramTooLargeForPath(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.start(t)
	_, _, rec := open(t, h, "", "{}\n")
	ss := rec.s.(*session)
	// Pretend the path carries less than MaxDatagramSize: quic-go would
	// answer DatagramTooLargeError for anything over ~1,400 bytes here.
	ss.dgLimit.Store(1500)
	sent, err := ss.WriteDatagram(make([]byte, 1500))
	require.NoError(t, err)
	require.True(t, sent) // queued before quic-go could tell
	require.Eventually(t, func() bool { return ss.dgLimit.Load() < 1500 }, waitFor, 5*time.Millisecond)
	require.EqualValues(t, 1, ss.DatagramsDropped())
	sent, err = ss.WriteDatagram(make([]byte, 1500))
	require.NoError(t, err)
	require.False(t, sent)
}

func TestOrigin(t *testing.T) {
	h := newHarness(t, Config{CheckOrigin: func(r *http.Request) bool {
		return r.Header.Get("Origin") == "https://good.example"
	}}, false)
	h.start(t)
	rsp, sess, err := dial(t, h.srv.URL(), h.srv.CertHash(), http.Header{"Origin": {"https://evil.example"}})
	require.Error(t, err)
	require.Nil(t, sess)
	require.NotNil(t, rsp)
	require.Equal(t, http.StatusForbidden, rsp.StatusCode)

	_, sess, err = dial(t, h.srv.URL(), h.srv.CertHash(), http.Header{"Origin": {"https://good.example"}})
	require.NoError(t, err)
	require.NoError(t, sess.CloseWithError(0, ""))

	_, sess, err = dial(t, h.srv.URL(), h.srv.CertHash(), nil) // no Origin: not a browser
	require.NoError(t, err)
	require.NoError(t, sess.CloseWithError(0, ""))
}

func TestNoStream(t *testing.T) {
	h := newHarness(t, Config{StreamTimeout: 100 * time.Millisecond}, false)
	h.start(t)
	_, sess, err := dial(t, h.srv.URL(), h.srv.CertHash(), nil)
	require.NoError(t, err)
	select {
	case <-sess.Context().Done():
	case <-time.After(waitFor):
		t.Fatal("session without a stream not closed")
	}
	_, err = sess.AcceptStream(context.Background())
	var se *webtransport.SessionError
	require.ErrorAs(t, err, &se)
	require.EqualValues(t, wire.CloseProtocolError, se.ErrorCode)
	require.Empty(t, h.accepted)
}

func TestExtraStreamsReset(t *testing.T) {
	h := newHarness(t, Config{}, true)
	h.start(t)
	sess, str, rec := open(t, h, "", "{\"n\":1}\n")
	require.Equal(t, `{"n":1}`, rec.nextFrame(t))

	extra, err := sess.OpenStreamSync(context.Background())
	require.NoError(t, err)
	_, err = extra.Write([]byte("{\"n\":2}\n"))
	require.NoError(t, err)
	_, err = extra.Read(make([]byte, 1))
	var se *webtransport.StreamError
	require.ErrorAs(t, err, &se)
	require.EqualValues(t, extraStreamCode, se.ErrorCode)

	// The first stream still works.
	_, err = str.Write([]byte("{\"n\":3}\n"))
	require.NoError(t, err)
	require.Equal(t, `{"n":3}`, rec.nextFrame(t))
	br := bufio.NewReader(str)
	require.Equal(t, "{\"n\":1}\n", readLine(t, br))
	require.Equal(t, "{\"n\":3}\n", readLine(t, br))
}

func TestCloseServer(t *testing.T) {
	h := newHarness(t, Config{}, false)
	require.NoError(t, h.srv.Start(context.Background()))
	sess, str, rec := open(t, h, "", "{}\n")
	rec.nextFrame(t)
	require.NoError(t, h.srv.Close())
	require.Equal(t, transport.DisconnectShutdown, rec.waitClosed(t))
	require.EqualValues(t, wire.CloseGoingAway, sessionError(t, sess, str).ErrorCode)
	require.NoError(t, h.srv.Close(), "Close twice")
	require.ErrorIs(t, h.srv.Start(context.Background()), transport.ErrClosed)
}

// TestIdleConnectionClosed: a QUIC connection that opens no session is
// closed by the server.
func TestIdleConnectionClosed(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.srv.connIdle = 50 * time.Millisecond
	h.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, err := quic.DialAddr(ctx, h.srv.Addr().String(), &tls.Config{
		InsecureSkipVerify: true, VerifyPeerCertificate: pin(h.srv.CertHash()), NextProtos: []string{http3.NextProtoH3},
	}, &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true})
	require.NoError(t, err)
	select {
	case <-conn.Context().Done():
	case <-ctx.Done():
		t.Fatal("idle connection not closed")
	}
	var ae *quic.ApplicationError
	require.ErrorAs(t, context.Cause(conn.Context()), &ae)
	require.True(t, ae.Remote)
	require.Equal(t, "no webtransport session", ae.ErrorMessage)
}

func TestKeepalivePing(t *testing.T) {
	ka := transport.NewKeepalive(transport.KeepaliveConfig{PingAfter: 20 * time.Millisecond, SweepEvery: 10 * time.Millisecond, SilenceLimit: -1})
	defer ka.Close()
	h := newHarness(t, Config{Keepalive: ka}, false)
	h.start(t)
	_, str, _ := open(t, h, "", "{}\n")
	require.Equal(t, string(wire.PingFrame)+"\n", readLine(t, bufio.NewReader(str)))
}

func TestConfig(t *testing.T) {
	_, err := New(Config{})
	require.Error(t, err, "Accept is required")
	s, err := New(Config{Accept: func(transport.Session) transport.Handler { return nil }})
	require.NoError(t, err)
	require.Equal(t, DefaultAddr, s.cfg.Addr)
	require.Nil(t, s.Addr())
	require.Empty(t, s.URL())
	require.Len(t, s.CertHash(), 64)
	require.NoError(t, s.Close())
}

func (s *Server) sessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
