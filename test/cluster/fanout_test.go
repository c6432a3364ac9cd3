package clustertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/testutil"
)

// relayDeliveries sums a scope of topicast_relay_deliveries_total over the
// nodes.
func relayDeliveries(t *testing.T, c *cluster, scope string) (total float64, byNode []float64) {
	t.Helper()
	for _, n := range c.nodes {
		v := nodeMetric(t, n.http, `topicast_relay_deliveries_total{scope="`+scope+`"}`)
		total += v
		byNode = append(byNode, v)
	}
	return total, byNode
}

// TestCrossNodeMessagesPerPublish is the design's promise measured between
// node processes: a publish costs one delivery message per node with
// subscribers, however many subscribers each node has. Three nodes; the
// topic's subscribers are first on two nodes (perNode each), then on all
// three; each phase publishes single messages one after another (each its
// own batch) and counts the delivery messages the topic actor sent.
func TestCrossNodeMessagesPerPublish(t *testing.T) {
	const perNode, publishes = 100, 50
	c := newCluster(t, clusterOpts{nodes: 3, static: true})
	c.start()
	const topic = "fanout.cost"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	received := make(chan struct{}, 3*perNode*publishes)
	subscribe := func(n *node) {
		for range perNode {
			w, err := testutil.DialWS(ctx, n.wsURL(), 0)
			require.NoError(t, err)
			t.Cleanup(func() { w.Close() })
			require.NoError(t, w.Send(`{"op":"sub","id":1,"topic":"`+topic+`"}`))
			f, err := w.ReadUntil(func(f testutil.Frame) bool { return f.ID == 1 }, nil)
			require.NoError(t, err)
			require.Equal(t, "ok", f.Op, f.Raw)
			go w.Read(func(frame []byte) {
				if _, _, _, _, err := decodeMsg(frame); err == nil {
					received <- struct{}{}
				}
			})
		}
	}
	phase := func(name string, subscribedNodes int, next int) {
		t.Helper()
		local0, _ := relayDeliveries(t, c, "local")
		remote0, _ := relayDeliveries(t, c, "remote")
		for i := range publishes {
			_, err := publish(ctx, c.nodes[i%len(c.nodes)].http, topic, "", fmt.Appendf(nil, `{"n":%d}`, next+i))
			require.NoError(t, err)
		}
		want := subscribedNodes * perNode * publishes
		for got := 0; got < want; got++ {
			select {
			case <-received:
			case <-ctx.Done():
				t.Fatalf("%s: %d of %d deliveries", name, got, want)
			}
		}
		local1, localBy := relayDeliveries(t, c, "local")
		remote1, _ := relayDeliveries(t, c, "remote")
		local, remote := local1-local0, remote1-remote0
		t.Logf("%s: %d subscribers on %d nodes, %d publishes: %.0f local and %.0f remote delivery messages (%.1f per publish; local by node %v)",
			name, subscribedNodes*perNode, subscribedNodes, publishes, local, remote, (local+remote)/publishes, localBy)
		require.Equal(t, float64(subscribedNodes*publishes), local+remote,
			"%s: delivery messages must be one per publish and node with subscribers", name)
		require.LessOrEqual(t, local, float64(publishes), "%s: only the topic's own node delivers locally", name)
	}
	subscribe(c.nodes[1])
	subscribe(c.nodes[2])
	phase("two nodes", 2, 0)
	subscribe(c.nodes[0])
	phase("three nodes", 3, publishes)
}
