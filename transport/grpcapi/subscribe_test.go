package grpcapi

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	topicastv1 "github.com/topicast/topicast/gen/topicast/v1"
	"github.com/topicast/topicast/gen/topicast/v1/topicastv1connect"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// fakeNode answers each session's sub command in the actors' place.
type fakeNode struct {
	cmds   chan *wire.Command
	sess   chan transport.Session
	closed chan error
}

func newFakeNode() *fakeNode {
	return &fakeNode{cmds: make(chan *wire.Command, 4), sess: make(chan transport.Session, 4), closed: make(chan error, 4)}
}

func (n *fakeNode) accept(s transport.Session) transport.Handler {
	n.sess <- s
	return &fakeConn{n: n}
}

type fakeConn struct{ n *fakeNode }

func (c *fakeConn) HandleFrame(f []byte) {
	cmd, err := wire.DecodeCommand(f, 0)
	if err == nil {
		c.n.cmds <- cmd
	}
}

func (c *fakeConn) HandleClosed(err error) { c.n.closed <- err }

type streamClient = connect.ServerStreamForClient[topicastv1.SubscribeResponse]

// subscribe calls Subscribe in the background: the Connect client returns
// once the response headers come, with the first event, which the test
// sends.
func subscribe(ctx context.Context, t *testing.T, c topicastv1connect.PublisherClient, req *topicastv1.SubscribeRequest) <-chan *streamClient {
	out := make(chan *streamClient, 1)
	go func() {
		st, err := c.Subscribe(ctx, connect.NewRequest(req))
		if err != nil {
			t.Error(err)
			close(out)
			return
		}
		t.Cleanup(func() { _ = st.Close() })
		out <- st
	}()
	return out
}

func recvEvent(t *testing.T, st *connect.ServerStreamForClient[topicastv1.SubscribeResponse]) *topicastv1.SubscribeResponse {
	t.Helper()
	require.True(t, st.Receive(), "stream ended: %v", st.Err())
	return st.Msg()
}

// TestSubscribe checks that a Subscribe is a session given the WebSocket
// sub command (since included), and that its frames become events: the
// ok with recovered, a recovered and a live message, a reset; then that
// cancelling the call closes the session.
func TestSubscribe(t *testing.T) {
	n := newFakeNode()
	c := newClient(t, Config{Publisher: &fakePublisher{keys: true}, Accept: n.accept}, "good")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stc := subscribe(ctx, t, c, &topicastv1.SubscribeRequest{
		Topic: "a", Since: &topicastv1.Position{Epoch: "e1", Seq: 1},
	})
	sess := <-n.sess
	require.Equal(t, "grpc", sess.Info().Transport)
	require.True(t, sess.Info().Service, "an API key opened it")
	cmd := <-n.cmds
	require.Equal(t, wire.OpSub, cmd.Op)
	require.Equal(t, "a", cmd.Topic)
	require.Equal(t, &wire.Position{Epoch: "e1", Seq: 1}, cmd.Since)

	require.NoError(t, sess.Write(wire.AppendSubOK(nil, cmd.ID, "a", "e1", 2, wire.Recovered)))
	require.NoError(t, sess.WriteBacklog([][]byte{wire.AppendMsg(nil, "a", "e1", 2, 100, []byte(`"two"`))}))
	require.NoError(t, sess.Write(wire.AppendMsg(nil, "a", "e1", 3, 101, []byte(`"three"`))))
	require.NoError(t, sess.Write(wire.AppendReset(nil, "a", "e2", 0)))

	st := <-stc
	sub := recvEvent(t, st).GetSubscribed()
	require.NotNil(t, sub)
	require.Equal(t, &topicastv1.Subscribed{Topic: "a", Epoch: "e1", Seq: 2, Recovered: true}, &topicastv1.Subscribed{
		Topic: sub.GetTopic(), Epoch: sub.GetEpoch(), Seq: sub.GetSeq(), Recovered: sub.GetRecovered()})
	for _, want := range []struct {
		seq  uint64
		data string
	}{{2, `"two"`}, {3, `"three"`}} {
		m := recvEvent(t, st).GetMessage()
		require.NotNil(t, m)
		require.Equal(t, "a", m.GetTopic())
		require.Equal(t, "e1", m.GetEpoch())
		require.Equal(t, want.seq, m.GetSeq(), "in order, the recovered one first")
		require.Equal(t, want.data, string(m.GetData()))
	}
	r := recvEvent(t, st).GetReset_()
	require.NotNil(t, r)
	require.Equal(t, "e2", r.GetEpoch())

	cancel()
	select {
	case <-n.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the call did not close the session")
	}
}

// TestSubscribeEnds checks the statuses that end a stream: the sub's
// error answer, the node's shutdown, a slow consumer; and the bad
// requests refused before any session.
func TestSubscribeEnds(t *testing.T) {
	n := newFakeNode()
	c := newClient(t, Config{Publisher: &fakePublisher{}, Accept: n.accept}, "")
	ctx := context.Background()
	open := func(req *topicastv1.SubscribeRequest) <-chan *streamClient { return subscribe(ctx, t, c, req) }
	drain := func(stc <-chan *streamClient) error {
		st := <-stc
		for st.Receive() {
		}
		return st.Err()
	}

	st := open(&topicastv1.SubscribeRequest{Topic: "a"})
	sess := <-n.sess
	cmd := <-n.cmds
	require.Nil(t, cmd.Since)
	require.NoError(t, sess.Write(wire.AppendError(nil, &wire.Error{Code: wire.CodeUnavailable, Message: "try again", ID: cmd.ID})))
	require.Equal(t, connect.CodeUnavailable, code(drain(st)))
	<-n.closed

	st = open(&topicastv1.SubscribeRequest{Topic: "a"})
	sess = <-n.sess
	<-n.cmds
	sess.Close(transport.DisconnectShutdown)
	require.Equal(t, connect.CodeUnavailable, code(drain(st)))
	<-n.closed

	st = open(&topicastv1.SubscribeRequest{Topic: "a"})
	sess = <-n.sess
	<-n.cmds
	sess.Close(transport.DisconnectSlow)
	require.Equal(t, connect.CodeResourceExhausted, code(drain(st)))
	<-n.closed

	for name, req := range map[string]*topicastv1.SubscribeRequest{
		"bad topic":           {Topic: "a b"},
		"since without epoch": {Topic: "a", Since: &topicastv1.Position{Seq: 3}},
		"bad epoch":           {Topic: "a", Since: &topicastv1.Position{Epoch: "a b", Seq: 3}},
	} {
		require.Equal(t, connect.CodeInvalidArgument, code(drain(open(req))), name)
	}
	require.Empty(t, n.sess, "no session for a bad request")
}
