package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/sdk/wire"
)

// sseEvent is one server-sent event, as EventSource dispatches it.
type sseEvent struct {
	name, id, data string
	hasID          bool
}

// sseStream is a plain HTTP reader that parses a text/event-stream the way
// EventSource does: an event is dispatched at its blank line, and an event
// cut off by a dropped connection is never seen.
type sseStream struct {
	resp   *http.Response
	br     *bufio.Reader
	cancel context.CancelFunc
}

func openSSE(t testing.TB, srv *server.Server, query, lastID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+srv.Addr()+"/v1/sse?"+query, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := sseClient.Do(req)
	require.NoError(t, err)
	s := &sseStream{resp: resp, br: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(s.close)
	return s
}

// sseClient has no timeout: streams live long.
var sseClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}

func (s *sseStream) close() {
	s.cancel()
	_ = s.resp.Body.Close() // dropping the stream is the point
}

// next returns the next event, skipping comments; io.EOF when the stream
// ends.
func (s *sseStream) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			return sseEvent{}, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if data == nil && ev.name == "" && !ev.hasID {
				continue // a comment's end, or stray blank lines
			}
			ev.data = strings.Join(data, "\n")
			return ev, nil
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.name = value
		case "id":
			ev.id, ev.hasID = value, true
		case "data":
			data = append(data, value)
		}
	}
}

type readyTopic struct {
	Epoch     string `json:"epoch"`
	Seq       uint64 `json:"seq"`
	Recovered *bool  `json:"recovered"`
}

func readReady(t testing.TB, s *sseStream) (map[string]readyTopic, string) {
	t.Helper()
	require.Equal(t, http.StatusOK, s.resp.StatusCode)
	ev, err := s.next()
	require.NoError(t, err)
	require.Equal(t, "ready", ev.name, "first event: %+v", ev)
	var r struct {
		Topics map[string]readyTopic `json:"topics"`
	}
	require.NoError(t, json.Unmarshal([]byte(ev.data), &r), ev.data)
	return r.Topics, ev.id
}

type msgFrame struct {
	Op    string          `json:"op"`
	Topic string          `json:"topic"`
	Epoch string          `json:"epoch"`
	Seq   uint64          `json:"seq"`
	Data  json.RawMessage `json:"data"`
}

// TestSSEReconnect: 2,000 messages flow over 3 topics while the client
// drops its stream three times and reconnects with Last-Event-ID, as a
// browser does. It ends with every message exactly once, in order per
// topic, and each reconnect resumes every topic.
func TestSSEReconnect(t *testing.T) {
	srv := startServer(t, server.Config{Node: cluster.Config{}})
	topics := []string{"sse.a", "sse.b", "sse.c"}
	query := "topic=" + strings.Join(topics, "&topic=")
	const total = 2000

	st := openSSE(t, srv, query, "")
	ready, lastID := readReady(t, st)
	last := map[string]uint64{}
	for _, tp := range topics {
		require.Equal(t, uint64(0), ready[tp].Seq)
		require.Nil(t, ready[tp].Recovered, "no cursor: no recovered")
		last[tp] = 0
	}

	var pubErr error
	var pubs sync.WaitGroup
	var published atomic.Int64
	pubs.Go(func() {
		for i := 0; i < total; i += 10 {
			var items []string
			for j := i; j < i+10; j++ {
				items = append(items, fmt.Sprintf(`{"topic":%q,"data":{"n":%d,"at":%d}}`, topics[j%3], j, time.Now().UnixNano()))
			}
			if pubErr = postBatch(srv, `{"messages":[`+strings.Join(items, ",")+`]}`); pubErr != nil {
				return
			}
			published.Add(10)
			time.Sleep(2 * time.Millisecond) // a steady flow, not one burst
		}
	})

	seen := make([]int, total)
	var latencies []time.Duration
	got, drops, reconnects := 0, 0, 0
	dropAt := []int{400, 900, 1400}
	deadline := time.Now().Add(2 * time.Minute)
	for got < total {
		require.True(t, time.Now().Before(deadline), "only %d of %d messages", got, total)
		if drops < len(dropAt) && got >= dropAt[drops] {
			st.close() // mid-stream: more is on its way
			t.Logf("dropped the stream after %d messages, %d published", got, published.Load())
			drops++
			st = openSSE(t, srv, query, lastID)
			reconnects++
			ready, id := readReady(t, st)
			for _, tp := range topics {
				require.NotNil(t, ready[tp].Recovered, "topic %s", tp)
				require.True(t, *ready[tp].Recovered, "topic %s resumes", tp)
				require.GreaterOrEqual(t, ready[tp].Seq, last[tp])
			}
			lastID = id
			continue
		}
		ev, err := st.next()
		require.NoError(t, err)
		require.Equal(t, "", ev.name, "unexpected event %+v", ev)
		require.True(t, ev.hasID, "every delivery has an id")
		var m msgFrame
		require.NoError(t, json.Unmarshal([]byte(ev.data), &m), ev.data)
		require.Equal(t, "msg", m.Op)
		require.Equal(t, last[m.Topic]+1, m.Seq, "topic %s: in order, no gap, no repeat", m.Topic)
		last[m.Topic] = m.Seq
		var d struct{ N, At int64 }
		require.NoError(t, json.Unmarshal(m.Data, &d))
		latencies = append(latencies, time.Since(time.Unix(0, d.At)))
		seen[d.N]++
		got++
		lastID = ev.id

		c, err := wire.DecodeCursor(ev.id)
		require.NoError(t, err)
		require.Equal(t, len(topics), c.Len(), "the id covers every topic of the stream")
		for _, tp := range topics {
			p, _ := c.Get(tp)
			require.Equal(t, last[tp], p.Seq)
		}
	}
	pubs.Wait()
	require.NoError(t, pubErr)
	require.Equal(t, 3, reconnects)
	for n, k := range seen {
		require.Equal(t, 1, k, "message %d seen %d times", n, k)
	}
	slices.Sort(latencies)
	t.Logf("publish-to-event latency (reconnects included) p50 %v, p99 %v, max %v",
		latencies[len(latencies)/2], latencies[len(latencies)*99/100], latencies[len(latencies)-1])

	// The last id is a cursor /v1/poll takes too: nothing is missing.
	p := pollOnce(t, srv, query+"&timeout=0&cursor="+url.QueryEscape(lastID))
	require.Equal(t, http.StatusOK, p.status)
	require.Empty(t, p.Messages)
	require.False(t, p.Truncated)
}

// TestSSENotRecovered: a cursor older than the history resumes with
// recovered:false and then delivers live messages.
func TestSSENotRecovered(t *testing.T) {
	srv := startServer(t, server.Config{Node: cluster.Config{Topic: actors.TopicConfig{HistorySize: 5}}})
	for i := range 20 {
		publish(t, srv, "short", fmt.Sprintf("%d", i))
	}
	var c wire.Cursor
	require.NoError(t, c.Set("short", wire.Position{Epoch: "whatever", Seq: 3}))
	st := openSSE(t, srv, "topic=short&cursor="+url.QueryEscape(c.String()), "")
	ready, _ := readReady(t, st)
	require.NotNil(t, ready["short"].Recovered)
	require.False(t, *ready["short"].Recovered)
	require.Equal(t, uint64(20), ready["short"].Seq)
	publish(t, srv, "short", "20")
	ev, err := st.next()
	require.NoError(t, err)
	require.Contains(t, ev.data, `"seq":21`)
}

func TestSSEBadInput(t *testing.T) {
	srv := startServer(t, server.Config{Node: cluster.Config{}})
	var c wire.Cursor
	require.NoError(t, c.Set("a", wire.Position{Epoch: "e", Seq: 1}))
	good := c.String()
	many := make([]string, 33)
	for i := range many {
		many[i] = fmt.Sprintf("topic=t%d", i)
	}
	for _, tt := range []struct {
		name, query, lastID, msg string
	}{
		{"no topic", "", "", "topic is missing"},
		{"bad topic", "topic=a%20b", "", "topic has a byte outside"},
		{"too many topics", strings.Join(many, "&"), "", "at most 32 topics"},
		{"malformed cursor", "topic=a&cursor=not*base64", "", "cursor is not valid: not base64url text"},
		{"foreign cursor", "topic=a&cursor=eyJ0b3BpYyI6ImEifQ", "", "cursor is not valid: truncated, altered or not made by a topicast server"},
		{"truncated cursor", "topic=a&cursor=" + good[:len(good)-2], "", "cursor is not valid"},
		{"bad Last-Event-ID", "topic=a", "12345", "Last-Event-ID: cursor is not valid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := openSSE(t, srv, tt.query, tt.lastID)
			require.Equal(t, http.StatusBadRequest, st.resp.StatusCode)
			var body wire.ErrorBody
			require.NoError(t, json.NewDecoder(st.resp.Body).Decode(&body))
			require.Equal(t, "bad_request", body.Error.Code)
			require.Contains(t, body.Error.Message, tt.msg)
		})
	}

	// CORS: an allowed origin may read the stream, another may not open one.
	req, err := http.NewRequest(http.MethodGet, "http://"+srv.Addr()+"/v1/sse?topic=a", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "http://localhost:3000")
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := sseClient.Do(req.WithContext(ctx))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "http://localhost:3000", resp.Header.Get("Access-Control-Allow-Origin"))
	cancel()
	resp.Body.Close()
	req.Header.Set("Origin", "https://evil.example")
	resp, err = sseClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

// TestSSEShutdown: closing the server ends every stream, so the client
// reconnects elsewhere.
func TestSSEShutdown(t *testing.T) {
	srv, err := server.Start(context.Background(), server.Config{HTTPAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	st := openSSE(t, srv, "topic=bye", "")
	readReady(t, st)
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	_, err = st.next()
	require.ErrorIs(t, err, io.EOF)
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not close")
	}
	require.Zero(t, srv.Node().Conns())
}

// postBatch publishes body, for goroutines other than the test's.
func postBatch(srv *server.Server, body string) error {
	resp, err := httpClient.Post("http://"+srv.Addr()+"/v1/publish", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish: %d %s", resp.StatusCode, b)
	}
	return nil
}
