package test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
)

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}

// TestLeakVanishingClients: 10,000 clients (WebSocket, and some over
// WebTransport) connect, subscribe and vanish without a close frame (TCP
// FIN, TCP reset, or a QUIC connection that goes silent); then the
// node's goroutines, file descriptors, connection actors and relays return
// to where they were. At most 2,000 are open at once: each loopback
// connection costs two descriptors in this process.
func TestLeakVanishingClients(t *testing.T) {
	testutil.SkipIfShort(t)
	const total, wave, wtClients, topics = 10000, 2000, 200, 100
	srv := startSecure(t, server.Config{})
	node := srv.Node()

	// One client of each kind first, so that pools and pollers exist in
	// the baseline.
	for _, tr := range secTransports {
		c := dialSec(t, srv, tr, "")
		c.alive(t)
		c.close()
	}
	settled := func(goroutines, fds int) func() error {
		return func() error {
			g, f := runtime.NumGoroutine(), openFDs(t)
			switch {
			case node.Conns() != 0 || node.Relays() != 0 || srv.Guard().Conns() != 0:
				return fmt.Errorf("conns %d, relays %d, guard %d", node.Conns(), node.Relays(), srv.Guard().Conns())
			case goroutines >= 0 && g > goroutines:
				return fmt.Errorf("%d goroutines, baseline %d", g, goroutines)
			case fds >= 0 && f > fds:
				return fmt.Errorf("%d file descriptors, baseline %d", f, fds)
			}
			return nil
		}
	}
	testutil.Eventually(t, 30*time.Second, settled(-1, -1))
	runtime.GC()
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)
	t.Logf("baseline: %d goroutines, %d file descriptors", baseG, baseFD)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var peakConns atomic.Int64
	start := time.Now()
	for w := 0; w < total; w += wave {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(32)
		var vanish []func()
		var mu sync.Mutex
		for i := w; i < w+wave; i++ {
			g.Go(func() error {
				topic := "leak." + strconv.Itoa(i%topics)
				var gone func()
				if i < wtClients {
					c := dialSec(t, srv, "wt", "")
					c.cmd(`{"op":"sub","id":1,"topic":%q}`, topic)
					if f := c.reply(1); f.Op != "ok" {
						return fmt.Errorf("sub: %s", f.Raw)
					}
					gone = c.drop // QUIC CONNECTION_CLOSE, no session close
					if i%2 == 0 {
						gone = c.vanish // silence: the server's QUIC idle timeout ends it
					}
				} else {
					c, err := testutil.DialWS(gctx, wsURL(srv), 0)
					if err != nil {
						return err
					}
					ok, err := c.Subscribe(topic, 1, nil)
					if err != nil || ok.Op != "ok" {
						return fmt.Errorf("sub: %v %s", err, ok.Raw)
					}
					gone = func() {
						if i%2 == 0 {
							// A reset rather than a FIN.
							if tc, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
								_ = tc.SetLinger(0) // best effort: a FIN is fine too
							}
						}
						_ = c.Close()
					}
				}
				mu.Lock()
				vanish = append(vanish, gone)
				mu.Unlock()
				return nil
			})
		}
		require.NoError(t, g.Wait())
		peakConns.Store(max(peakConns.Load(), int64(node.Conns())))
		for _, gone := range vanish {
			gone()
		}
		testutil.Eventually(t, time.Minute, func() error {
			if n := node.Conns(); n > 0 {
				return fmt.Errorf("wave %d: %d connections left", w/wave, n)
			}
			return nil
		})
	}
	t.Logf("%d clients in %v, at most %d at once", total, time.Since(start).Round(time.Millisecond), peakConns.Load())
	// Goroutines and descriptors of quic-go and of the HTTP server end a
	// little after their connections.
	testutil.Eventually(t, time.Minute, func() error {
		runtime.GC()
		return settled(baseG, baseFD)()
	})
	t.Logf("after: %d goroutines, %d file descriptors", runtime.NumGoroutine(), openFDs(t))
}
