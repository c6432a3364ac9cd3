package poll

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTopic retains the messages oldest..head of its epoch.
type fakeTopic struct {
	epoch        string
	head, oldest uint64
}

// fakeNode answers History like a topic actor and records the sessions of
// waiting polls; the test answers their subs in the actors' place.
type fakeNode struct {
	mu     sync.Mutex
	topics map[string]*fakeTopic

	sessions chan transport.Session
	frames   chan *wire.Command
	closed   chan error
}

func newFakeNode() *fakeNode {
	return &fakeNode{topics: map[string]*fakeTopic{}, sessions: make(chan transport.Session, 16),
		frames: make(chan *wire.Command, 64), closed: make(chan error, 16)}
}

func (n *fakeNode) set(topic, epoch string, oldest, head uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.topics[topic] = &fakeTopic{epoch: epoch, head: head, oldest: oldest}
}

func msg(topic, epoch string, seq uint64) []byte {
	return wire.AppendMsg(nil, topic, epoch, seq, 1, []byte(fmt.Sprint(seq)))
}

func (n *fakeNode) History(ctx context.Context, topic string, since uint64, limit int) (*wire.History, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ft := n.topics[topic]
	if ft == nil {
		ft = &fakeTopic{epoch: "e0", oldest: 1}
		n.topics[topic] = ft
	}
	h := &wire.History{Topic: topic, Epoch: ft.epoch, Head: ft.head}
	if since < ft.head {
		h.Truncated = ft.oldest > since+1
		for seq := max(since+1, ft.oldest); seq <= ft.head && (limit <= 0 || len(h.Frames) < limit); seq++ {
			h.Frames = append(h.Frames, msg(topic, ft.epoch, seq))
		}
	}
	return h, nil
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

func serve(t *testing.T, cfg Config) (*fakeNode, *httptest.Server) {
	n := newFakeNode()
	cfg.Accept, cfg.History = n.Accept, n
	srv := httptest.NewServer(NewHandler(cfg))
	t.Cleanup(srv.Close)
	return n, srv
}

type answer struct {
	Messages  []json.RawMessage `json:"messages"`
	Cursor    string            `json:"cursor"`
	Truncated bool              `json:"truncated"`

	status int
	err    wire.ErrorBody
	pos    map[string]wire.Position
	seqs   []string
}

func get(t *testing.T, srv *httptest.Server, query string) *answer {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/v1/poll?" + query)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	a := &answer{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		require.NoError(t, json.Unmarshal(body, &a.err), "%s", body)
		return a
	}
	require.NoError(t, json.Unmarshal(body, a), "%s", body)
	require.NotNil(t, a.Messages, "messages is always an array: %s", body)
	c, err := wire.DecodeCursor(a.Cursor)
	require.NoError(t, err)
	a.pos = map[string]wire.Position{}
	for topic, p := range c.All() {
		a.pos[topic] = p
	}
	for _, m := range a.Messages {
		var f struct {
			Topic, Epoch string
			Seq          uint64
		}
		require.NoError(t, json.Unmarshal(m, &f))
		a.seqs = append(a.seqs, fmt.Sprintf("%s/%s/%d", f.Topic, f.Epoch, f.Seq))
	}
	return a
}

func cursor(t *testing.T, kv ...any) string {
	t.Helper()
	var c wire.Cursor
	for i := 0; i+2 < len(kv)+1; i += 3 {
		require.NoError(t, c.Set(kv[i].(string), wire.Position{Epoch: kv[i+1].(string), Seq: uint64(kv[i+2].(int))}))
	}
	return url.QueryEscape(c.String())
}

func TestAnswerAtOnce(t *testing.T) {
	n, srv := serve(t, Config{MaxMessages: 5})
	n.set("a", "e1", 1, 10)
	n.set("b", "e1", 1, 4)
	n.set("c", "e1", 1, 2)
	tests := []struct {
		name, query string
		seqs        []string
		pos         map[string]wire.Position
		truncated   bool
	}{
		{"after cursor; other topics start at head", "topic=a&topic=b&cursor=" + cursor(t, "a", "e1", 7, "z", "e", 1),
			[]string{"a/e1/8", "a/e1/9", "a/e1/10"}, map[string]wire.Position{"a": {Epoch: "e1", Seq: 10}, "b": {Epoch: "e1", Seq: 4}}, false},
		{"limit, topic by topic", "topic=a&topic=c&cursor=" + cursor(t, "a", "e1", 6, "c", "e1", 0),
			[]string{"a/e1/7", "a/e1/8", "a/e1/9", "a/e1/10", "c/e1/1"}, map[string]wire.Position{"a": {Epoch: "e1", Seq: 10}, "c": {Epoch: "e1", Seq: 1}}, false},
		{"trimmed", "topic=a&cursor=" + cursor(t, "a", "e1", 0),
			[]string{"a/e1/1", "a/e1/2", "a/e1/3", "a/e1/4", "a/e1/5"}, map[string]wire.Position{"a": {Epoch: "e1", Seq: 5}}, false},
		{"beyond head", "topic=b&cursor=" + cursor(t, "b", "e1", 99),
			[]string{}, map[string]wire.Position{"b": {Epoch: "e1", Seq: 4}}, true},
		{"other epoch", "topic=b&cursor=" + cursor(t, "b", "old", 99),
			[]string{"b/e1/1", "b/e1/2", "b/e1/3", "b/e1/4"}, map[string]wire.Position{"b": {Epoch: "e1", Seq: 4}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := get(t, srv, tt.query)
			require.Equal(t, http.StatusOK, a.status, "%+v", a.err)
			require.Equal(t, tt.seqs, append([]string{}, a.seqs...))
			require.Equal(t, tt.pos, a.pos)
			require.Equal(t, tt.truncated, a.Truncated)
		})
	}
	n.set("a", "e1", 8, 12)
	a := get(t, srv, "topic=a&cursor="+cursor(t, "a", "e1", 2))
	require.Equal(t, []string{"a/e1/8", "a/e1/9", "a/e1/10", "a/e1/11", "a/e1/12"}, a.seqs)
	require.True(t, a.Truncated, "messages 3..7 are gone")
	require.Empty(t, n.sessions, "answers at once never subscribe")
}

func TestWait(t *testing.T) {
	n, srv := serve(t, Config{})
	n.set("a", "e1", 1, 10)
	n.set("b", "e1", 1, 3)
	got := make(chan *answer, 1)
	go func() { got <- get(t, srv, "topic=a&topic=b&cursor="+cursor(t, "b", "e1", 3)) }()
	s := n.session(t)
	require.Equal(t, "poll", s.Info().Transport)
	require.Equal(t, &wire.Command{Op: wire.OpSub, ID: 1, Topic: "a", Since: &wire.Position{Epoch: "e1", Seq: 10}}, n.command(t),
		"no cursor: from the head")
	require.Equal(t, &wire.Command{Op: wire.OpSub, ID: 2, Topic: "b", Since: &wire.Position{Epoch: "e1", Seq: 3}}, n.command(t))
	require.NoError(t, s.Write(wire.AppendSubOK(nil, 1, "a", "e1", 10, wire.Recovered)))
	// A message published between the history read and the join comes
	// with the sub's answer.
	require.NoError(t, s.WriteBacklog([][]byte{wire.AppendSubOK(nil, 2, "b", "e1", 4, wire.Recovered), msg("b", "e1", 4)}))
	a := <-got
	require.Equal(t, []string{"b/e1/4"}, a.seqs)
	require.Equal(t, map[string]wire.Position{"a": {Epoch: "e1", Seq: 10}, "b": {Epoch: "e1", Seq: 4}}, a.pos)
	require.False(t, a.Truncated)
	select {
	case <-n.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the poll's session was not closed")
	}
	require.Error(t, s.Context().Err())
	require.ErrorIs(t, s.Write(msg("a", "e1", 11)), transport.ErrClosed)
}

func TestWaitEpochChanged(t *testing.T) {
	n, srv := serve(t, Config{})
	n.set("a", "e1", 1, 10)
	got := make(chan *answer, 1)
	go func() { got <- get(t, srv, "topic=a&cursor="+cursor(t, "a", "e1", 10)) }()
	s := n.session(t)
	n.command(t)
	// The topic restarts; the join finds the new epoch.
	n.set("a", "e2", 1, 2)
	require.NoError(t, s.Write(wire.AppendSubOK(nil, 1, "a", "e2", 2, wire.NotRecovered)))
	a := <-got
	require.Equal(t, []string{"a/e2/1", "a/e2/2"}, a.seqs, "the history is read again")
	require.True(t, a.Truncated)
	require.Equal(t, map[string]wire.Position{"a": {Epoch: "e2", Seq: 2}}, a.pos)
	<-n.closed
}

func TestWaitReset(t *testing.T) {
	n, srv := serve(t, Config{})
	n.set("a", "e1", 1, 10)
	got := make(chan *answer, 1)
	go func() { got <- get(t, srv, "topic=a&cursor="+cursor(t, "a", "e1", 10)) }()
	s := n.session(t)
	n.command(t)
	require.NoError(t, s.Write(wire.AppendSubOK(nil, 1, "a", "e1", 10, wire.Recovered)))
	n.set("a", "e2", 1, 1)
	require.NoError(t, s.WriteMany([][]byte{wire.AppendReset(nil, "a", "e2", 0), msg("a", "e2", 1)}))
	a := <-got
	require.Equal(t, []string{"a/e2/1"}, a.seqs)
	require.True(t, a.Truncated)
	<-n.closed
}

func TestWaitSubFails(t *testing.T) {
	n, srv := serve(t, Config{})
	got := make(chan *answer, 1)
	go func() { got <- get(t, srv, "topic=a") }()
	s := n.session(t)
	n.command(t)
	require.NoError(t, s.Write(wire.AppendError(nil, &wire.Error{Code: wire.CodeUnavailable, Message: "topic a is unavailable, try again", ID: 1})))
	a := <-got
	require.Equal(t, http.StatusServiceUnavailable, a.status)
	require.Equal(t, "unavailable", a.err.Error.Code)
	<-n.closed
}

func TestWaitBounded(t *testing.T) {
	n, srv := serve(t, Config{MaxPendingBytes: 200})
	n.set("a", "e1", 1, 0)
	got := make(chan *answer, 1)
	go func() { got <- get(t, srv, "topic=a") }()
	s := n.session(t)
	n.command(t)
	frames := [][]byte{wire.AppendSubOK(nil, 1, "a", "e1", 0, wire.Recovered)}
	for seq := uint64(1); seq <= 20; seq++ {
		frames = append(frames, msg("a", "e1", seq))
	}
	require.NoError(t, s.WriteMany(frames))
	a := <-got
	require.NotEmpty(t, a.seqs)
	require.Less(t, len(a.seqs), 20)
	require.Equal(t, uint64(len(a.seqs)), a.pos["a"].Seq, "the cursor covers only what the answer carries")
	<-n.closed
}

func TestServerCloses(t *testing.T) {
	n, srv := serve(t, Config{})
	got := make(chan *answer, 1)
	go func() { got <- get(t, srv, "topic=a") }()
	s := n.session(t)
	n.command(t)
	s.Close(transport.DisconnectShutdown)
	a := <-got
	require.Equal(t, http.StatusOK, a.status)
	require.Empty(t, a.seqs)
	require.Equal(t, map[string]wire.Position{"a": {Epoch: "e0", Seq: 0}}, a.pos)
	<-n.closed
}

func TestTimeout(t *testing.T) {
	n, srv := serve(t, Config{MaxTimeout: 300 * time.Millisecond, DefaultTimeout: 100 * time.Millisecond})
	for _, tt := range []struct {
		query    string
		min, max time.Duration
		waits    bool
	}{
		{"timeout=1000", 300 * time.Millisecond, 3 * time.Second, true},
		{"timeout=Inf", 300 * time.Millisecond, 3 * time.Second, true},
		{"", 100 * time.Millisecond, 250 * time.Millisecond, true},
		{"timeout=0.15", 150 * time.Millisecond, 280 * time.Millisecond, true},
		{"timeout=-5", 0, 100 * time.Millisecond, false},
		{"timeout=0", 0, 100 * time.Millisecond, false},
	} {
		t.Run(tt.query, func(t *testing.T) {
			start := time.Now()
			a := get(t, srv, "topic=a&"+tt.query)
			took := time.Since(start)
			require.Equal(t, http.StatusOK, a.status)
			require.Empty(t, a.seqs)
			require.GreaterOrEqual(t, took, tt.min)
			require.Less(t, took, tt.max)
			if tt.waits {
				n.session(t)
				n.command(t)
				<-n.closed
			}
			require.Empty(t, n.sessions)
		})
	}
}

func TestBadRequests(t *testing.T) {
	_, srv := serve(t, Config{})
	good := cursor(t, "a", "e", 1)
	for _, tt := range []struct{ name, query, msg string }{
		{"no topic", "", "topic is missing"},
		{"bad topic", "topic=%22", "topic has a byte"},
		{"malformed cursor", "topic=a&cursor=a.b", "cursor is not valid: not base64url"},
		{"foreign cursor", "topic=a&cursor=eyJhIjoxfQ", "cursor is not valid: truncated, altered or not made by a topicast server"},
		{"truncated cursor", "topic=a&cursor=" + good[:len(good)-1], "cursor is not valid"},
		{"timeout", "topic=a&timeout=soon", "timeout must be a number of seconds"},
		{"timeout NaN", "topic=a&timeout=NaN", "timeout must be a number of seconds"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := get(t, srv, tt.query)
			require.Equal(t, http.StatusBadRequest, a.status)
			require.Equal(t, "bad_request", a.err.Error.Code)
			require.Contains(t, a.err.Error.Message, tt.msg)
		})
	}
}
