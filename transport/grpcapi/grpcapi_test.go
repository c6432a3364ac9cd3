package grpcapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	topicastv1 "github.com/topicast/topicast/gen/topicast/v1"
	"github.com/topicast/topicast/gen/topicast/v1/topicastv1connect"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakePublisher stands in for httpapi.API: one API key, "good", whose
// check answers as CheckAPIKey does; publish is the node's answer.
type fakePublisher struct {
	keys    bool
	mu      sync.Mutex
	items   [][]wire.PublishItem
	publish func(ctx context.Context, items []wire.PublishItem) ([]wire.PublishResult, error)
}

func (p *fakePublisher) APIKeysRequired() bool { return p.keys }

func (p *fakePublisher) CheckAPIKey(authorization string) (string, error) {
	if !p.keys {
		return "", nil
	}
	key, ok := strings.CutPrefix(authorization, "Bearer ")
	switch {
	case !ok || key == "":
		return "", wire.Errorf(wire.CodeUnauthorized, "publishing needs Authorization: Bearer <api key>")
	case key != "good":
		return "", wire.Errorf(wire.CodeForbidden, "the api key is not valid")
	}
	return "0", nil
}

func (p *fakePublisher) AdmitPublish(_ context.Context, authorization string) (string, error) {
	return p.CheckAPIKey(authorization)
}

func (p *fakePublisher) Publish(ctx context.Context, _ string, items []wire.PublishItem) ([]wire.PublishResult, error) {
	p.mu.Lock()
	p.items = append(p.items, items)
	p.mu.Unlock()
	if p.publish != nil {
		return p.publish(ctx, items)
	}
	out := make([]wire.PublishResult, len(items))
	for i, it := range items {
		out[i] = wire.PublishResult{Topic: it.Topic, Epoch: "e1", Seq: uint64(i + 1)}
	}
	return out, nil
}

type historyFunc func(ctx context.Context, topic string, since uint64, limit int) (*wire.History, error)

func (f historyFunc) History(ctx context.Context, topic string, since uint64, limit int) (*wire.History, error) {
	return f(ctx, topic, since, limit)
}

// newClient serves cfg over HTTP/1.1 and returns a Connect protocol
// client of it, with key as its API key ("" for none).
func newClient(t *testing.T, cfg Config, key string) topicastv1connect.PublisherClient {
	t.Helper()
	if cfg.History == nil {
		cfg.History = historyFunc(func(context.Context, string, uint64, int) (*wire.History, error) {
			return &wire.History{}, nil
		})
	}
	if cfg.Accept == nil {
		cfg.Accept = func(s transport.Session) transport.Handler {
			s.Close(transport.DisconnectShutdown)
			return nopHandler{}
		}
	}
	mux := http.NewServeMux()
	path, h := New(cfg).Handler()
	require.Equal(t, "/topicast.v1.Publisher/", path)
	mux.Handle(path, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(srv.Client().CloseIdleConnections)
	var opts []connect.ClientOption
	if key != "" {
		opts = append(opts, connect.WithInterceptors(bearer(key)))
	}
	return topicastv1connect.NewPublisherClient(srv.Client(), srv.URL, opts...)
}

// bearer sets "authorization: Bearer key" on every call.
func bearer(key string) connect.Interceptor {
	return authInterceptor("Bearer " + key)
}

type authInterceptor string

func (a authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", string(a))
		return next(ctx, req)
	}
}

func (a authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", string(a))
		return conn
	}
}

func (a authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

type nopHandler struct{}

func (nopHandler) HandleFrame([]byte) {}
func (nopHandler) HandleClosed(error) {}

func code(err error) connect.Code { return connect.CodeOf(err) }

// TestPublishErrors checks each bad input's status and that nothing bad
// reaches the node.
func TestPublishErrors(t *testing.T) {
	p := &fakePublisher{keys: true}
	cfg := Config{Publisher: p, MaxMessage: 64}
	good := newClient(t, cfg, "good")
	ctx := context.Background()
	pub := func(c topicastv1connect.PublisherClient, topic, data string) error {
		_, err := c.Publish(ctx, connect.NewRequest(&topicastv1.PublishRequest{Topic: topic, Data: []byte(data)}))
		return err
	}
	res, err := good.Publish(ctx, connect.NewRequest(&topicastv1.PublishRequest{Topic: "a", Data: []byte(`{ "x": 1 }`), Key: "k"}))
	require.NoError(t, err)
	require.Equal(t, "e1", res.Msg.GetEpoch())
	require.Equal(t, uint64(1), res.Msg.GetSeq())
	require.Equal(t, []wire.PublishItem{{Topic: "a", Data: []byte(`{"x":1}`), Key: "k"}}, p.items[0], "data compacted, key kept")

	tests := []struct {
		name        string
		client      topicastv1connect.PublisherClient
		topic, data string
		want        connect.Code
		wireCode    string
	}{
		{"invalid topic", good, "a b", `1`, connect.CodeInvalidArgument, "bad_request"},
		{"empty topic", good, "", `1`, connect.CodeInvalidArgument, "bad_request"},
		{"data not JSON", good, "a", `{`, connect.CodeInvalidArgument, "bad_request"},
		{"oversize", good, "a", `"` + strings.Repeat("x", 70) + `"`, connect.CodeInvalidArgument, "too_large"},
		{"sys topic", good, "sys:stats", `1`, connect.CodePermissionDenied, "forbidden"},
		{"missing key", newClient(t, cfg, ""), "a", `1`, connect.CodeUnauthenticated, "unauthorized"},
		{"wrong key", newClient(t, cfg, "bad"), "a", `1`, connect.CodePermissionDenied, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pub(tt.client, tt.topic, tt.data)
			require.Equal(t, tt.want, code(err), "%v", err)
			var ce *connect.Error
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tt.wireCode, ce.Meta().Get(ErrorCodeKey))
		})
	}
	require.Len(t, p.items, 1, "no bad publish reached the node")
}

// TestPublishBatch checks a batch's answer order and that one bad message
// refuses the whole batch, naming it.
func TestPublishBatch(t *testing.T) {
	p := &fakePublisher{}
	c := newClient(t, Config{Publisher: p, MaxMessage: 64}, "")
	ctx := context.Background()
	msgs := []*topicastv1.PublishRequest{{Topic: "a", Data: []byte(`1`)}, {Topic: "b", Data: []byte(`2`), Key: "k"}}
	res, err := c.PublishBatch(ctx, connect.NewRequest(&topicastv1.PublishBatchRequest{Messages: msgs}))
	require.NoError(t, err)
	require.Len(t, res.Msg.GetResults(), 2)
	require.Equal(t, "b", res.Msg.GetResults()[1].GetTopic())
	require.Equal(t, uint64(2), res.Msg.GetResults()[1].GetSeq())

	bad := append(msgs, &topicastv1.PublishRequest{Topic: "sys:x", Data: []byte(`1`)})
	_, err = c.PublishBatch(ctx, connect.NewRequest(&topicastv1.PublishBatchRequest{Messages: bad}))
	require.Equal(t, connect.CodePermissionDenied, code(err))
	require.Contains(t, err.Error(), "messages[2]: ")
	_, err = c.PublishBatch(ctx, connect.NewRequest(&topicastv1.PublishBatchRequest{}))
	require.Equal(t, connect.CodeInvalidArgument, code(err), "an empty batch")
	require.Len(t, p.items, 1)
}

// TestPublishStatuses checks how the node's failures map: unavailable,
// rate limited (with retry-after), and a deadline that expires while the
// node publishes a batch.
func TestPublishStatuses(t *testing.T) {
	ctx := context.Background()
	batch := &topicastv1.PublishBatchRequest{Messages: []*topicastv1.PublishRequest{{Topic: "a", Data: []byte(`1`)}, {Topic: "b", Data: []byte(`1`)}}}

	p := &fakePublisher{publish: func(context.Context, []wire.PublishItem) ([]wire.PublishResult, error) {
		return nil, wire.Errorf(wire.CodeUnavailable, "topic a did not answer in time, try again")
	}}
	_, err := newClient(t, Config{Publisher: p}, "").PublishBatch(ctx, connect.NewRequest(batch))
	require.Equal(t, connect.CodeUnavailable, code(err))

	p = &fakePublisher{publish: func(context.Context, []wire.PublishItem) ([]wire.PublishResult, error) {
		return nil, rateLimited{wire.Errorf(wire.CodeRateLimited, "over")}
	}}
	_, err = newClient(t, Config{Publisher: p}, "").PublishBatch(ctx, connect.NewRequest(batch))
	require.Equal(t, connect.CodeResourceExhausted, code(err))
	var ce *connect.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "2", ce.Meta().Get("retry-after"), "1.5 s rounds up")

	// The node's answer to a deadline that passed while topics were
	// answering (cluster.Node.Publish): unavailable, which the call's
	// expired deadline turns into DeadlineExceeded.
	started := make(chan struct{})
	p = &fakePublisher{publish: func(ctx context.Context, _ []wire.PublishItem) ([]wire.PublishResult, error) {
		close(started)
		<-ctx.Done()
		return nil, wire.Errorf(wire.CodeUnavailable, "topic a did not answer in time: the message may have been published (publish with a key to retry safely)")
	}}
	c := newClient(t, Config{Publisher: p}, "")
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = c.PublishBatch(dctx, connect.NewRequest(batch))
	<-started
	require.Equal(t, connect.CodeDeadlineExceeded, code(err), "%v", err)
}

// TestStatusOfExpiredDeadline checks the server side of the mapping
// alone: the client above may see its own deadline first.
func TestStatusOfExpiredDeadline(t *testing.T) {
	s := New(Config{Publisher: &fakePublisher{}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	err := s.status(ctx, wire.Errorf(wire.CodeUnavailable, "topic a did not answer in time"))
	require.Equal(t, connect.CodeDeadlineExceeded, code(err))
	err = s.status(context.Background(), wire.Errorf(wire.CodeUnavailable, "topic a did not answer in time"))
	require.Equal(t, connect.CodeUnavailable, code(err))
	err = s.status(context.Background(), errors.New("secret details"))
	require.Equal(t, connect.CodeInternal, code(err))
	require.NotContains(t, err.Error(), "secret", "unknown errors' details go to logs only")
}

// rateLimited is what httpapi.RateLimitedError looks like to the service.
type rateLimited struct{ err *wire.Error }

func (r rateLimited) Error() string           { return r.err.Error() }
func (rateLimited) RetryAfter() time.Duration { return 1500 * time.Millisecond }
func (r rateLimited) Unwrap() error           { return r.err }

// TestHistory checks the answer's shape, the limit's bounds and who may
// read.
func TestHistory(t *testing.T) {
	var gotLimit int
	frames := [][]byte{wire.AppendMsg(nil, "a", "e1", 3, 1700, []byte(`{"x":1}`))}
	hist := historyFunc(func(_ context.Context, topic string, since uint64, limit int) (*wire.History, error) {
		gotLimit = limit
		return &wire.History{Topic: topic, Epoch: "e1", Head: 3, Frames: frames}, nil
	})
	p := &fakePublisher{keys: true}
	tokens := func(token string, topics []string) error {
		switch {
		case token == "":
			return wire.Errorf(wire.CodeUnauthorized, "token missing")
		case token != "tok-a" || topics[0] != "a":
			return wire.Errorf(wire.CodeForbidden, "not allowed")
		}
		return nil
	}
	ctx := context.Background()
	read := func(c topicastv1connect.PublisherClient, topic string, limit uint32) (*topicastv1.HistoryResponse, error) {
		res, err := c.History(ctx, connect.NewRequest(&topicastv1.HistoryRequest{Topic: topic, Since: 2, Limit: limit}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}
	keyed := Config{Publisher: p, History: hist}
	h, err := read(newClient(t, keyed, "good"), "a", 0)
	require.NoError(t, err)
	require.Equal(t, DefaultHistoryLimit, gotLimit)
	require.Equal(t, uint64(3), h.GetHead())
	require.Len(t, h.GetMessages(), 1)
	m := h.GetMessages()[0]
	require.Equal(t, "a", m.GetTopic())
	require.Equal(t, uint64(3), m.GetSeq())
	require.Equal(t, int64(1700), m.GetTs())
	require.JSONEq(t, `{"x":1}`, string(m.GetData()))
	_, err = read(newClient(t, keyed, "good"), "a", 5000)
	require.NoError(t, err)
	require.Equal(t, MaxHistoryLimit, gotLimit)

	_, err = read(newClient(t, keyed, "good"), "a b", 0)
	require.Equal(t, connect.CodeInvalidArgument, code(err))
	_, err = read(newClient(t, keyed, ""), "a", 0)
	require.Equal(t, connect.CodeUnauthenticated, code(err), "keys and no tokens: the key is required")
	_, err = read(newClient(t, keyed, "bad"), "a", 0)
	require.Equal(t, connect.CodePermissionDenied, code(err))

	withTokens := Config{Publisher: p, History: hist, AuthorizeToken: tokens}
	_, err = read(newClient(t, withTokens, "good"), "b", 0)
	require.NoError(t, err, "an API key reads every topic")
	_, err = read(newClient(t, withTokens, "tok-a"), "a", 0)
	require.NoError(t, err, "a client token for the topic")
	_, err = read(newClient(t, withTokens, "tok-a"), "b", 0)
	require.Equal(t, connect.CodePermissionDenied, code(err))
	_, err = read(newClient(t, withTokens, ""), "a", 0)
	require.Equal(t, connect.CodeUnauthenticated, code(err))
}
