package sdktest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// TestChaos breaks the client's connection 20 times while a Publisher sends
// 10,000 messages: the server closes it as a slow consumer (4008), as going
// away (1001), or its TCP connection is reset. The application must see
// every message once, in order. The client runs with the default backoff,
// so the recovery times it logs (break to first message delivered after the
// reconnection) are those an application gets.
func TestChaos(t *testing.T) {
	const total, breaks = 10000, 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv.waitSessions(t, 0)
	topic := topicFor(t)

	// Owned by the client's dispatcher goroutine, read after it is closed
	// or under mu.
	var (
		mu          sync.Mutex
		seqs        []uint64
		values      []int
		unexpected  []sdk.Event
		brokeAt     time.Time
		waiting     bool // a break happened, its recovery is not measured yet
		reconnected bool
		reconnects  []time.Duration // break to EventConnected
		recoveries  []time.Duration // break to first message after it
	)
	recovered := make(chan struct{}, 1)
	onEvent := func(e sdk.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case sdk.EventConnected:
			if waiting && !reconnected {
				reconnected = true
				reconnects = append(reconnects, time.Since(brokeAt))
			}
		case sdk.EventDisconnected:
		case sdk.EventSubscribed:
			if e.Seq > 0 && !e.Recovered {
				unexpected = append(unexpected, e)
			}
		default:
			unexpected = append(unexpected, e)
		}
	}
	handler := func(m sdk.Message) {
		var v int
		if err := json.Unmarshal(m.Data, &v); err != nil {
			panic(err)
		}
		mu.Lock()
		defer mu.Unlock()
		seqs = append(seqs, m.Seq)
		values = append(values, v)
		if waiting && reconnected {
			recoveries = append(recoveries, time.Since(brokeAt))
			waiting = false
			recovered <- struct{}{}
		}
	}
	c := dial(t, srv.WSURL, sdk.Config{OnEvent: onEvent})
	_, err := c.Subscribe(ctx, topic, handler)
	require.NoError(t, err)
	srv.waitSessions(t, 1)

	// Publish at a steady pace (about 1,600 messages a second), from 8
	// goroutines through batches.
	p := newPublisher(t, sdk.PublisherConfig{BatchSize: 50, BatchDelay: 2 * time.Millisecond})
	next := make(chan int)
	var published atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(next)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < total; {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			for end := min(i+8, total); i < end; i++ {
				select {
				case next <- i:
				case <-ctx.Done():
					return
				}
			}
		}
	})
	for range 8 {
		wg.Go(func() {
			for i := range next {
				if _, err := p.Publish(ctx, topic, i); err != nil {
					t.Errorf("publish %d: %v", i, err)
					return
				}
				published.Add(1)
			}
		})
	}

	// Break the connection at 20 random points, each once the previous
	// break has recovered.
	points := make([]int64, 0, breaks)
	for len(points) < breaks {
		if p := int64(300 + rand.IntN(total-600)); !slices.Contains(points, p) {
			points = append(points, p)
		}
	}
	slices.Sort(points)
	kinds := map[string]int{}
	for k, at := range points {
		for published.Load() < at && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		mu.Lock()
		brokeAt, waiting, reconnected = time.Now(), true, false
		mu.Unlock()
		var kind string
		var n int
		switch k % 3 {
		case 0:
			kind, n = "4008", srv.closeSessions(transport.Disconnect{Code: wire.CloseSlowConsumer, Reason: "test"})
		case 1:
			kind, n = "1001", srv.closeSessions(transport.Disconnect{Code: wire.CloseGoingAway, Reason: "test"})
		case 2:
			kind, n = "tcp-reset", srv.resetSessions()
		}
		require.Equal(t, 1, n, "break %d (%s) found no session", k, kind)
		kinds[kind]++
		select {
		case <-recovered:
		case <-time.After(15 * time.Second):
			t.Fatalf("break %d (%s at message %d): no message delivered after it", k, kind, at)
		}
	}
	wg.Wait()
	require.Equal(t, int64(total), published.Load())

	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(seqs)
		mu.Unlock()
		if n >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, c.Close()) // joins the dispatcher: the slices are ours now

	require.Empty(t, unexpected, "no reset, gap or other event")
	require.Len(t, seqs, total)
	seen := make([]bool, total)
	for k, s := range seqs {
		require.Equal(t, uint64(k+1), s, "delivery %d", k)
		require.False(t, seen[values[k]], "value %d twice", values[k])
		seen[values[k]] = true
	}
	require.Len(t, recoveries, breaks)
	t.Logf("breaks: %v; reconnect (break to connected): %s; recovery (break to first message): %s",
		kinds, percentiles(reconnects), percentiles(recoveries))
}

// percentiles formats the p50, p99 and max of ds.
func percentiles(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		return s[min(len(s)-1, int(q*float64(len(s))))].Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %v p99 %v max %v (n=%d)", at(0.5), at(0.99), s[len(s)-1].Round(100*time.Microsecond), len(s))
}
