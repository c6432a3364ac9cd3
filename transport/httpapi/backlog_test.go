package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// answeringBackend publishes everything at seq 1.
type answeringBackend struct{}

func (answeringBackend) Publish(_ context.Context, items []wire.PublishItem) ([]wire.PublishResult, error) {
	out := make([]wire.PublishResult, len(items))
	for i, it := range items {
		out[i] = wire.PublishResult{Topic: it.Topic, Epoch: "e", Seq: 1}
	}
	return out, nil
}

func (answeringBackend) History(context.Context, string, uint64, int) (*wire.History, error) {
	return nil, wire.Errorf(wire.CodeInternal, "no history")
}

func (answeringBackend) Ready() bool { return true }

// stuckConn never finishes a write until release is closed.
type stuckConn struct{ release chan struct{} }

func (c stuckConn) WriteFrames([][]byte) error    { <-c.release; return nil }
func (stuckConn) WriteClose(transport.Disconnect) {}
func (stuckConn) Abort()                          {}

// TestBacklogIsTheNodes gives one node a delivery backlog over MaxBacklog:
// its API holds publishes and answers 503 after BacklogWait, while the API
// of another node, or of none, publishes at once.
func TestBacklogIsTheNodes(t *testing.T) {
	behind := new(transport.NodeState)
	release := make(chan struct{})
	var o transport.Outbound
	o.Init(stuckConn{release}, transport.OutboundConfig{NodeState: behind})
	defer func() {
		close(release)
		o.Close(transport.DisconnectNormal)
		o.Wait()
	}()
	require.NoError(t, o.Write(make([]byte, 2048)))
	require.Equal(t, int64(2048), behind.PendingBytes())

	publish := func(node *transport.NodeState) (int, time.Duration) {
		mux := http.NewServeMux()
		New(Config{Backend: answeringBackend{}, MaxBacklog: 1024,
			BacklogWait: 200 * time.Millisecond, NodeState: node}).Register(mux)
		rec := httptest.NewRecorder()
		start := time.Now()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/publish", strings.NewReader(`{"topic":"t","data":1}`)))
		return rec.Code, time.Since(start)
	}
	code, took := publish(behind)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.GreaterOrEqual(t, took, 200*time.Millisecond)
	code, _ = publish(new(transport.NodeState))
	require.Equal(t, http.StatusOK, code)
	code, _ = publish(nil)
	require.Equal(t, http.StatusOK, code)
}
