package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// startServer runs a server in-process on a free port.
func startServer(t *testing.T, cfg server.Config) *server.Server {
	t.Helper()
	cfg.HTTPAddr = "127.0.0.1:0"
	srv, err := server.Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func wsURL(srv *server.Server) string { return "ws://" + srv.Addr() + "/ws" }

var httpClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// post sends a publish body and returns the status and body.
func post(t testing.TB, srv *server.Server, body string, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+srv.Addr()+"/v1/publish", bytes.NewBufferString(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func publish(t testing.TB, srv *server.Server, topic string, data string) wire.PublishResult {
	t.Helper()
	status, body := post(t, srv, fmt.Sprintf(`{"topic":%q,"data":%s}`, topic, data))
	require.Equal(t, http.StatusOK, status, "%s", body)
	var r wire.PublishResult
	require.NoError(t, json.Unmarshal(body, &r))
	return r
}

// subscriber is a WebSocket client that checks what it receives.
type subscriber struct {
	c      *testutil.WSClient
	topics map[string]uint64 // topic -> head at subscribe time

	mu   sync.Mutex
	last map[string]uint64 // topic -> last seq seen
	got  map[string]int
	errs []string
}

func newSubscriber(t testing.TB, ctx context.Context, url string, topics ...string) *subscriber {
	t.Helper()
	c, err := testutil.DialWS(ctx, url, 0)
	require.NoError(t, err)
	s := &subscriber{c: c, topics: make(map[string]uint64), last: make(map[string]uint64), got: make(map[string]int)}
	for i, topic := range topics {
		ok, err := c.Subscribe(topic, i+1, nil)
		require.NoError(t, err)
		require.Equal(t, "ok", ok.Op, ok.Raw)
		s.topics[topic] = ok.Seq
		s.last[topic] = ok.Seq
	}
	return s
}

func (s *subscriber) run() {
	s.c.Read(func(f []byte) {
		topic, seq, ok := testutil.MsgSeq(f)
		s.mu.Lock()
		defer s.mu.Unlock()
		if !ok {
			s.errs = append(s.errs, "unexpected frame "+string(f))
			return
		}
		if want := s.last[topic] + 1; seq != want {
			s.errs = append(s.errs, fmt.Sprintf("topic %s: seq %d after %d", topic, seq, s.last[topic]))
		}
		s.last[topic] = seq
		s.got[topic]++
	})
}

func (s *subscriber) count(topic string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[topic]
}
