package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/testutil"
)

// joinClock records when each watcher saw each join, by the member's info
// key.
type joinClock struct {
	mu   sync.Mutex
	seen map[int][]time.Time // key -> one time per watcher that saw it
}

func (j *joinClock) count(keys []int) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, k := range keys {
		n += len(j.seen[k])
	}
	return n
}

// nodeMetric reads one unlabelled metric from a node's /metrics.
func nodeMetric(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	resp, err := httpClient.Get("http://" + httpAddr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("%s: no %s in /metrics", httpAddr, name)
	return 0
}

// cpuSeconds is a process's user and system CPU time so far (/proc).
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	// The command name may hold spaces: the fields start after its ')'.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, err := strconv.ParseFloat(fields[11], 64)
	require.NoError(t, err)
	stime, err := strconv.ParseFloat(fields[12], 64)
	require.NoError(t, err)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

// TestPresenceJoinCost is issue 17's benchmark on three node processes (a
// measurement: only the message count is asserted): 100 watchers spread
// over the nodes see members join at 100 joins/s, first 300 then 600
// more. It reports, per join, the presence messages sent between nodes
// (which must not grow with the members: one change to the topic's node,
// one event message to each other node), the nodes' CPU, and the time from
// an enter to each watcher's join (p50, p99).
func TestPresenceJoinCost(t *testing.T) {
	testutil.SkipIfShort(t)
	const watchers, rate = 100, 100
	c := newCluster(t, clusterOpts{nodes: 3, static: true, extra: []string{"--config", presenceConfig(t)}})
	c.start()
	const topic = "room.bench"
	clock := &joinClock{seen: map[int][]time.Time{}}
	for i := range watchers {
		n := c.nodes[i%len(c.nodes)]
		w, err := testutil.DialWS(context.Background(), n.wsURL(), 0)
		require.NoError(t, err)
		t.Cleanup(func() { w.Close() })
		require.NoError(t, w.Send(`{"op":"sub","id":1,"topic":"`+topic+`","presence":true}`))
		f, err := w.ReadUntil(func(f testutil.Frame) bool { return f.ID == 1 }, nil)
		require.NoError(t, err)
		require.Equal(t, "ok", f.Op, f.Raw)
		go w.Read(func(frame []byte) {
			at := time.Now()
			var ev struct {
				Op   string `json:"op"`
				Info struct {
					K int `json:"k"`
				} `json:"info"`
			}
			if json.Unmarshal(frame, &ev) != nil || ev.Op != "join" {
				return
			}
			clock.mu.Lock()
			clock.seen[ev.Info.K] = append(clock.seen[ev.Info.K], at)
			clock.mu.Unlock()
		})
	}

	next := 0
	phase := func(members int) (msgsPerJoin float64) {
		t.Helper()
		conns := make([]*testutil.WSClient, members)
		for i := range conns {
			m, err := testutil.DialWS(context.Background(), c.nodes[i%len(c.nodes)].wsURL(), 0)
			require.NoError(t, err)
			t.Cleanup(func() { m.Close() })
			go m.Read(func([]byte) {}) // answers pings; the oks are not waited for
			conns[i] = m
		}
		// The nodes' CPU when idle (membership, heartbeats), to take out
		// of the phase's.
		nodesCPU := func() (s float64) {
			for _, n := range c.nodes {
				s += cpuSeconds(t, n.cmd.Process.Pid)
			}
			return s
		}
		idle0, idleAt := nodesCPU(), time.Now()
		time.Sleep(3 * time.Second)
		idlePerSec := (nodesCPU() - idle0) / time.Since(idleAt).Seconds()
		msgs0 := 0.0
		for _, n := range c.nodes {
			msgs0 += nodeMetric(t, n.http, "topicast_presence_remote_messages_total")
		}
		cpu0, start := nodesCPU(), time.Now()
		keys := make([]int, members)
		sent := make(map[int]time.Time, members)
		tick := time.NewTicker(time.Second / rate)
		for i, m := range conns {
			<-tick.C
			k := next
			next++
			keys[i] = k
			sent[k] = time.Now()
			require.NoError(t, m.Send(fmt.Sprintf(`{"op":"enter","id":1,"topic":%q,"info":{"k":%d}}`, topic, k)))
		}
		tick.Stop()
		testutil.Eventually(t, 60*time.Second, func() error {
			if n := clock.count(keys); n < members*watchers {
				return fmt.Errorf("%d of %d joins seen", n, members*watchers)
			}
			return nil
		})
		cpu1, elapsed := nodesCPU(), time.Since(start)
		msgs1 := 0.0
		for _, n := range c.nodes {
			msgs1 += nodeMetric(t, n.http, "topicast_presence_remote_messages_total")
		}
		var lat []time.Duration
		clock.mu.Lock()
		for _, k := range keys {
			require.Len(t, clock.seen[k], watchers, "member %d: every watcher sees its join once", k)
			for _, at := range clock.seen[k] {
				lat = append(lat, at.Sub(sent[k]))
			}
		}
		clock.mu.Unlock()
		slices.Sort(lat)
		msgsPerJoin = (msgs1 - msgs0) / float64(members)
		perJoin := (cpu1 - cpu0 - idlePerSec*elapsed.Seconds()) / float64(members)
		t.Logf("%d joins at %d/s (members before: %d), %d watchers over %d nodes: %.2f presence messages between nodes per join, %.0f µs of the nodes' CPU per join above their idle %.0f ms/s, enter to join seen p50 %v p99 %v",
			members, rate, next-members, watchers, len(c.nodes), msgsPerJoin, perJoin*1e6, idlePerSec*1e3,
			lat[len(lat)/2].Round(100*time.Microsecond), lat[len(lat)*99/100].Round(100*time.Microsecond))
		return msgsPerJoin
	}
	first := phase(300)
	second := phase(600)
	// A join costs one change to the topic's node (unless the member is
	// there) and one event message to each other node: at most the number
	// of nodes, however many members there are.
	require.LessOrEqual(t, first, float64(len(c.nodes)))
	require.LessOrEqual(t, second, float64(len(c.nodes)))
}
