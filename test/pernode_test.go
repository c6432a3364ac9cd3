package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// The writers, the delivery backlog and the counters belong to a node
// (transport.NodeState), not to the process: these tests run a node beside
// other traffic in the same process and check that it sees none of it.

// TestNodesInOneProcessShareNothing runs two nodes in this process and
// gives one of them a delivery backlog (a subscriber that reads nothing):
// the other's metrics show none of the first one's traffic, connections or
// backlog, and its publishes do not wait for the first one's backlog, while
// the first one's do.
func TestNodesInOneProcessShareNothing(t *testing.T) {
	if raceEnabled {
		// protoactor's remote.Start sets grpc's process-wide logger
		// (grpclog.SetLoggerV2) while the first node's gRPC server may read
		// it: two live nodes in one process are a data race of the library
		// under -race. scripts/test.sh runs this test in a separate step
		// without -race; TestNodeCountsOnlyItsOwn covers one node here.
		t.Skip("two protoactor remotes in one process race on grpclog's logger under -race")
	}
	const maxBacklog = 256 << 10
	cfg := server.Config{
		StatsInterval: -1, // no sys:stats traffic in the counts
		PublishRate:   -1,
		MaxQueue:      1 << 30,     // the slow subscriber stays,
		WriteTimeout:  time.Minute, // even with its socket full
		MaxBacklog:    maxBacklog,
	}
	a := startServer(t, cfg)
	b := startServer(t, cfg)
	ctx := context.Background()

	// A subscriber on a that stops reading once subscribed. Closed before
	// the servers (cleanups run last first), which ends its blocked write.
	slow, err := testutil.DialWS(ctx, wsURL(a), 128<<10)
	require.NoError(t, err)
	t.Cleanup(func() { _ = slow.Close() })
	ok, err := slow.Subscribe("pn.slow", 1, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", ok.Op, ok.Raw)

	// Publish to a, about 1 MB at a time, until its backlog stays over
	// MaxBacklog: the sockets' buffers take the first megabytes. A publish
	// that finds the backlog over it waits, and may answer 503.
	backlog := func(srv *server.Server) float64 {
		return metricValue(scrape(t, srv), "topicast_outbound_queue_bytes")
	}
	full := func() bool {
		for range 3 {
			if backlog(a) <= maxBacklog {
				return false
			}
			time.Sleep(50 * time.Millisecond)
		}
		return true
	}
	item := fmt.Sprintf(`{"topic":"pn.slow","data":"%s"}`, strings.Repeat("x", 60<<10))
	batch := `{"messages":[` + strings.TrimSuffix(strings.Repeat(item+",", 16), ",") + "]}"
	deadline := time.Now().Add(30 * time.Second)
	for !full() {
		require.True(t, time.Now().Before(deadline), "a has no lasting backlog after 30 s")
		status, body := post(t, a, batch)
		require.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, status, "%s", body)
	}

	// b counted none of it.
	fa, fb := scrape(t, a), scrape(t, b)
	for _, m := range []struct {
		name   string
		labels []string
	}{
		{"topicast_outbound_queue_bytes", nil},
		{"topicast_publishes_total", nil},
		{"topicast_topics_active", nil},
		{"topicast_history_messages", nil},
		{"topicast_connections", []string{"transport", "ws"}},
		{"topicast_connections_opened_total", []string{"transport", "ws"}},
		{"topicast_subscriptions", []string{"transport", "ws"}},
	} {
		require.Positive(t, metricValue(fa, m.name, m.labels...), "a: %s", m.name)
		require.Zero(t, metricValue(fb, m.name, m.labels...), "b shows a's %s", m.name)
	}
	require.Zero(t, metricValue(fb, "topicast_deliveries_total"), "b shows a's deliveries")

	// a's backlog holds a's publishers...
	held, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(held, http.MethodPost, "http://"+a.Addr()+"/v1/publish",
		bytes.NewBufferString(`{"topic":"pn.other","data":1}`))
	require.NoError(t, err)
	resp, err := httpClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	require.True(t, errors.Is(err, context.DeadlineExceeded), "a publish to a with its backlog high was not held: %v", err)

	// ...and not b's: a publish to b is answered and delivered at once, and
	// counted on b only.
	pubsA := metricValue(scrape(t, a), "topicast_publishes_total")
	sub := newSubscriber(t, ctx, wsURL(b), "pn.fast")
	go sub.run()
	t.Cleanup(func() { _ = sub.c.Close(); <-sub.c.Done() })
	publish(t, b, "pn.fast", `1`)
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := sub.count("pn.fast"); n != 1 {
			return fmt.Errorf("the subscriber on b has %d messages", n)
		}
		return nil
	})
	fb = scrape(t, b)
	require.Equal(t, 1.0, metricValue(fb, "topicast_publishes_total"))
	require.Equal(t, 1.0, metricValue(fb, "topicast_deliveries_total"))
	require.Equal(t, 1.0, metricValue(fb, "topicast_connections", "transport", "ws"))
	require.Zero(t, backlog(b))
	require.Equal(t, pubsA, metricValue(scrape(t, a), "topicast_publishes_total"), "a counted b's publish")
}

// TestNodeCountsOnlyItsOwn runs a node beside topic, relay and connection
// actors of another actor system in the same process (a second node's
// worth, without a cluster, so it runs under -race), whose sessions hold a
// backlog over the node's MaxBacklog and deliver messages: the node's
// metrics show none of it, and its publishes do not wait.
func TestNodeCountsOnlyItsOwn(t *testing.T) {
	const maxBacklog = 1 << 10
	srv := startServer(t, server.Config{StatsInterval: -1, PublishRate: -1, MaxBacklog: maxBacklog})
	ctx := context.Background()

	// The other actors and sessions, with configs that name no node: the
	// defaults are theirs alone.
	system := actor.NewActorSystem(actor.WithLoggerFactory(testutil.DiscardActorLogs))
	t.Cleanup(system.Shutdown)
	topics := actors.NewLocalTopics(system, actors.TopicConfig{})
	conns := actors.NewConns(system, topics, actors.NewRelays(system, topics, actors.RelayConfig{}), actors.ConnConfig{})
	gate := make(chan struct{})
	stuck := newBareSession(gate) // never writes what comes after its ok
	fast := newBareSession(nil)
	var closeGate sync.Once
	t.Cleanup(func() {
		closeGate.Do(func() { close(gate) })
		for _, s := range []*bareSession{stuck, fast} {
			s.Close(transport.DisconnectShutdown)
			s.Wait()
		}
	})
	for _, s := range []*bareSession{stuck, fast} {
		conns.Accept(s).HandleFrame([]byte(`{"op":"sub","id":1,"topic":"other"}`))
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if stuck.conn.count("ok") == 0 || fast.conn.count("ok") == 0 {
			return errors.New("the subs are not answered")
		}
		return nil
	})
	_, err := topics.Publish(ctx, []wire.PublishItem{{Topic: "other", Data: []byte(`"` + strings.Repeat("x", 4*maxBacklog) + `"`)}})
	require.NoError(t, err)
	// fast wrote the message; stuck holds it, taken and not written: it is
	// in its node's backlog.
	testutil.Eventually(t, 10*time.Second, func() error {
		if fast.conn.count("msg") == 0 || stuck.conn.waiting() == 0 {
			return errors.New("the message is not delivered")
		}
		return nil
	})

	// The node counted none of it.
	fams := scrape(t, srv)
	for _, name := range []string{"topicast_outbound_queue_bytes", "topicast_publishes_total", "topicast_deliveries_total",
		"topicast_topics_active", "topicast_history_messages", "topicast_subscriptions"} {
		require.Zero(t, metricValue(fams, name), "the node shows the other actors' %s", name)
	}
	// And its publishes do not wait for the others' backlog.
	publish(t, srv, "mine", `1`)
	require.Equal(t, 1.0, metricValue(scrape(t, srv), "topicast_publishes_total"))
}

// bareSession is a WebSocket-like session of no node: an Outbound with a
// config that names none.
type bareSession struct {
	transport.Outbound
	conn *recordingConn
	info transport.SessionInfo
}

func newBareSession(gate chan struct{}) *bareSession {
	s := &bareSession{conn: &recordingConn{gate: gate},
		info: transport.SessionInfo{ID: "bare-" + strconv.FormatUint(bareSeq.Add(1), 10), Transport: "ws"}}
	s.Init(s.conn, transport.OutboundConfig{})
	return s
}

var bareSeq atomic.Uint64

func (s *bareSession) Info() *transport.SessionInfo { return &s.info }

// recordingConn records the frames written to it. With a gate, the writes
// after the one that carried an ok frame wait for the gate to close.
type recordingConn struct {
	gate chan struct{}

	mu      sync.Mutex
	frames  [][]byte
	blocked bool // an ok frame was written: later writes wait
	waits   int  // writes that waited
}

func (c *recordingConn) WriteFrames(frames [][]byte) error {
	c.mu.Lock()
	if c.blocked {
		c.waits++
		c.mu.Unlock()
		<-c.gate
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	for _, f := range frames {
		c.frames = append(c.frames, bytes.Clone(f))
		if c.gate != nil && bytes.HasPrefix(f, []byte(`{"op":"ok"`)) {
			c.blocked = true
		}
	}
	return nil
}

// count returns the frames written of operation op.
func (c *recordingConn) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.frames {
		if bytes.HasPrefix(f, []byte(`{"op":"`+op+`"`)) {
			n++
		}
	}
	return n
}

// waiting returns the writes that waited for the gate.
func (c *recordingConn) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waits
}

func (c *recordingConn) WriteClose(transport.Disconnect) {}
func (c *recordingConn) Abort()                          {}
