package test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// TestFanOutEndToEnd: 1,000 subscribers on one topic and 100 on each of 10
// more receive 10,000 messages published concurrently by 8 HTTP publishers:
// each sees every message of its topic once, with seq +1 each time, so all
// subscribers of a topic see one order.
func TestFanOutEndToEnd(t *testing.T) {
	testutil.SkipIfShort(t)
	srv := startServer(t, server.Config{Node: cluster.Config{}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	topics := []string{"big"}
	for i := range 10 {
		topics = append(topics, fmt.Sprintf("small.%d", i))
	}
	var subs []*subscriber
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for i := range 2000 {
		topic := "big"
		if i >= 1000 {
			topic = topics[1+(i-1000)/100]
		}
		g.Go(func() error {
			s := newSubscriber(t, gctx, wsURL(srv), topic)
			mu.Lock()
			subs = append(subs, s)
			mu.Unlock()
			return nil
		})
	}
	require.NoError(t, g.Wait())
	var readers sync.WaitGroup
	for _, s := range subs {
		readers.Go(s.run)
	}

	const total, publishers = 10000, 8
	perTopic := make(map[string]*atomic.Int64)
	for _, tp := range topics {
		perTopic[tp] = &atomic.Int64{}
	}
	var next atomic.Int64
	pubs, _ := errgroup.WithContext(ctx)
	for range publishers {
		pubs.Go(func() error {
			for {
				n := next.Add(1) - 1
				if n >= total {
					return nil
				}
				topic := topics[n%int64(len(topics))]
				publish(t, srv, topic, fmt.Sprintf(`{"n":%d}`, n))
				perTopic[topic].Add(1)
			}
		})
	}
	require.NoError(t, pubs.Wait())

	testutil.Eventually(t, 2*time.Minute, func() error {
		for _, s := range subs {
			for topic := range s.topics {
				if got, want := s.count(topic), int(perTopic[topic].Load()); got != want {
					return fmt.Errorf("a subscriber of %s has %d of %d messages", topic, got, want)
				}
			}
		}
		return nil
	})
	for _, s := range subs {
		require.Empty(t, s.errs)
		s.c.Close()
	}
	readers.Wait()
}

// TestRecoveryAfterReconnect: a client leaves, 500 messages are published,
// it comes back with since and gets exactly the missed ones, then live ones;
// a since older than the history answers recovered:false.
func TestRecoveryAfterReconnect(t *testing.T) {
	srv := startServer(t, server.Config{Node: cluster.Config{Topic: cluster.Config{}.Topic}})
	ctx := context.Background()
	c, err := testutil.DialWS(ctx, wsURL(srv), 0)
	require.NoError(t, err)
	ok, err := c.Subscribe("rec", 1, nil)
	require.NoError(t, err)
	for i := range 10 {
		publish(t, srv, "rec", fmt.Sprint(i))
	}
	var last wire.Position
	_, err = c.ReadUntil(func(f testutil.Frame) bool {
		last = wire.Position{Epoch: f.Epoch, Seq: f.Seq}
		return f.Op == "msg" && f.Seq == 10
	}, nil)
	require.NoError(t, err)
	require.Equal(t, ok.Epoch, last.Epoch)
	c.Close()

	for i := range 500 {
		publish(t, srv, "rec", fmt.Sprint(i))
	}
	c, err = testutil.DialWS(ctx, wsURL(srv), 0)
	require.NoError(t, err)
	defer c.Close()
	var frames []testutil.Frame
	ok, err = c.Subscribe("rec", 1, &last)
	require.NoError(t, err)
	require.Equal(t, uint64(510), ok.Seq)
	require.True(t, *ok.Recovered)
	publish(t, srv, "rec", `"live"`)
	_, err = c.ReadUntil(func(f testutil.Frame) bool {
		frames = append(frames, f)
		return f.Seq == 511
	}, nil)
	require.NoError(t, err)
	require.Len(t, frames, 501)
	for i, f := range frames {
		require.Equal(t, "msg", f.Op)
		require.Equal(t, uint64(11+i), f.Seq)
	}

	// The default history keeps 1,000 messages: after 1,100 more, seq 510
	// is gone.
	var items []string
	for i := range 1100 {
		items = append(items, fmt.Sprintf(`{"topic":"rec","data":%d}`, i))
	}
	for i := 0; i < len(items); i += 100 {
		status, body := post(t, srv, `{"messages":[`+join(items[i:i+100])+`]}`)
		require.Equal(t, http.StatusOK, status, "%s", body)
	}
	c2, err := testutil.DialWS(ctx, wsURL(srv), 0)
	require.NoError(t, err)
	defer c2.Close()
	ok, err = c2.Subscribe("rec", 1, &wire.Position{Epoch: last.Epoch, Seq: 510})
	require.NoError(t, err)
	require.False(t, *ok.Recovered)
	require.Equal(t, uint64(1611), ok.Seq)
	ok, err = c2.Subscribe("rec2", 2, &wire.Position{Epoch: "other", Seq: 0})
	require.NoError(t, err)
	require.False(t, *ok.Recovered, "another epoch cannot be recovered")
}

func join(items []string) string {
	out := ""
	for i, s := range items {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

// TestSlowClientClosedWhileOthersKeepUp: a client that does not read is
// closed with 4008 and the 100 others on its topic get everything, with a
// latency close to a run without it.
func TestSlowClientClosedWhileOthersKeepUp(t *testing.T) {
	testutil.SkipIfShort(t)
	srv := startServer(t, server.Config{MaxQueue: 256 << 10, WriteTimeout: time.Minute})
	ctx := context.Background()

	measure := func(topic string, withSlow bool) (p99 time.Duration, slow *testutil.WSClient) {
		if withSlow {
			var err error
			slow, err = testutil.DialWS(ctx, wsURL(srv), 128<<10)
			require.NoError(t, err)
			_, err = slow.Subscribe(topic, 1, nil)
			require.NoError(t, err)
			// From here on the slow client reads nothing.
		}
		const fast, msgs = 100, 3000
		var lat []time.Duration
		var latMu sync.Mutex
		received := make(chan struct{}, fast)
		var clients []*testutil.WSClient
		for range fast {
			c, err := testutil.DialWS(ctx, wsURL(srv), 0)
			require.NoError(t, err)
			_, err = c.Subscribe(topic, 1, nil)
			require.NoError(t, err)
			clients = append(clients, c)
			go func() {
				n := 0
				c.Read(func(f []byte) {
					// A cheap parse: 300,000 full JSON decodes under -race
					// would measure the test, not the server.
					var sent int64
					if i := bytes.Index(f, []byte(`"sent":`)); i >= 0 {
						sent, _ = strconv.ParseInt(string(f[i+7:i+7+bytes.IndexByte(f[i+7:], ',')]), 10, 64)
					}
					latMu.Lock()
					lat = append(lat, time.Since(time.Unix(0, sent)))
					latMu.Unlock()
					if n++; n == msgs {
						received <- struct{}{}
					}
				})
			}()
		}
		payload := fmt.Sprintf("%02000d", 0)
		for i := 0; i < msgs; i += 10 {
			var items []string
			for range 10 {
				items = append(items, fmt.Sprintf(`{"topic":%q,"data":{"sent":%d,"pad":"%s"}}`, topic, time.Now().UnixNano(), payload))
			}
			status, body := post(t, srv, `{"messages":[`+join(items)+`]}`)
			require.Equal(t, http.StatusOK, status, "%s", body)
			time.Sleep(2 * time.Millisecond) // pace the publisher so latency means delivery time, not backlog
		}
		for range fast {
			select {
			case <-received:
			case <-time.After(3 * time.Minute):
				t.Fatal("fast clients did not get every message")
			}
		}
		for _, c := range clients {
			c.Close()
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return lat[len(lat)*99/100], slow
	}

	base, _ := measure("calm", false)
	withSlow, slow := measure("stormy", true)
	t.Logf("fast clients' p99 latency: %v alone, %v beside a client that does not read", base, withSlow)
	require.Less(t, withSlow, 3*base+50*time.Millisecond, "a slow client must not slow the others")

	// Now the slow client reads: what was in flight, then the close.
	var slowBytes atomic.Int64
	go slow.Read(func(f []byte) { slowBytes.Add(int64(len(f))) })
	select {
	case <-slow.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("slow client not closed; conns on the server %d, err %v, read %d bytes", srv.Node().Conns(), slow.Err, slowBytes.Load())
	}
	require.Equal(t, wire.CloseSlowConsumer, slow.CloseCode, "reason %q err %v", slow.CloseReason, slow.Err)
}
