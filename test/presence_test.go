package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// presenceWatcher counts the presence events one WebSocket client gets.
type presenceWatcher struct {
	c *testutil.WSClient

	mu     sync.Mutex
	joins  map[string]int // conn -> joins seen
	leaves map[string]int
	other  []string
}

func (w *presenceWatcher) run() {
	w.c.Read(func(frame []byte) {
		var f testutil.Frame
		if json.Unmarshal(frame, &f) != nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		switch f.Op {
		case "join":
			w.joins[f.Conn]++
		case "leave":
			w.leaves[f.Conn]++
		case "ping":
		default:
			w.other = append(w.other, string(frame))
		}
	})
}

func (w *presenceWatcher) counts() (joins, leaves int, dup string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for conn, n := range w.joins {
		joins += n
		if n > 1 {
			dup = "join of " + conn
		}
	}
	for conn, n := range w.leaves {
		leaves += n
		if n > 1 {
			dup = "leave of " + conn
		}
	}
	return joins, leaves, dup
}

// TestPresenceOneNode is issue 17's acceptance on one node: 1,000 clients
// enter one topic over WebSocket and 100 watchers subscribed with
// "presence":true see exactly 1,000 joins; 500 members close their sockets
// abruptly and the watchers see exactly 500 leaves; the presence command
// and GET /v1/presence list the survivors, and agree.
func TestPresenceOneNode(t *testing.T) {
	testutil.SkipIfShort(t)
	const members, watchers = 1000, 100
	srv := startServer(t, server.Config{StatsInterval: -1, Node: cluster.Config{Topic: actors.TopicConfig{
		Namespaces: actors.Namespaces{{Pattern: "room.*", Presence: true, JoinLeave: true}},
	}}})
	ctx := context.Background()

	ws := make([]*presenceWatcher, watchers)
	for i := range ws {
		c, err := testutil.DialWS(ctx, wsURL(srv), 0)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		require.NoError(t, c.Send(`{"op":"sub","id":1,"topic":"room.lobby","presence":true}`))
		f, err := c.ReadUntil(func(f testutil.Frame) bool { return f.ID == 1 }, nil)
		require.NoError(t, err)
		require.Equal(t, "ok", f.Op, f.Raw)
		ws[i] = &presenceWatcher{c: c, joins: map[string]int{}, leaves: map[string]int{}}
		go ws[i].run()
	}

	ms := make([]*testutil.WSClient, members)
	for i := range ms {
		c, err := testutil.DialWS(ctx, wsURL(srv), 0)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		require.NoError(t, c.Send(fmt.Sprintf(`{"op":"enter","id":1,"topic":"room.lobby","info":{"player":%d}}`, i)))
		f, err := c.ReadUntil(func(f testutil.Frame) bool { return f.ID == 1 }, nil)
		require.NoError(t, err)
		require.Equal(t, "ok", f.Op, f.Raw)
		ms[i] = c
	}
	waitCounts := func(wantJoins, wantLeaves int) {
		t.Helper()
		testutil.Eventually(t, 30*time.Second, func() error {
			for i, w := range ws {
				j, l, dup := w.counts()
				if dup != "" {
					t.Fatalf("watcher %d: a second %s", i, dup)
				}
				if j != wantJoins || l != wantLeaves {
					return fmt.Errorf("watcher %d: %d joins, %d leaves", i, j, l)
				}
			}
			return nil
		})
	}
	waitCounts(members, 0)

	// Half the members vanish: their sockets close without a word.
	for _, c := range ms[:members/2] {
		require.NoError(t, c.Conn.Close())
	}
	waitCounts(members, members/2)
	time.Sleep(200 * time.Millisecond)
	waitCounts(members, members/2) // and no more than that
	for _, w := range ws {
		w.mu.Lock()
		require.Empty(t, w.other, "frames that are no presence event")
		w.mu.Unlock()
	}

	// The presence command and GET /v1/presence agree on the survivors.
	require.NoError(t, ms[members-1].Send(`{"op":"presence","id":2,"topic":"room.lobby"}`))
	ans, err := ms[members-1].ReadUntil(func(f testutil.Frame) bool { return f.ID == 2 }, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", ans.Op, ans.Raw)
	require.Equal(t, members/2, ans.Count)
	require.Len(t, ans.Members, members/2)

	resp, err := httpClient.Get("http://" + srv.Addr() + "/v1/presence?topic=room.lobby")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var p wire.Presence
	require.NoError(t, json.Unmarshal(body, &p))
	require.Equal(t, "room.lobby", p.Topic)
	require.Equal(t, members/2, p.Count)
	require.Len(t, p.Members, members/2)
	conns := func(ms []wire.Member) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.Conn
		}
		sort.Strings(out)
		return out
	}
	var fromCmd []wire.Member
	for _, m := range ans.Members {
		fromCmd = append(fromCmd, wire.Member{Client: m.Client, Conn: m.Conn, Info: m.Info})
	}
	require.Equal(t, conns(p.Members), conns(fromCmd))
	// The survivors are the members that did not close: their leaves are
	// the ones the watchers saw.
	ws[0].mu.Lock()
	defer ws[0].mu.Unlock()
	for _, m := range p.Members {
		require.Zero(t, ws[0].leaves[m.Conn], "%s is listed but left", m.Conn)
		require.True(t, strings.Contains(string(m.Info), `"player"`), string(m.Info))
	}

	// A topic whose namespace does not allow presence is refused.
	resp, err = httpClient.Get("http://" + srv.Addr() + "/v1/presence?topic=chat")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), "presence is off by default")
}
