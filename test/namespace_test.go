package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
)

// Namespaces from the outside: /v1/info lists them with their effective
// options, each topic's max_message holds on POST /v1/publish and on a
// client's pub (one publish path), client_publish false refuses clients
// but not services, and history follows the namespace.
func TestNamespaces(t *testing.T) {
	no := false
	srv := startServer(t, server.Config{StatsInterval: -1, PublishRate: -1, Node: cluster.Config{
		MaxMessage: 1024,
		Topic: actors.TopicConfig{HistorySize: 20, Namespaces: actors.Namespaces{
			{Pattern: "metrics.*", HistorySize: -1, ClientPublish: &no},
			{Pattern: "board.*", HistorySize: 3, MaxMessage: 8192, Latest: &no},
		}},
	}})

	resp, err := httpClient.Get("http://" + srv.Addr() + "/v1/info")
	require.NoError(t, err)
	var info struct{ Namespaces []server.NamespaceInfo }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&info))
	resp.Body.Close()
	require.Equal(t, []server.NamespaceInfo{
		{Pattern: "metrics.*", HistorySize: 0, HistoryTTL: "5m0s", MaxMessage: 1024, Latest: true, Delta: true, Datagram: true, ClientPublish: false},
		{Pattern: "board.*", HistorySize: 3, HistoryTTL: "5m0s", MaxMessage: 8192, Latest: false, Delta: true, Datagram: true, ClientPublish: true},
	}, info.Namespaces)

	doc := `"` + strings.Repeat("x", 4000) + `"`
	status, body := post(t, srv, `{"topic":"board.1","data":`+doc+`}`)
	require.Equal(t, http.StatusOK, status, "%s", body)
	status, body = post(t, srv, `{"topic":"chat","data":`+doc+`}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, status, "%s", body)
	require.Contains(t, string(body), "--max-message")
	status, body = post(t, srv, `{"messages":[{"topic":"board.1","data":1},{"topic":"chat","data":`+doc+`}]}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, status, "a batch is refused whole: %s", body)

	ctx := context.Background()
	c, err := testutil.DialWS(ctx, wsURL(srv), 0)
	require.NoError(t, err)
	defer c.Close()
	ask := func(id int, frame string) testutil.Frame {
		t.Helper()
		require.NoError(t, c.Send(frame))
		f, err := c.ReadUntil(func(f testutil.Frame) bool { return f.ID == uint64(id) }, nil)
		require.NoError(t, err)
		return f
	}
	require.Equal(t, "ok", ask(1, `{"op":"pub","id":1,"topic":"board.2","data":`+doc+`}`).Op)
	require.Equal(t, "too_large", ask(2, `{"op":"pub","id":2,"topic":"chat","data":`+doc+`}`).Code)
	require.Equal(t, "forbidden", ask(3, `{"op":"pub","id":3,"topic":"metrics.cpu","data":1}`).Code)
	require.Equal(t, "bad_request", ask(4, `{"op":"sub","id":4,"topic":"board.2","mode":"latest"}`).Code)
	require.Equal(t, "ok", ask(5, `{"op":"sub","id":5,"topic":"board.2","delta":"fossil"}`).Op)

	for i := range 5 {
		publish(t, srv, "metrics.cpu", fmt.Sprint(i)) // services may publish
		publish(t, srv, "board.1", fmt.Sprint(i))
	}
	require.Equal(t, 0, historyLen(t, srv, "metrics.cpu"))
	require.Equal(t, 3, historyLen(t, srv, "board.1"))
}

func historyLen(t *testing.T, srv *server.Server, topic string) int {
	t.Helper()
	resp, err := httpClient.Get("http://" + srv.Addr() + "/v1/history?topic=" + topic + "&since=0")
	require.NoError(t, err)
	defer resp.Body.Close()
	var h struct{ Messages []json.RawMessage }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
	return len(h.Messages)
}
