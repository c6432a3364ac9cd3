package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk"
)

// lossTopic follows one subscription of the loss test. The SDK's handler
// and the sampler share it.
type lossTopic struct {
	name string

	mu          sync.Mutex
	seqs        []uint64
	lastArrival time.Time
	maxGap      time.Duration // longest time between two arrivals
	// newestSent is when the newest message received was published (Unix
	// nanoseconds, from its data), 0 before the first.
	newestSent atomic.Int64
}

func (lt *lossTopic) handle(m sdk.Message) {
	var d struct {
		Sent int64 `json:"sent"`
	}
	if err := json.Unmarshal(m.Data, &d); err != nil {
		panic(fmt.Sprintf("message %s:%d: %v", m.Topic, m.Seq, err))
	}
	now := time.Now()
	lt.mu.Lock()
	lt.seqs = append(lt.seqs, m.Seq)
	if !lt.lastArrival.IsZero() {
		lt.maxGap = max(lt.maxGap, now.Sub(lt.lastArrival))
	}
	lt.lastArrival = now
	lt.mu.Unlock()
	lt.newestSent.Store(d.Sent)
}

func (lt *lossTopic) received() []uint64 {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return slices.Clone(lt.seqs)
}

// TestWTLossDatagramVsStream: through a relay that drops 5% of the packets
// each way (and adds 10 ms each way, so that a retransmission costs a
// round trip of 20 ms as on a real network), one client follows a datagram
// topic and a stream topic, both published at 200 messages per second for
// 5 s. The stream topic arrives complete and in order; the datagram topic
// loses messages but its newest value keeps arriving: no arrival gap of
// 1 s or more, and the last value received is within a few of the last
// published. The test logs the age of the newest value each subscription
// holds, sampled every 2 ms while publishing (a figure for
// docs/benchmarks.md).
func TestWTLossDatagramVsStream(t *testing.T) {
	testutil.SkipIfShort(t)
	const (
		loss     = 0.05
		delay    = 10 * time.Millisecond
		rate     = 200 // messages per second and topic
		duration = 5 * time.Second
		dgTopic  = "loss.datagram"
		stTopic  = "loss.stream"
	)
	srv, wtURL, hash := startWT(t, server.Config{})
	relay := newLossyRelay(t, wtURL, loss, delay)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var reconnects atomic.Int64
	c, err := sdk.Dial(ctx, relay.url(), sdk.Config{
		CertHash: hash,
		OnEvent: func(e sdk.Event) {
			if e.Kind == sdk.EventDisconnected {
				reconnects.Add(1)
			}
		},
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	dg, st := &lossTopic{name: dgTopic}, &lossTopic{name: stTopic}
	_, err = c.Subscribe(ctx, dgTopic, dg.handle, sdk.Datagram())
	require.NoError(t, err)
	_, err = c.Subscribe(ctx, stTopic, st.handle)
	require.NoError(t, err)

	res := runLossWorkload(t, srv, dg, st, rate, duration)
	require.Zero(t, reconnects.Load(), "the connection broke")
	res.check(t, relay, loss, delay, rate)
}

// lossResult is what runLossWorkload measured.
type lossResult struct {
	dg, st                         *lossTopic
	lastDG, lastST                 uint64
	published                      time.Duration
	dgAges, stAges, dgLags, stLags []time.Duration
}

// runLossWorkload publishes a message to each of dg's and st's topics rate
// times a second for duration, one POST each time, and samples the age of
// the newest value each subscription has, until the stream topic is
// complete.
func runLossWorkload(t *testing.T, srv *server.Server, dg, st *lossTopic, rate int, duration time.Duration) *lossResult {
	t.Helper()
	dgTopic, stTopic := dg.name, st.name
	// The sampler: the age of the newest value of each topic, and how far
	// it is behind the newest value published (which leaves out the
	// publisher's own hiccups, common to both topics).
	var dgAges, stAges, dgLags, stLags []time.Duration
	var issued atomic.Int64 // when the newest POST started, Unix ns
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case now := <-tick.C:
				last := issued.Load()
				if sent := dg.newestSent.Load(); sent > 0 {
					dgAges = append(dgAges, now.Sub(time.Unix(0, sent)))
					dgLags = append(dgLags, time.Duration(last-sent))
				}
				if sent := st.newestSent.Load(); sent > 0 {
					stAges = append(stAges, now.Sub(time.Unix(0, sent)))
					stLags = append(stLags, time.Duration(last-sent))
				}
			}
		}
	}()

	// The publisher: one POST with a message for each topic per tick.
	var lastDG, lastST uint64
	tick := time.NewTicker(time.Second / time.Duration(rate))
	start := time.Now()
	for time.Since(start) < duration {
		<-tick.C
		sent := time.Now().UnixNano()
		issued.Store(sent)
		status, body := post(t, srv, fmt.Sprintf(`{"messages":[{"topic":%q,"data":{"sent":%d}},{"topic":%q,"data":{"sent":%d}}]}`,
			dgTopic, sent, stTopic, sent))
		require.Equal(t, http.StatusOK, status, "%s", body)
		var res struct {
			Results []struct {
				Seq uint64 `json:"seq"`
			} `json:"results"`
		}
		require.NoError(t, json.Unmarshal(body, &res))
		lastDG, lastST = res.Results[0].Seq, res.Results[1].Seq
	}
	tick.Stop()
	published := time.Since(start)
	// Ages count while values are published: after, they only grow.
	close(stopSampling)
	<-sampled

	testutil.Eventually(t, 20*time.Second, func() error {
		if n := len(st.received()); uint64(n) < lastST {
			return fmt.Errorf("stream topic: %d of %d messages", n, lastST)
		}
		return nil
	})
	// The last datagrams may be lost; what came by now is what counts.
	time.Sleep(200 * time.Millisecond)
	return &lossResult{dg: dg, st: st, lastDG: lastDG, lastST: lastST, published: published,
		dgAges: dgAges, stAges: stAges, dgLags: dgLags, stLags: stLags}
}

// check asserts the stream topic complete and in order, and the datagram
// topic never going back and still fresh at the end, and logs the figures.
func (r *lossResult) check(t *testing.T, relay *lossyRelay, loss float64, delay time.Duration, rate int) {
	t.Helper()
	dg, st, lastDG, lastST, published := r.dg, r.st, r.lastDG, r.lastST, r.published
	dgAges, stAges, dgLags, stLags := r.dgAges, r.stAges, r.dgLags, r.stLags

	stSeqs := st.received()
	require.Len(t, stSeqs, int(lastST))
	for i, s := range stSeqs {
		require.Equal(t, uint64(i+1), s, "stream topic: delivery %d", i)
	}
	dgSeqs := dg.received()
	require.NotEmpty(t, dgSeqs)
	for i := 1; i < len(dgSeqs); i++ {
		require.Greater(t, dgSeqs[i], dgSeqs[i-1], "datagram topic: seq went back")
	}
	dg.mu.Lock()
	dgMaxGap := dg.maxGap
	dg.mu.Unlock()
	st.mu.Lock()
	stMaxGap := st.maxGap
	st.mu.Unlock()
	require.Less(t, dgMaxGap, time.Second, "datagram topic: a stall")
	require.GreaterOrEqual(t, dgSeqs[len(dgSeqs)-1]+5, lastDG, "datagram topic: the newest value did not arrive")

	t.Logf("%.0f%% loss each way, %v one way, %d msg/s per topic for %v; relay dropped %d of %d packets",
		loss*100, delay, rate, published.Round(time.Millisecond), relay.dropped.Load(), relay.dropped.Load()+relay.forwarded.Load())
	for _, r := range []struct {
		name       string
		got, of    int
		gap        time.Duration
		ages, lags []time.Duration
	}{
		{"datagram", len(dgSeqs), int(lastDG), dgMaxGap, dgAges, dgLags},
		{"stream  ", len(stSeqs), int(lastST), stMaxGap, stAges, stLags},
	} {
		a50, a99, amax := percentiles(r.ages)
		l50, l99, lmax := percentiles(r.lags)
		t.Logf("%s topic: %d of %d messages, longest gap between arrivals %v; newest value age p50 %v p99 %v max %v; "+
			"behind the newest published p50 %v p99 %v max %v",
			r.name, r.got, r.of, r.gap.Round(time.Millisecond), a50, a99, amax, l50, l99, lmax)
	}
}

// percentiles returns the median, 99th percentile and maximum of ds,
// rounded to 0.1 ms.
func percentiles(ds []time.Duration) (p50, p99, most time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return r(s[len(s)/2]), r(s[len(s)*99/100]), r(s[len(s)-1])
}
