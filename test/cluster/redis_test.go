package clustertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/topicast/topicast/internal/testutil"
)

// A node that starts while Redis is down comes up, answers "unavailable"
// for its topics, and serves them once Redis is back. (Before 2026-12-05 it
// exited with "redis: ... does not answer": the nemesis harness caught a
// node restarted during a Redis kill staying down.)
func TestNodeStartsWhileRedisIsDown(t *testing.T) {
	testutil.SkipIfShort(t)
	r := startRedisServer(t)
	c := newCluster(t, clusterOpts{nodes: 2, static: true, redis: r.url()})
	c.start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n1, n2 := c.nodes[0], c.nodes[1]
	if _, err := publish(ctx, n1.http, "redis.down", "before", []byte(`{"n":0}`)); err != nil {
		t.Fatal(err)
	}

	r.stop()
	c.kill(n2)
	c.start(n2) // waits for /readyz: the node must come up without Redis
	if !n2.log.contains("redis does not answer") {
		t.Error("n2 did not warn that Redis does not answer")
	}

	// While Redis is down, a topic's publish is refused as unavailable,
	// never accepted and lost.
	for i := range 3 {
		topic := fmt.Sprintf("redis.down.%d", i)
		_, err := publish(ctx, n2.http, topic, "down", []byte(`{"n":1}`))
		if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "unavailable") {
			t.Fatalf("publish to %s with Redis down: got %v, want 503 unavailable", topic, err)
		}
	}

	r.start() // an empty Redis: topics begin new epochs
	addrs := func() []string { return []string{n2.http} }
	for i := range 3 {
		topic := fmt.Sprintf("redis.down.%d", i)
		res, _, err := publishRetry(ctx, addrs, 0, topic, "up", []byte(`{"n":2}`))
		if err != nil {
			t.Fatalf("publish to %s after Redis came back: %v", topic, err)
		}
		epoch, head, err := history(n1.http, topic)
		if err != nil {
			t.Fatal(err)
		}
		if epoch != res.Epoch || head != res.Seq {
			t.Fatalf("%s: published as %s/%d, n1 reads head %s/%d", topic, res.Epoch, res.Seq, epoch, head)
		}
	}
}
