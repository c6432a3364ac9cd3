package actors

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk/wire"
)

func no() *bool { b := false; return &b }

var testNamespaces = Namespaces{
	{Pattern: "metrics.cpu", HistorySize: 2},
	{Pattern: "metrics.*", HistorySize: -1, ClientPublish: no(), Latest: no()},
	{Pattern: "board.*", HistorySize: 3, HistoryTTL: time.Hour, MaxMessage: 4096, Delta: no(), Datagram: no()},
}

func TestNamespacesFirstMatchWins(t *testing.T) {
	require.NoError(t, testNamespaces.Validate())
	require.Equal(t, "metrics.cpu", testNamespaces.For("metrics.cpu").Pattern)
	require.Equal(t, "metrics.*", testNamespaces.For("metrics.mem").Pattern)
	require.Nil(t, testNamespaces.For("chat"))
	require.Equal(t, 4096, testNamespaces.MaxMessage(1024))
	require.Equal(t, 8192, testNamespaces.MaxMessage(8192))

	c := TopicConfig{HistorySize: 50, HistoryTTL: time.Minute, Namespaces: testNamespaces}
	require.Equal(t, 3, c.forTopic("board.1").HistorySize)
	require.Equal(t, time.Hour, c.forTopic("board.1").HistoryTTL)
	require.Equal(t, -1, c.forTopic("metrics.mem").HistorySize)
	require.Equal(t, time.Minute, c.forTopic("metrics.mem").HistoryTTL)
	require.Equal(t, 50, c.forTopic("chat").HistorySize)

	require.Error(t, Namespaces{{Pattern: "a*b"}}.Validate())
	require.Error(t, Namespaces{{Pattern: ""}}.Validate())
	require.Error(t, Namespaces{{Pattern: "a", MaxMessage: -1}}.Validate())
}

func TestNamespacesCheckPublish(t *testing.T) {
	big := []byte(`"` + strings.Repeat("x", 3000) + `"`)
	require.Nil(t, testNamespaces.CheckPublish("board.1", big, 1024), "the namespace allows more than the node")
	e := testNamespaces.CheckPublish("chat", big, 1024)
	require.Equal(t, wire.CodeTooLarge, e.Code)
	require.Contains(t, e.Message, "--max-message")
	e = testNamespaces.CheckPublish("board.1", append(big, make([]byte, 2000)...), 1024)
	require.Equal(t, wire.CodeTooLarge, e.Code)
	require.Contains(t, e.Message, "board.*")
}

// A topic keeps the history of its namespace; the connection actor refuses
// the sub options and the client pubs a namespace forbids.
func TestNamespacesInActors(t *testing.T) {
	e := newEnv(t, TopicConfig{HistorySize: 50, Namespaces: testNamespaces})
	e.conns = NewConns(e.system, e.topics, e.relays, ConnConfig{MaxMessage: 1024, Namespaces: testNamespaces})
	for i := range 10 {
		e.publish("board.1", data(i))
		e.publish("metrics.mem", data(i))
		e.publish("chat", data(i))
	}
	require.Len(t, e.history("board.1", 0).Frames, 3)
	require.Empty(t, e.history("metrics.mem", 0).Frames)
	require.Len(t, e.history("chat", 0).Frames, 10)

	c := e.connect()
	for _, step := range []struct{ send, code string }{
		{`{"op":"sub","id":1,"topic":"metrics.mem","mode":"latest"}`, "bad_request"},
		{`{"op":"sub","id":2,"topic":"board.1","delta":"fossil"}`, "bad_request"},
		{`{"op":"sub","id":3,"topic":"board.1","delivery":"datagram"}`, "bad_request"},
		{`{"op":"pub","id":4,"topic":"metrics.mem","data":1}`, "forbidden"},
	} {
		c.send(step.send)
		f := c.next(t, 1)[0]
		require.Equal(t, step.code, f.Code, step.send)
		require.Contains(t, f.Message, "namespace", step.send)
	}
	c.send(`{"op":"sub","id":5,"topic":"board.2","mode":"latest"}`)
	require.Equal(t, "error", c.next(t, 1)[0].Op, "the recording session has no latest-value queue")
	c.send(`{"op":"pub","id":6,"topic":"board.1","data":1}`)
	require.Equal(t, "ok", c.next(t, 1)[0].Op)
}
