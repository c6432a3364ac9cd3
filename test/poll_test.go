package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/sdk/wire"
)

type pollAnswer struct {
	Messages  []json.RawMessage `json:"messages"`
	Cursor    string            `json:"cursor"`
	Truncated bool              `json:"truncated"`

	status int
	err    wire.ErrorBody
}

// pollClient outlives the longest poll.
var pollClient = &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}

func pollOnce(t testing.TB, srv *server.Server, query string) *pollAnswer {
	t.Helper()
	a, err := pollGet(srv, query)
	require.NoError(t, err)
	return a
}

func pollGet(srv *server.Server, query string) (*pollAnswer, error) {
	resp, err := pollClient.Get("http://" + srv.Addr() + "/v1/poll?" + query)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	a := &pollAnswer{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		return a, json.Unmarshal(body, &a.err)
	}
	if err := json.Unmarshal(body, a); err != nil {
		return nil, fmt.Errorf("%w: %s", err, body)
	}
	if a.Messages == nil {
		return nil, fmt.Errorf("messages is not an array: %s", body)
	}
	return a, nil
}

// TestPollLongPolling: 1,000 messages published at 200/s over two topics
// reach a long-polling loop, none lost, none repeated, in order per topic.
func TestPollLongPolling(t *testing.T) {
	srv := startServer(t, server.Config{Node: cluster.Config{}})
	topics := []string{"poll.a", "poll.b"}
	query := "topic=" + strings.Join(topics, "&topic=")
	const total, rate = 1000, 200

	// Start at the heads: timeout=0 answers at once.
	first := pollOnce(t, srv, query+"&timeout=0")
	require.Equal(t, http.StatusOK, first.status)
	require.Empty(t, first.Messages)
	cursor := first.Cursor

	var pubErr error
	var pubs sync.WaitGroup
	pubs.Go(func() {
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for i := range total {
			<-tick.C
			body := fmt.Sprintf(`{"topic":%q,"data":{"n":%d,"at":%d}}`, topics[i%2], i, time.Now().UnixNano())
			if pubErr = postBatch(srv, body); pubErr != nil {
				return
			}
		}
	})

	seen := make([]int, total)
	last := map[string]uint64{}
	var latencies []time.Duration
	got, polls := 0, 0
	deadline := time.Now().Add(time.Minute)
	for got < total {
		require.True(t, time.Now().Before(deadline), "only %d of %d messages", got, total)
		a := pollOnce(t, srv, query+"&timeout=25&cursor="+url.QueryEscape(cursor))
		now := time.Now()
		polls++
		require.Equal(t, http.StatusOK, a.status, "%+v", a.err)
		require.False(t, a.Truncated)
		for _, raw := range a.Messages {
			var m msgFrame
			require.NoError(t, json.Unmarshal(raw, &m))
			require.Equal(t, last[m.Topic]+1, m.Seq, "topic %s: in order, no gap, no repeat", m.Topic)
			last[m.Topic] = m.Seq
			var d struct{ N, At int64 }
			require.NoError(t, json.Unmarshal(m.Data, &d))
			seen[d.N]++
			got++
			latencies = append(latencies, now.Sub(time.Unix(0, d.At)))
		}
		cursor = a.Cursor
	}
	pubs.Wait()
	require.NoError(t, pubErr)
	for n, k := range seen {
		require.Equal(t, 1, k, "message %d seen %d times", n, k)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	t.Logf("%d messages in %d polls; publish-to-answer latency p50 %v, p99 %v, max %v", total, polls,
		latencies[len(latencies)/2], latencies[len(latencies)*99/100], latencies[len(latencies)-1])

	// Nothing more: the last cursor is at the heads.
	a := pollOnce(t, srv, query+"&timeout=0&cursor="+url.QueryEscape(cursor))
	require.Empty(t, a.Messages)
	require.Equal(t, cursor, a.Cursor)
}

// TestPollAnswersAtOnce: retained messages after the cursor come at once;
// a cursor older than the history says truncated.
func TestPollAnswersAtOnce(t *testing.T) {
	srv := startServer(t, server.Config{Node: cluster.Config{Topic: actors.TopicConfig{HistorySize: 5}}})
	head := pollOnce(t, srv, "topic=keep&timeout=0")
	for i := range 3 {
		publish(t, srv, "keep", strconv.Itoa(i))
	}
	start := time.Now()
	a := pollOnce(t, srv, "topic=keep&timeout=30&cursor="+url.QueryEscape(head.Cursor))
	require.Less(t, time.Since(start), 5*time.Second)
	require.Len(t, a.Messages, 3)
	require.False(t, a.Truncated)

	for i := 3; i < 20; i++ {
		publish(t, srv, "keep", strconv.Itoa(i))
	}
	a = pollOnce(t, srv, "topic=keep&timeout=30&cursor="+url.QueryEscape(a.Cursor))
	require.True(t, a.Truncated, "messages 4..15 are gone")
	require.Len(t, a.Messages, 5)
	require.Contains(t, string(a.Messages[0]), `"seq":16`)
	c, err := wire.DecodeCursor(a.Cursor)
	require.NoError(t, err)
	p, _ := c.Get("keep")
	require.Equal(t, uint64(20), p.Seq)
}

// TestPollWaits: a poll at the head waits for the next message, and a
// timeout out of range is clamped, not refused.
func TestPollWaits(t *testing.T) {
	srv := startServer(t, server.Config{Node: cluster.Config{}})
	head := pollOnce(t, srv, "topic=w&timeout=-3")
	require.Equal(t, http.StatusOK, head.status, "a negative timeout is 0")
	require.Empty(t, head.Messages)

	got := make(chan *pollAnswer, 1)
	errc := make(chan error, 1)
	go func() {
		a, err := pollGet(srv, "topic=w&timeout=100000&cursor="+url.QueryEscape(head.Cursor))
		got <- a
		errc <- err
	}()
	// The poll is parked: wait until its session exists, then publish.
	require.Eventually(t, func() bool { return srv.Node().Conns() == 1 }, 5*time.Second, 5*time.Millisecond)
	start := time.Now()
	publish(t, srv, "w", `"hi"`)
	a := <-got
	require.NoError(t, <-errc)
	t.Logf("parked poll answered %v after the publish", time.Since(start))
	require.Equal(t, http.StatusOK, a.status, "timeout=100000 is clamped to 60 s: %+v", a.err)
	require.Len(t, a.Messages, 1)
	require.Contains(t, string(a.Messages[0]), `"data":"hi"`)
	require.Eventually(t, func() bool { return srv.Node().Conns() == 0 }, 5*time.Second, 5*time.Millisecond,
		"the poll's session ends with the answer")

	start = time.Now()
	a = pollOnce(t, srv, "topic=w&timeout=0.3&cursor="+url.QueryEscape(a.Cursor))
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	require.Empty(t, a.Messages)
}

func TestPollBadInput(t *testing.T) {
	srv := startServer(t, server.Config{Node: cluster.Config{}})
	var c wire.Cursor
	require.NoError(t, c.Set("a", wire.Position{Epoch: "e", Seq: 1}))
	good := c.String()
	for _, tt := range []struct{ name, query, msg string }{
		{"no topic", "timeout=0", "topic is missing"},
		{"bad topic", "topic=%C3%A9", "topic has a byte outside"},
		{"malformed cursor", "topic=a&cursor=%7B%7D", "cursor is not valid: not base64url text"},
		{"foreign cursor", "topic=a&cursor=bm90LWEtY3Vyc29y", "cursor is not valid: truncated, altered or not made by a topicast server"},
		{"truncated cursor", "topic=a&cursor=" + good[:len(good)-1], "cursor is not valid"},
		{"timeout", "topic=a&timeout=later", "timeout must be a number of seconds"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := pollOnce(t, srv, tt.query)
			require.Equal(t, http.StatusBadRequest, a.status)
			require.Equal(t, "bad_request", a.err.Error.Code)
			require.Contains(t, a.err.Error.Message, tt.msg)
		})
	}
}
