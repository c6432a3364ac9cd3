// Command pubload measures how many client publishes (the protocol's pub
// frame over WebSocket) one topic accepts per second: -conns connections,
// each with -inflight publishes waiting for their answers at any time, for
// -duration. It reports the answered publishes per second and checks that
// the topic numbered each exactly once (its head grew by the answers).
// Part of scripts/hot-topic.sh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/topicast/topicast/sdk"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8091", "server's HTTP URL")
	topic := flag.String("topic", "hot.pub", "topic to publish to")
	conns := flag.Int("conns", 8, "WebSocket connections")
	inflight := flag.Int("inflight", 16, "publishes waiting for an answer per connection")
	duration := flag.Duration("duration", 10*time.Second, "how long to publish")
	flag.Parse()
	if err := run(*base, *topic, *conns, *inflight, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "pubload:", err)
		os.Exit(1)
	}
}

func head(base, topic string) (uint64, error) {
	resp, err := http.Get(base + "/v1/history?limit=1&topic=" + topic)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var h struct {
		Head uint64 `json:"head"`
	}
	return h.Head, json.NewDecoder(resp.Body).Decode(&h)
}

func run(base, topic string, conns, inflight int, duration time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), duration+time.Minute)
	defer cancel()
	before, err := head(base, topic)
	if err != nil {
		return err
	}
	wsURL := "ws" + base[len("http"):] + "/ws"
	clients := make([]*sdk.Client, conns)
	for i := range clients {
		if clients[i], err = sdk.Dial(ctx, wsURL, sdk.Config{}); err != nil {
			return err
		}
		defer clients[i].Close()
	}
	var answered, failed atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(duration)
	var wg sync.WaitGroup
	data := json.RawMessage(`{"v":12345,"name":"a hot topic message"}`)
	start := time.Now()
	for _, c := range clients {
		for range inflight {
			wg.Go(func() {
				for time.Now().Before(stop) {
					if _, err := c.Publish(ctx, topic, data); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
						return
					}
					answered.Add(1)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	after, err := head(base, topic)
	if err != nil {
		return err
	}
	fmt.Printf("client pub: %d conns x %d in flight, %v: %d answered (%.0f/s), %d failed; head %d -> %d\n",
		conns, inflight, elapsed.Round(time.Millisecond), answered.Load(), float64(answered.Load())/elapsed.Seconds(),
		failed.Load(), before, after)
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("first failure: %v", e)
	}
	if after-before != uint64(answered.Load()) {
		return fmt.Errorf("the topic numbered %d messages for %d answers", after-before, answered.Load())
	}
	log.SetFlags(0)
	return nil
}
