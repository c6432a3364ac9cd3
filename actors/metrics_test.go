package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/transport"
)

// TestActorsCountInTheirNodesMetrics runs the actors of two nodes side by
// side: topics, publishes, retained messages and subscriptions count in the
// metrics each node's configs name, and nowhere else.
func TestActorsCountInTheirNodesMetrics(t *testing.T) {
	var m1, m2 transport.NodeMetrics
	newNode := func(m *transport.NodeMetrics) *env {
		system := actor.NewActorSystem(actor.WithLoggerFactory(testutil.DiscardActorLogs))
		t.Cleanup(system.Shutdown)
		e := &env{t: t, system: system, topics: NewLocalTopics(system, TopicConfig{HistorySize: 10, Metrics: m})}
		e.relays = NewRelays(system, e.topics, RelayConfig{JoinTimeout: time.Second, Metrics: m})
		e.conns = NewConns(system, e.topics, e.relays, ConnConfig{})
		return e
	}
	n1 := newNode(&m1)
	newNode(&m2)

	c := n1.connect()
	c.send(`{"op":"sub","id":1,"topic":"t"}`)
	require.Equal(t, "ok", c.next(t, 1)[0].Op)
	n1.publish("t", data(1), data(2))
	c.next(t, 2)

	require.Equal(t, uint64(2), m1.Publishes.Load())
	require.Equal(t, int64(1), m1.TopicsActive.Load())
	require.Equal(t, int64(2), m1.HistoryMessages.Load())
	require.Equal(t, int64(1), subscriptions(&m1))
	top, _ := m1.TopTopics(1)
	require.Equal(t, []transport.TopicSubscribers{{Topic: "t", Subscribers: 1}}, top)

	require.Zero(t, m2.Publishes.Load())
	require.Zero(t, m2.TopicsActive.Load())
	require.Zero(t, m2.HistoryMessages.Load())
	require.Zero(t, subscriptions(&m2))
}

// subscriptions returns the subscriptions m counts, of every transport.
func subscriptions(m *transport.NodeMetrics) (n int64) {
	for _, s := range m.Subscriptions() {
		n += s
	}
	return n
}
