// Package grpctest tests the gRPC API end to end: a real grpc-go client
// over h2c, and the Connect protocol, against one in-process server.
//
// The package's tests share one server, started before any gRPC client:
// protoactor's remote sets grpc-go's global logger (grpclog.SetLoggerV2)
// each time a node starts, which grpc-go's client goroutines read without
// a lock, so a node started after a grpc-go client ran is a data race
// under -race. That is why these tests are not in package test, whose
// tests each start their own nodes.
package grpctest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	topicastv1 "github.com/topicast/topicast/gen/topicast/v1"
	"github.com/topicast/topicast/gen/topicast/v1/topicastv1connect"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// grpcKey is the API key of the gRPC tests' server.
const grpcKey = "grpc-service-key"

// The gRPC tests call the service as any grpc-go program would without
// generated grpc-go stubs: by method name, with the generated messages.
const grpcService = "/topicast.v1.Publisher/"

var subscribeDesc = &grpc.StreamDesc{StreamName: "Subscribe", ServerStreams: true}

// grpcClient is a plain grpc-go client of srv over h2c.
func grpcClient(t *testing.T, srv *server.Server) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.Dial(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// withKey returns ctx carrying "authorization: Bearer key".
func withKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

func grpcPublish(ctx context.Context, conn *grpc.ClientConn, topic, data, key string) (*topicastv1.PublishResponse, error) {
	out := new(topicastv1.PublishResponse)
	err := conn.Invoke(ctx, grpcService+"Publish", &topicastv1.PublishRequest{Topic: topic, Data: []byte(data), Key: key}, out)
	return out, err
}

func grpcBatch(ctx context.Context, conn *grpc.ClientConn, msgs []*topicastv1.PublishRequest) (*topicastv1.PublishBatchResponse, error) {
	out := new(topicastv1.PublishBatchResponse)
	err := conn.Invoke(ctx, grpcService+"PublishBatch", &topicastv1.PublishBatchRequest{Messages: msgs}, out)
	return out, err
}

func grpcHistory(ctx context.Context, conn *grpc.ClientConn, topic string, since uint64) (*topicastv1.HistoryResponse, error) {
	out := new(topicastv1.HistoryResponse)
	err := conn.Invoke(ctx, grpcService+"History", &topicastv1.HistoryRequest{Topic: topic, Since: since}, out)
	return out, err
}

// grpcSubscribe opens a Subscribe stream; cancel ctx to end it.
func grpcSubscribe(t *testing.T, ctx context.Context, conn *grpc.ClientConn, req *topicastv1.SubscribeRequest) grpc.ClientStream {
	t.Helper()
	st, err := conn.NewStream(ctx, subscribeDesc, grpcService+"Subscribe")
	require.NoError(t, err)
	require.NoError(t, st.SendMsg(req))
	require.NoError(t, st.CloseSend())
	return st
}

func recv(t *testing.T, st grpc.ClientStream) *topicastv1.SubscribeResponse {
	t.Helper()
	ev := new(topicastv1.SubscribeResponse)
	require.NoError(t, st.RecvMsg(ev))
	return ev
}

var runs atomic.Int64

// prefix returns a topic prefix of the test's own: the tests share a
// server, and -count runs them again on it.
func prefix() string { return fmt.Sprintf("g%d.", runs.Add(1)) }

// srv is the package's server; TestMain starts it before any test.
var srv *server.Server

var httpClient = &http.Client{Timeout: 30 * time.Second}

func TestMain(m *testing.M) {
	var err error
	srv, err = server.Start(context.Background(), server.Config{
		HTTPAddr: "127.0.0.1:0", APIKeys: []string{grpcKey}, StatsInterval: -1,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := srv.Close(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "closing the server:", err)
		code = 1
	}
	if code == 0 {
		httpClient.CloseIdleConnections()
		if err := goleak.Find(testutil.LeakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// post sends a body to POST /v1/publish with the API key.
func post(t *testing.T, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+srv.Addr()+"/v1/publish", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+grpcKey)
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestGRPCPublishHistorySubscribe drives every method with grpc-go over
// h2c: a publish, a batch whose retry with the same keys answers the same
// seqs, history, and Subscribe, live and recovering with since; a
// WebSocket subscriber on the same port gets what gRPC publishes.
func TestGRPCPublishHistorySubscribe(t *testing.T) {
	p := prefix()
	conn := grpcClient(t, srv)
	ctx, cancel := context.WithTimeout(withKey(context.Background(), grpcKey), time.Minute)
	defer cancel()

	ws, err := testutil.DialWS(ctx, "ws://"+srv.Addr()+"/ws", 0)
	require.NoError(t, err)
	defer ws.Close()
	ok, err := ws.Subscribe(p+"ws", 1, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", ok.Op, ok.Raw)

	res, err := grpcPublish(ctx, conn, p+"ws", `{"n": 1}`, "")
	require.NoError(t, err)
	require.Equal(t, p+"ws", res.GetTopic())
	require.Equal(t, uint64(1), res.GetSeq())
	require.NotEmpty(t, res.GetEpoch())
	got, err := ws.ReadUntil(func(f testutil.Frame) bool { return f.Op == wire.OpMsg }, nil)
	require.NoError(t, err, "the WebSocket subscriber on the same port gets the gRPC publish")
	require.Equal(t, uint64(1), got.Seq)

	msgs := []*topicastv1.PublishRequest{
		{Topic: p + "batch", Data: []byte(`"a"`), Key: "k1"},
		{Topic: p + "other", Data: []byte(`"b"`), Key: "k2"},
		{Topic: p + "batch", Data: []byte(`"c"`), Key: "k3"},
	}
	first, err := grpcBatch(ctx, conn, msgs)
	require.NoError(t, err)
	require.Len(t, first.GetResults(), 3)
	require.Equal(t, []uint64{1, 1, 2}, []uint64{first.GetResults()[0].GetSeq(), first.GetResults()[1].GetSeq(), first.GetResults()[2].GetSeq()})
	again, err := grpcBatch(ctx, conn, msgs)
	require.NoError(t, err)
	for i := range msgs {
		require.Equal(t, first.GetResults()[i].GetSeq(), again.GetResults()[i].GetSeq(), "a retry with the same keys answers the first results")
		require.Equal(t, first.GetResults()[i].GetEpoch(), again.GetResults()[i].GetEpoch())
	}

	h, err := grpcHistory(ctx, conn, p+"batch", 0)
	require.NoError(t, err)
	require.Equal(t, uint64(2), h.GetHead(), "the retry published nothing")
	require.Len(t, h.GetMessages(), 2)
	require.Equal(t, `"a"`, string(h.GetMessages()[0].GetData()))
	require.Equal(t, uint64(2), h.GetMessages()[1].GetSeq())
	h, err = grpcHistory(ctx, conn, p+"batch", 1)
	require.NoError(t, err)
	require.Len(t, h.GetMessages(), 1, "after since")

	// Live: Subscribed with the head, then what is published, by gRPC or
	// by POST /v1/publish alike.
	subCtx, subCancel := context.WithCancel(ctx)
	st := grpcSubscribe(t, subCtx, conn, &topicastv1.SubscribeRequest{Topic: p + "batch"})
	sub := recv(t, st).GetSubscribed()
	require.NotNil(t, sub)
	require.Equal(t, uint64(2), sub.GetSeq())
	require.False(t, sub.GetRecovered())
	_, err = grpcPublish(ctx, conn, p+"batch", `"d"`, "")
	require.NoError(t, err)
	code, body := post(t, `{"topic":"`+p+`batch","data":"e"}`)
	require.Equal(t, http.StatusOK, code, body)
	for _, want := range []struct {
		seq  uint64
		data string
	}{{3, `"d"`}, {4, `"e"`}} {
		m := recv(t, st).GetMessage()
		require.NotNil(t, m)
		require.Equal(t, want.seq, m.GetSeq())
		require.Equal(t, sub.GetEpoch(), m.GetEpoch())
		require.Equal(t, want.data, string(m.GetData()))
		require.NotZero(t, m.GetTs())
	}
	subCancel()

	// Recovery: since the second message, the third and fourth come
	// first, then live ones; a foreign epoch is not recovered.
	st = grpcSubscribe(t, ctx, conn, &topicastv1.SubscribeRequest{Topic: p + "batch", Since: &topicastv1.Position{Epoch: sub.GetEpoch(), Seq: 2}})
	sub = recv(t, st).GetSubscribed()
	require.True(t, sub.GetRecovered())
	require.Equal(t, uint64(4), sub.GetSeq())
	require.Equal(t, uint64(3), recv(t, st).GetMessage().GetSeq())
	require.Equal(t, uint64(4), recv(t, st).GetMessage().GetSeq())
	_, err = grpcPublish(ctx, conn, p+"batch", `"f"`, "")
	require.NoError(t, err)
	require.Equal(t, uint64(5), recv(t, st).GetMessage().GetSeq())

	lostCtx, lostCancel := context.WithCancel(ctx)
	defer lostCancel()
	st = grpcSubscribe(t, lostCtx, conn, &topicastv1.SubscribeRequest{Topic: p + "batch", Since: &topicastv1.Position{Epoch: "another", Seq: 2}})
	sub = recv(t, st).GetSubscribed()
	require.False(t, sub.GetRecovered(), "another epoch cannot be recovered")
	require.Equal(t, uint64(5), sub.GetSeq())
	lostCancel()

}

// TestGRPCBadInput checks the status code of every bad input of
// docs/security.md's gRPC table, with grpc-go.
func TestGRPCBadInput(t *testing.T) {
	p := prefix()
	conn := grpcClient(t, srv)
	base, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx := withKey(base, grpcKey)

	oversize := `"` + strings.Repeat("x", 70<<10) + `"` // over the default --max-message, 64 KiB
	tests := []struct {
		name  string
		ctx   context.Context
		topic string
		data  string
		want  codes.Code
	}{
		{"invalid topic", ctx, "bad topic!", `1`, codes.InvalidArgument},
		{"data not JSON", ctx, p + "bad", `{`, codes.InvalidArgument},
		{"oversize", ctx, p + "bad", oversize, codes.InvalidArgument},
		{"sys topic", ctx, "sys:stats", `1`, codes.PermissionDenied},
		{"missing key", base, p + "bad", `1`, codes.Unauthenticated},
		{"wrong key", withKey(base, "not-the-key"), p + "bad", `1`, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := grpcPublish(tt.ctx, conn, tt.topic, tt.data, "")
			require.Equal(t, tt.want, status.Code(err), "%v", err)
			_, err = grpcBatch(tt.ctx, conn, []*topicastv1.PublishRequest{
				{Topic: p + "fine", Data: []byte(`1`)}, {Topic: tt.topic, Data: []byte(tt.data)},
			})
			require.Equal(t, tt.want, status.Code(err), "the batch: %v", err)
		})
	}
	h, err := grpcHistory(ctx, conn, p+"fine", 0)
	require.NoError(t, err)
	require.Zero(t, h.GetHead(), "a refused batch publishes nothing")

	_, err = grpcHistory(ctx, conn, "bad topic!", 0)
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = grpcHistory(base, conn, p+"fine", 0)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	_, err = grpcHistory(withKey(base, "not-the-key"), conn, p+"fine", 0)
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	for name, c := range map[string]struct {
		ctx  context.Context
		req  *topicastv1.SubscribeRequest
		want codes.Code
	}{
		"subscribe invalid topic":  {ctx, &topicastv1.SubscribeRequest{Topic: "bad topic!"}, codes.InvalidArgument},
		"subscribe without epoch":  {ctx, &topicastv1.SubscribeRequest{Topic: p + "fine", Since: &topicastv1.Position{Seq: 1}}, codes.InvalidArgument},
		"subscribe missing key":    {base, &topicastv1.SubscribeRequest{Topic: p + "fine"}, codes.Unauthenticated},
		"subscribe wrong key":      {withKey(base, "not-the-key"), &topicastv1.SubscribeRequest{Topic: p + "fine"}, codes.PermissionDenied},
		"subscribe sys topic, key": {ctx, &topicastv1.SubscribeRequest{Topic: "sys:stats"}, codes.OK},
	} {
		sctx, scancel := context.WithCancel(c.ctx)
		st := grpcSubscribe(t, sctx, conn, c.req)
		err := st.RecvMsg(new(topicastv1.SubscribeResponse))
		require.Equal(t, c.want, status.Code(err), "%s: %v", name, err)
		scancel()
	}

	// A deadline that expires mid-batch: DeadlineExceeded, and the batch's
	// outcome is that of an interrupted POST /v1/publish: each topic's
	// messages may or may not be published, and a retry with the same keys
	// completes it without publishing any twice.
	const topics = 200
	batch := make([]*topicastv1.PublishRequest, topics)
	for i := range batch {
		batch[i] = &topicastv1.PublishRequest{Topic: fmt.Sprintf("%sdl.%d", p, i), Data: []byte(`1`), Key: "dl"}
	}
	dctx, dcancel := context.WithTimeout(ctx, time.Millisecond)
	_, err = grpcBatch(dctx, conn, batch)
	dcancel()
	require.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)
	res, err := grpcBatch(ctx, conn, batch)
	require.NoError(t, err)
	for i, r := range res.GetResults() {
		require.Equal(t, uint64(1), r.GetSeq(), "topic %d: published once", i)
	}
}

// TestGRPCConnectProtocol makes one call with the Connect protocol (JSON
// over HTTP/1.1) to the same handler that grpc-go reaches.
func TestGRPCConnectProtocol(t *testing.T) {
	p := prefix()
	c := topicastv1connect.NewPublisherClient(httpClient, "http://"+srv.Addr(), connect.WithProtoJSON())
	req := connect.NewRequest(&topicastv1.PublishRequest{Topic: p + "connect", Data: []byte(`{"via":"connect"}`)})
	req.Header().Set("Authorization", "Bearer "+grpcKey)
	res, err := c.Publish(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, uint64(1), res.Msg.GetSeq())

	req = connect.NewRequest(&topicastv1.PublishRequest{Topic: "sys:x", Data: []byte(`1`)})
	req.Header().Set("Authorization", "Bearer "+grpcKey)
	_, err = c.Publish(context.Background(), req)
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err))
}

// TestGRPCWebProtocol makes the calls a browser's gRPC-Web client makes
// (binary protobuf over HTTP/1.1, trailers in the body) to the same
// handler, errors included.
func TestGRPCWebProtocol(t *testing.T) {
	p := prefix()
	c := topicastv1connect.NewPublisherClient(httpClient, "http://"+srv.Addr(), connect.WithGRPCWeb())
	req := connect.NewRequest(&topicastv1.PublishBatchRequest{Messages: []*topicastv1.PublishRequest{
		{Topic: p + "web", Data: []byte(`1`)}, {Topic: p + "web", Data: []byte(`2`)},
	}})
	req.Header().Set("Authorization", "Bearer "+grpcKey)
	res, err := c.PublishBatch(context.Background(), req)
	require.NoError(t, err)
	require.Len(t, res.Msg.GetResults(), 2)
	require.Equal(t, uint64(2), res.Msg.GetResults()[1].GetSeq())

	req = connect.NewRequest(&topicastv1.PublishBatchRequest{Messages: []*topicastv1.PublishRequest{
		{Topic: p + "web", Data: []byte(`{`)},
	}})
	req.Header().Set("Authorization", "Bearer "+grpcKey)
	_, err = c.PublishBatch(context.Background(), req)
	require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
}
