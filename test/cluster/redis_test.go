package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
	// /metrics shows why (the store) and what publishers saw (the alerts
	// TopicastStoreUnavailable and TopicastPublishErrors read these).
	m := scrapeText(t, n2)
	for _, want := range []string{"topicast_store_errors_total ", `topicast_publish_errors_total{code="unavailable"} `} {
		v := metricLine(m, want)
		if v < 1 || strings.Contains(want, "publish") && v < 3 {
			t.Errorf("n2 with Redis down: %s%v", want, v)
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

// Namespaces with Redis: a topic keeps its namespace's history in the
// store, more than the node's --history-size (the store's cap is the
// largest of all) or less, and finds it again after its node restarts.
func TestNamespaceHistoryInRedis(t *testing.T) {
	testutil.SkipIfShort(t)
	r := startRedisServer(t)
	cfgFile := filepath.Join(t.TempDir(), "topicast.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("namespaces:\n  - pattern: big.*\n    history_size: 3000\n  - pattern: small.*\n    history_size: 5\n"), 0o600))
	c := newCluster(t, clusterOpts{nodes: 1, static: true, redis: r.url(), extra: []string{"--config", cfgFile}})
	c.start()
	n := c.nodes[0] // the harness gives --history-size 2000
	for _, topic := range []string{"big.a", "small.a", "plain"} {
		var items []string
		for i := range 2500 {
			items = append(items, fmt.Sprintf(`{"topic":%q,"data":{"n":%d}}`, topic, i))
		}
		for i := 0; i < len(items); i += 500 {
			resp, err := httpClient.Post("http://"+n.http+"/v1/publish", "application/json",
				strings.NewReader(`{"messages":[`+strings.Join(items[i:i+500], ",")+`]}`))
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
		}
	}
	c.kill(n)
	c.start(n) // the topics come back from Redis alone
	// The oldest message kept tells the history's length: 2,500 were
	// published to each topic.
	for topic, oldest := range map[string]uint64{"big.a": 1, "small.a": 2496, "plain": 501} {
		resp, err := httpClient.Get("http://" + n.http + "/v1/history?topic=" + topic + "&since=0&limit=1")
		require.NoError(t, err)
		var h struct{ Messages []json.RawMessage }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
		resp.Body.Close()
		require.Len(t, h.Messages, 1, topic)
		_, _, seq, _, err := decodeMsg(h.Messages[0])
		require.NoError(t, err)
		require.Equal(t, oldest, seq, "the oldest message %s keeps", topic)
	}
}

// scrapeText returns n's /metrics.
func scrapeText(t *testing.T, n *node) string {
	t.Helper()
	resp, err := httpClient.Get("http://" + n.http + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// metricLine returns the value of the line of text that starts with
// prefix (a series name and labels, then a space), -1 if there is none.
func metricLine(text, prefix string) float64 {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
