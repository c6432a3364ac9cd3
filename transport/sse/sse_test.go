package sse

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeNode stands in for the node: it records the sessions and the frames
// fed to them, and the test answers in the actors' place.
type fakeNode struct {
	sessions chan transport.Session
	frames   chan *wire.Command
	closed   chan error
}

func newFakeNode() *fakeNode {
	return &fakeNode{sessions: make(chan transport.Session, 16), frames: make(chan *wire.Command, 64), closed: make(chan error, 16)}
}

func (n *fakeNode) Accept(s transport.Session) transport.Handler {
	n.sessions <- s
	return fakeHandler{n}
}

type fakeHandler struct{ n *fakeNode }

func (h fakeHandler) HandleFrame(frame []byte) {
	cmd, err := wire.DecodeCommand(frame, 0)
	if err != nil {
		panic(fmt.Sprintf("adapter fed a bad frame %q: %v", frame, err))
	}
	h.n.frames <- cmd
}

func (h fakeHandler) HandleClosed(err error) { h.n.closed <- err }

// HandleCommand makes fakeHandler a transport.CommandHandler, as the
// connection actors' handler is: the stream subscribes with values. (The
// poll tests' handler takes frames only, and covers the other way.)
func (h fakeHandler) HandleCommand(cmd *wire.Command) { h.n.frames <- cmd }

var _ transport.CommandHandler = fakeHandler{}

func (n *fakeNode) session(t *testing.T) transport.Session {
	t.Helper()
	select {
	case s := <-n.sessions:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no session")
		return nil
	}
}

func (n *fakeNode) command(t *testing.T) *wire.Command {
	t.Helper()
	select {
	case c := <-n.frames:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no frame")
		return nil
	}
}

func (n *fakeNode) waitClosed(t *testing.T) error {
	t.Helper()
	select {
	case err := <-n.closed:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("session not closed")
		return nil
	}
}

// event is one server-sent event.
type event struct {
	name, id, data string
	comment        bool
}

type stream struct {
	resp *http.Response
	br   *bufio.Reader
}

func open(t *testing.T, srv *httptest.Server, query string, header ...string) *stream {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/sse?"+query, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return &stream{resp: resp, br: bufio.NewReader(resp.Body)}
}

// next reads one event (or comment); io.EOF when the stream ends.
func (s *stream) next() (event, error) {
	var ev event
	seen := false
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if seen {
				return ev, nil
			}
			continue
		}
		seen = true
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			ev.comment = true
			ev.data = value
		case "event":
			ev.name = value
		case "id":
			ev.id = value
		case "data":
			ev.data = value
		}
	}
}

func (s *stream) mustNext(t *testing.T) event {
	t.Helper()
	ev, err := s.next()
	require.NoError(t, err)
	return ev
}

func decodeCursor(t *testing.T, id string) map[string]wire.Position {
	t.Helper()
	c, err := wire.DecodeCursor(id)
	require.NoError(t, err)
	m := map[string]wire.Position{}
	for topic, p := range c.All() {
		m[topic] = p
	}
	return m
}

func encodeCursor(t *testing.T, kv ...any) string {
	t.Helper()
	var c wire.Cursor
	for i := 0; i+2 < len(kv)+1; i += 3 {
		require.NoError(t, c.Set(kv[i].(string), wire.Position{Epoch: kv[i+1].(string), Seq: uint64(kv[i+2].(int))}))
	}
	return c.String()
}

func serve(t *testing.T, cfg Config) (*fakeNode, *httptest.Server) {
	n := newFakeNode()
	cfg.Accept = n.Accept
	srv := httptest.NewServer(NewHandler(cfg))
	t.Cleanup(srv.Close)
	return n, srv
}

func TestStream(t *testing.T) {
	n, srv := serve(t, Config{KeepaliveEvery: 100 * time.Millisecond})
	st := open(t, srv, "topic=a&topic=b&topic=a")
	require.Equal(t, http.StatusOK, st.resp.StatusCode)
	require.Equal(t, "text/event-stream", st.resp.Header.Get("Content-Type"))
	s := n.session(t)
	require.Equal(t, "sse", s.Info().Transport)
	sa, sb := n.command(t), n.command(t)
	require.Equal(t, &wire.Command{Op: wire.OpSub, ID: 1, Topic: "a"}, sa, "repeated topics count once")
	require.Equal(t, &wire.Command{Op: wire.OpSub, ID: 2, Topic: "b"}, sb)

	// Topic a answers and delivers before b answers: a's message waits for
	// the ready event.
	require.NoError(t, s.Write(wire.AppendSubOK(nil, 1, "a", "ea", 5, wire.RecoveryNone)))
	require.NoError(t, s.Write(wire.AppendMsg(nil, "a", "ea", 6, 1, []byte(`{"n":6}`))))
	require.NoError(t, s.Write(wire.AppendSubOK(nil, 2, "b", "eb", 0, wire.RecoveryNone)))

	ev := st.mustNext(t)
	require.Equal(t, "ready", ev.name)
	require.JSONEq(t, `{"topics":{"a":{"epoch":"ea","seq":5},"b":{"epoch":"eb","seq":0}}}`, ev.data)
	require.Equal(t, map[string]wire.Position{"a": {Epoch: "ea", Seq: 5}, "b": {Epoch: "eb", Seq: 0}}, decodeCursor(t, ev.id))

	ev = st.mustNext(t)
	require.Equal(t, "", ev.name)
	require.Equal(t, `{"op":"msg","topic":"a","epoch":"ea","seq":6,"ts":1,"data":{"n":6}}`, ev.data)
	require.Equal(t, map[string]wire.Position{"a": {Epoch: "ea", Seq: 6}, "b": {Epoch: "eb", Seq: 0}}, decodeCursor(t, ev.id))

	require.NoError(t, s.WriteMany([][]byte{
		wire.AppendMsg(nil, "b", "eb", 1, 2, []byte(`1`)),
		wire.AppendReset(nil, "a", "ea2", 0),
	}))
	ev = st.mustNext(t)
	require.Equal(t, map[string]wire.Position{"a": {Epoch: "ea", Seq: 6}, "b": {Epoch: "eb", Seq: 1}}, decodeCursor(t, ev.id))
	ev = st.mustNext(t)
	require.Equal(t, "reset", ev.name)
	require.Equal(t, `{"op":"reset","topic":"a","epoch":"ea2","seq":0}`, ev.data)
	require.Equal(t, map[string]wire.Position{"a": {Epoch: "ea2", Seq: 0}, "b": {Epoch: "eb", Seq: 1}}, decodeCursor(t, ev.id))

	// An error that ends one subscription is passed on; the stream goes on.
	require.NoError(t, s.Write(wire.AppendError(nil, &wire.Error{Code: wire.CodeForbidden, Message: "no", Topic: "b"})))
	ev = st.mustNext(t)
	require.Equal(t, "error", ev.name)
	require.Contains(t, ev.data, `"code":"forbidden"`)

	ev = st.mustNext(t)
	require.True(t, ev.comment, "a quiet stream gets a comment: %+v", ev)
	require.Equal(t, "keepalive", ev.data)

	s.Close(transport.DisconnectShutdown)
	_, err := st.next()
	require.ErrorIs(t, err, io.EOF, "the stream ends on close")
	d, ok := transport.AsDisconnect(n.waitClosed(t))
	require.True(t, ok)
	require.Equal(t, wire.CloseGoingAway, d.Code)
}

func TestResume(t *testing.T) {
	n, srv := serve(t, Config{})
	old := encodeCursor(t, "a", "e", 1, "b", "e", 1)
	newer := encodeCursor(t, "a", "e", 7, "other", "x", 3)
	st := open(t, srv, "topic=a&topic=b&cursor="+url.QueryEscape(old), "Last-Event-ID", newer)
	require.Equal(t, http.StatusOK, st.resp.StatusCode)
	s := n.session(t)
	require.Equal(t, &wire.Command{Op: wire.OpSub, ID: 1, Topic: "a", Since: &wire.Position{Epoch: "e", Seq: 7}}, n.command(t),
		"Last-Event-ID wins over cursor=")
	require.Equal(t, &wire.Command{Op: wire.OpSub, ID: 2, Topic: "b"}, n.command(t))
	require.NoError(t, s.WriteBacklog([][]byte{
		wire.AppendSubOK(nil, 1, "a", "e", 9, wire.Recovered),
		wire.AppendMsg(nil, "a", "e", 8, 1, []byte(`8`)),
		wire.AppendMsg(nil, "a", "e", 9, 1, []byte(`9`)),
	}))
	require.NoError(t, s.Write(wire.AppendSubOK(nil, 2, "b", "e", 4, wire.RecoveryNone)))
	ev := st.mustNext(t)
	require.JSONEq(t, `{"topics":{"a":{"epoch":"e","seq":9,"recovered":true},"b":{"epoch":"e","seq":4}}}`, ev.data)
	require.Equal(t, map[string]wire.Position{"a": {Epoch: "e", Seq: 7}, "b": {Epoch: "e", Seq: 4}}, decodeCursor(t, ev.id),
		"until the missed messages are written, the id names the cursor's position")
	for seq := 8; seq <= 9; seq++ {
		ev = st.mustNext(t)
		require.Contains(t, ev.data, fmt.Sprintf(`"seq":%d`, seq))
		require.Equal(t, map[string]wire.Position{"a": {Epoch: "e", Seq: uint64(seq)}, "b": {Epoch: "e", Seq: 4}}, decodeCursor(t, ev.id),
			"the id covers the stream's topics only")
	}
	st.resp.Body.Close()
	n.waitClosed(t)
	require.Error(t, s.Context().Err(), "the session ends when the client goes")
}

func TestSubFails(t *testing.T) {
	n, srv := serve(t, Config{})
	st := open(t, srv, "topic=a&topic=b")
	s := n.session(t)
	n.command(t)
	n.command(t)
	require.NoError(t, s.Write(wire.AppendSubOK(nil, 1, "a", "e", 0, wire.RecoveryNone)))
	require.NoError(t, s.Write(wire.AppendError(nil, &wire.Error{Code: wire.CodeUnavailable, Message: "topic b is unavailable, try again", ID: 2})))
	// The writer may already have written the error, which closes the
	// session: then the message is refused instead of dropped.
	if err := s.Write(wire.AppendMsg(nil, "a", "e", 1, 1, []byte(`1`))); err != nil {
		require.ErrorIs(t, err, transport.ErrClosed)
	}
	ev := st.mustNext(t)
	require.Equal(t, "error", ev.name)
	require.Contains(t, ev.data, `"code":"unavailable"`)
	_, err := st.next()
	require.ErrorIs(t, err, io.EOF, "a failed sub ends the stream")
	n.waitClosed(t)
}

func TestHeldBound(t *testing.T) {
	n, srv := serve(t, Config{MaxPendingBytes: 1000})
	st := open(t, srv, "topic=a&topic=b")
	s := n.session(t)
	n.command(t)
	n.command(t)
	require.NoError(t, s.Write(wire.AppendSubOK(nil, 1, "a", "e", 0, wire.RecoveryNone)))
	big := []byte(`"` + strings.Repeat("x", 500) + `"`)
	for seq := uint64(1); seq <= 20; seq++ {
		if s.Write(wire.AppendMsg(nil, "a", "e", seq, 1, big)) != nil {
			break
		}
	}
	_, err := st.next()
	require.ErrorIs(t, err, io.EOF)
	d, _ := transport.AsDisconnect(n.waitClosed(t))
	require.Equal(t, wire.CloseSlowConsumer, d.Code)
}

func TestBadRequests(t *testing.T) {
	n, srv := serve(t, Config{CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "http://ok" }})
	good := encodeCursor(t, "a", "e", 1)
	many := make([]string, 33)
	for i := range many {
		many[i] = fmt.Sprintf("topic=t%d", i)
	}
	tests := []struct {
		name, query string
		header      []string
		status      int
		msg         string
	}{
		{"no topic", "", nil, 400, "topic is missing"},
		{"bad topic", "topic=a%20b", nil, 400, "topic has a byte"},
		{"too many topics", strings.Join(many, "&"), nil, 400, "at most 32 topics"},
		{"malformed cursor", "topic=a&cursor=%25%25", nil, 400, "cursor is not valid: not base64url"},
		{"foreign cursor", "topic=a&cursor=" + good[:len(good)-2] + "AA", nil, 400, "cursor is not valid: truncated, altered"},
		{"bad Last-Event-ID", "topic=a&cursor=" + good, []string{"Last-Event-ID", "nope"}, 400, "Last-Event-ID: cursor is not valid"},
		{"bad mode", "topic=a&mode=all", nil, 400, `mode must be "latest" or absent`},
		{"origin", "topic=a", []string{"Origin", "http://evil"}, 403, "origin not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := open(t, srv, tt.query, tt.header...)
			require.Equal(t, tt.status, st.resp.StatusCode)
			require.Equal(t, "application/json", st.resp.Header.Get("Content-Type"))
			var body wire.ErrorBody
			require.NoError(t, json.NewDecoder(st.resp.Body).Decode(&body))
			require.Contains(t, body.Error.Message, tt.msg)
		})
	}
	require.Empty(t, n.sessions, "no session for a refused request")
}

// TestShutdownWhileWaiting: a session closed before it is ready ends the
// stream too.
func TestShutdownWhileWaiting(t *testing.T) {
	n, srv := serve(t, Config{})
	st := open(t, srv, "topic=a")
	s := n.session(t)
	n.command(t)
	s.Close(transport.DisconnectShutdown)
	_, err := st.next()
	require.ErrorIs(t, err, io.EOF)
	n.waitClosed(t)
}

// TestHeldBacklog: recovered messages held back before the ready event do
// not count against the bound, as in the queue.
func TestHeldBacklog(t *testing.T) {
	n, srv := serve(t, Config{MaxPendingBytes: 1000})
	st := open(t, srv, "topic=a&topic=b&cursor="+url.QueryEscape(encodeCursor(t, "a", "e", 0)))
	s := n.session(t)
	n.command(t)
	n.command(t)
	big := []byte(`"` + strings.Repeat("x", 500) + `"`)
	frames := [][]byte{wire.AppendSubOK(nil, 1, "a", "e", 20, wire.Recovered)}
	for seq := uint64(1); seq <= 20; seq++ {
		frames = append(frames, wire.AppendMsg(nil, "a", "e", seq, 1, big))
	}
	require.NoError(t, s.WriteBacklog(frames))
	require.NoError(t, s.Write(wire.AppendSubOK(nil, 2, "b", "e", 0, wire.RecoveryNone)))
	ev := st.mustNext(t)
	require.Equal(t, "ready", ev.name)
	for seq := 1; seq <= 20; seq++ {
		ev = st.mustNext(t)
		require.Equal(t, uint64(seq), decodeCursor(t, ev.id)["a"].Seq)
	}
}
