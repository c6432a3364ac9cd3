package sdktest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
)

// publishLog records the bodies of publish requests and lets a test decide
// each answer.
type publishLog struct {
	mu     sync.Mutex
	bodies []string
}

func (l *publishLog) record(r *http.Request) (n int) {
	body, _ := io.ReadAll(r.Body) // a broken body fails the request downstream anyway
	r.Body = io.NopCloser(bytes.NewReader(body))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bodies = append(l.bodies, string(body))
	return len(l.bodies)
}

func (l *publishLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.bodies...)
}

func fastRetries(cfg sdk.PublisherConfig) sdk.PublisherConfig {
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
	return cfg
}

// TestPublisherRetriesWithSameKey loses the answer to a publish twice (a
// 503 from a proxy, then a dropped connection) after the server published:
// the retries carry the same key, and the message is delivered once.
func TestPublisherRetriesWithSameKey(t *testing.T) {
	ctx := testCtx(t)
	topic := topicFor(t)
	rec := newRecorder()
	c := dial(t, srv.WSURL, sdk.Config{})
	_, err := c.Subscribe(ctx, topic, rec.handle)
	require.NoError(t, err)

	var log publishLog
	var firstAnswer atomic.Value // the handler's goroutine writes it
	srv.setPublishHook(t, func(next http.Handler, w http.ResponseWriter, r *http.Request) {
		switch log.record(r) {
		case 1: // published, but the answer is lost on the way
			rr := httptest.NewRecorder()
			next.ServeHTTP(rr, r)
			firstAnswer.Store(rr.Body.String())
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":{"code":"unavailable","message":"proxy lost the answer"}}`)
		case 2: // published again, then the connection drops
			next.ServeHTTP(httptest.NewRecorder(), r)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close() // the client sees a network error
			}
		default:
			next.ServeHTTP(w, r)
		}
	})

	p := newPublisher(t, fastRetries(sdk.PublisherConfig{}))
	res, err := p.Publish(ctx, topic, map[string]string{"v": "once"})
	require.NoError(t, err)
	bodies := log.all()
	require.Len(t, bodies, 3)
	var keys []string
	for _, b := range bodies {
		var body struct{ Key string }
		require.NoError(t, json.Unmarshal([]byte(b), &body))
		keys = append(keys, body.Key)
	}
	require.NotEmpty(t, keys[0])
	require.Equal(t, []string{keys[0], keys[0], keys[0]}, keys)
	var first wire.PublishResult
	require.NoError(t, json.Unmarshal([]byte(firstAnswer.Load().(string)), &first))
	require.Equal(t, first, res, "the retry answers what the first attempt published")

	// The next message gets the next seq: nothing was published twice.
	res2, err := p.Publish(ctx, topic, map[string]string{"v": "next"})
	require.NoError(t, err)
	require.Equal(t, res.Seq+1, res2.Seq)
	msgs := rec.waitMessages(t, 2)
	require.Len(t, msgs, 2)
	require.Equal(t, `{"v":"once"}`, string(msgs[0].Data))
	require.Equal(t, `{"v":"next"}`, string(msgs[1].Data))
	require.Len(t, log.all(), 4)
}

func TestPublisherErrors(t *testing.T) {
	ctx := testCtx(t)
	topic := topicFor(t)
	var e *wire.Error
	var log publishLog
	var status atomic.Int32 // when set, the hook answers it without an error body
	srv.setPublishHook(t, func(next http.Handler, w http.ResponseWriter, r *http.Request) {
		log.record(r)
		if s := int(status.Load()); s != 0 {
			w.WriteHeader(s)
			return
		}
		next.ServeHTTP(w, r)
	})
	requests := func(t *testing.T, before int, want int) {
		t.Helper()
		require.Len(t, log.all(), before+want)
	}

	t.Run("bad api key", func(t *testing.T) {
		n := len(log.all())
		p := newPublisher(t, fastRetries(sdk.PublisherConfig{APIKey: "wrong"}))
		_, err := p.Publish(ctx, topic, 1)
		require.ErrorAs(t, err, &e)
		require.Equal(t, wire.CodeForbidden, e.Code)
		requests(t, n, 1) // no retry on 4xx
	})
	t.Run("no api key", func(t *testing.T) {
		n := len(log.all())
		p, err := sdk.NewPublisher(srv.URL+"/", sdk.PublisherConfig{})
		require.NoError(t, err)
		defer p.Close()
		_, err = p.Publish(ctx, topic, 1)
		require.ErrorAs(t, err, &e)
		require.Equal(t, wire.CodeUnauthorized, e.Code)
		requests(t, n, 1)
	})
	t.Run("too large for the server", func(t *testing.T) {
		n := len(log.all())
		p := newPublisher(t, fastRetries(sdk.PublisherConfig{MaxMessage: -1}))
		_, err := p.Publish(ctx, topic, strings.Repeat("x", 70000))
		require.ErrorAs(t, err, &e)
		require.Equal(t, wire.CodeTooLarge, e.Code)
		requests(t, n, 1)
	})
	t.Run("refused before sending", func(t *testing.T) {
		n := len(log.all())
		p := newPublisher(t, sdk.PublisherConfig{})
		for _, tc := range []struct {
			topic, key string
			data       any
			code       wire.ErrorCode
		}{
			{topic: "sys:x", data: 1, code: wire.CodeForbidden},
			{topic: "a b", data: 1, code: wire.CodeBadRequest},
			{topic: topic, key: strings.Repeat("k", 201), data: 1, code: wire.CodeBadRequest},
			{topic: topic, data: json.RawMessage(`{`), code: wire.CodeBadRequest},
			{topic: topic, data: strings.Repeat("x", 70000), code: wire.CodeTooLarge},
		} {
			_, err := p.PublishKey(ctx, tc.topic, tc.key, tc.data)
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.code, e.Code, "%s", err)
		}
		requests(t, n, 0)
	})
	t.Run("5xx are retried until MaxAttempts", func(t *testing.T) {
		n := len(log.all())
		status.Store(http.StatusBadGateway)
		defer status.Store(0)
		p := newPublisher(t, fastRetries(sdk.PublisherConfig{MaxAttempts: 3}))
		_, err := p.Publish(ctx, topic, 1)
		require.ErrorAs(t, err, &e)
		require.Equal(t, wire.CodeUnavailable, e.Code)
		require.Contains(t, err.Error(), "after 3 attempts")
		requests(t, n, 3)
	})
	t.Run("429 waits for Retry-After", func(t *testing.T) {
		n := len(log.all())
		var calls atomic.Int32
		srv.setPublishHook(t, func(next http.Handler, w http.ResponseWriter, r *http.Request) {
			log.record(r)
			if calls.Add(1) == 1 {
				w.Header().Set("Retry-After", "1")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = io.WriteString(w, `{"error":{"code":"rate_limited","message":"slow down"}}`)
				return
			}
			next.ServeHTTP(w, r)
		})
		p := newPublisher(t, fastRetries(sdk.PublisherConfig{}))
		start := time.Now()
		_, err := p.Publish(ctx, topic, 1)
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(start), time.Second)
		requests(t, n, 2)
	})
	t.Run("closed", func(t *testing.T) {
		p := newPublisher(t, sdk.PublisherConfig{BatchSize: 10})
		require.NoError(t, p.Close())
		_, err := p.Publish(ctx, topic, 1)
		require.ErrorIs(t, err, sdk.ErrClosed)
	})
}

// TestPublisherBatching publishes from many goroutines through batches: fewer
// requests, every message once, in seq order for the subscriber.
func TestPublisherBatching(t *testing.T) {
	ctx := testCtx(t)
	topic := topicFor(t)
	rec := newRecorder()
	c := dial(t, srv.WSURL, sdk.Config{})
	_, err := c.Subscribe(ctx, topic, rec.handle)
	require.NoError(t, err)
	var requests atomic.Int32
	srv.setPublishHook(t, func(next http.Handler, w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		next.ServeHTTP(w, r)
	})

	p := newPublisher(t, sdk.PublisherConfig{BatchSize: 100, BatchDelay: 20 * time.Millisecond})
	const workers, each = 50, 20
	seqs := make([]uint64, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := range each {
				i := w*each + j
				res, err := p.Publish(ctx, topic, i)
				if err != nil {
					t.Error(err)
					return
				}
				seqs[i] = res.Seq
			}
		})
	}
	wg.Wait()
	seen := make(map[uint64]bool)
	for _, s := range seqs {
		require.False(t, seen[s], "seq %d twice", s)
		seen[s] = true
	}
	require.Len(t, seen, workers*each)
	require.Less(t, int(requests.Load()), workers*each/5, "batches")
	t.Logf("%d messages in %d requests", workers*each, requests.Load())

	msgs := rec.waitMessages(t, workers*each)
	for k, m := range msgs {
		require.Equal(t, uint64(k+1), m.Seq)
		var i int
		require.NoError(t, json.Unmarshal(m.Data, &i))
		require.Equal(t, m.Seq, seqs[i], "message %d landed where Publish said", i)
	}

	// A caller gone before its batch is sent is left out of it.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	for range 10 {
		_, err := p.Publish(gone, topic, "never")
		require.ErrorIs(t, err, context.Canceled)
	}
	res, err := p.Publish(ctx, topic, "last")
	require.NoError(t, err)
	require.Equal(t, uint64(workers*each+1), res.Seq)
}
