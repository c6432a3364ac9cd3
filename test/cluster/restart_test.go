package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/topicast/topicast/internal/testutil"
)

// restartTopics is how many topics the restart and pause tests watch; with
// three nodes about two thirds of them live on another node than the one
// under test.
const restartTopics = 20

func restartTopic(i int) string { return fmt.Sprintf("restart.%02d", i) }

// topicWatcher is one WebSocket client subscribed to every restart topic,
// which records, per topic, the seqs it got and how it ended.
type topicWatcher struct {
	c *testutil.WSClient

	mu     sync.Mutex
	got    map[string][]uint64
	resets map[string]int
	other  []string
}

// watchTopics subscribes a client on n to every restart topic.
func watchTopics(t *testing.T, n *node) *topicWatcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := testutil.DialWS(ctx, n.wsURL(), 0)
	if err != nil {
		t.Fatalf("dial %s: %v", n.name, err)
	}
	w := &topicWatcher{c: c, got: make(map[string][]uint64), resets: make(map[string]int)}
	for i := range restartTopics {
		f, err := c.Subscribe(restartTopic(i), i+1, nil)
		if err != nil || f.Op != "ok" {
			t.Fatalf("subscribe %s on %s: %v %s", restartTopic(i), n.name, err, f.Raw)
		}
	}
	go c.Read(w.onFrame)
	t.Cleanup(func() { c.Close() })
	return w
}

func (w *topicWatcher) onFrame(f []byte) {
	var fr struct {
		Op    string `json:"op"`
		Topic string `json:"topic"`
		Seq   uint64 `json:"seq"`
	}
	if err := json.Unmarshal(f, &fr); err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch fr.Op {
	case "msg":
		w.got[fr.Topic] = append(w.got[fr.Topic], fr.Seq)
	case "reset":
		w.resets[fr.Topic]++
		w.got[fr.Topic] = append(w.got[fr.Topic], 0) // the next seq may jump
	default:
		if len(w.other) < 10 {
			w.other = append(w.other, string(f))
		}
	}
}

// gaps returns the silent jumps in what w received: a seq that does not
// follow the one before, with no reset between.
func (w *topicWatcher) gaps() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for topic, seqs := range w.got {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] != 0 && seqs[i-1] != 0 && seqs[i] != seqs[i-1]+1 {
				out = append(out, fmt.Sprintf("%s: %d after %d", topic, seqs[i], seqs[i-1]))
			}
		}
	}
	return out
}

// missing returns the topics for which the watcher has not received seq.
func (w *topicWatcher) missing(seqs map[string]uint64) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for i := range restartTopics {
		topic := restartTopic(i)
		found := false
		for _, s := range w.got[topic] {
			if s == seqs[topic] {
				found = true
			}
		}
		if !found {
			out = append(out, topic)
		}
	}
	return out
}

// publishAll publishes one message to every restart topic through addr and
// returns the seq each got.
func publishAll(t *testing.T, addr string, round int) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seqs := make(map[string]uint64)
	for i := range restartTopics {
		topic := restartTopic(i)
		data, _ := json.Marshal(msgData{P: round, N: i, TS: time.Now().UnixNano()})
		r, _, err := publishRetry(ctx, func() []string { return []string{addr} }, 0, topic, fmt.Sprintf("r%d-%d", round, i), data)
		if err != nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
		seqs[topic] = r.Seq
	}
	return seqs
}

// expectAll waits until w got the message of every topic in seqs.
func expectAll(t *testing.T, w *topicWatcher, seqs map[string]uint64, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		miss := w.missing(seqs)
		if len(miss) == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Fatalf("%s: after %v, %d of %d topics delivered nothing: %v (other frames: %v)", what, d,
				len(miss), restartTopics, miss, w.other)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runRestart: a node killed with -9 and started again at the same address
// takes subscriptions at once, and every topic delivers to them, wherever
// the topic lives. (On 260bbd7, topics on the other nodes kept the new
// relays' watch answered by the dead process's endpoint and dropped them:
// 5 to 9 of 20 topics delivered nothing, silently.)
func runRestart(t *testing.T, o clusterOpts) {
	o.nodes = 3
	c := newCluster(t, o)
	c.start()
	n1, victim := c.nodes[0], c.nodes[2]
	// The victim's relays register at topics on the other nodes.
	before := watchTopics(t, victim)
	expectAll(t, before, publishAll(t, n1.http, 0), 10*time.Second, "before the kill")
	// Publishes go on through the kill and the restart: the topics send
	// deliveries towards the dead address meanwhile.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	bg.Add(1)
	go func() {
		defer bg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			topic := restartTopic(n % restartTopics)
			data, _ := json.Marshal(msgData{P: 99, N: n, TS: time.Now().UnixNano()})
			_, _ = publish(ctx, n1.http, topic, fmt.Sprintf("bg%d", n), data) // load only
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for round := 1; round <= 2; round++ {
		c.kill(victim)
		time.Sleep(time.Duration(round-1) * 1500 * time.Millisecond) // at once, then past failure detection
		c.start(victim)
		w := watchTopics(t, victim)
		// Delivered at once, and still after the others noticed that the
		// old process is gone (static: about 1 s; etcd: its lease, 3 s).
		for k := range 3 {
			expectAll(t, w, publishAll(t, n1.http, 10*round+k), 3*time.Second,
				fmt.Sprintf("restart %d, %d s later", round, 2*k))
			time.Sleep(2 * time.Second)
		}
		if g := w.gaps(); len(g) > 0 {
			t.Fatalf("restart %d: silent gaps: %v", round, g)
		}
	}
}

func TestRestartedNodeDeliversWithoutRedis(t *testing.T) {
	testutil.SkipIfShort(t)
	runRestart(t, clusterOpts{static: true})
}

func TestRestartedNodeDeliversEtcd(t *testing.T) {
	testutil.SkipIfShort(t)
	runRestart(t, clusterOpts{etcd: startEtcd(t)})
}

func TestRestartedNodeDeliversWithRedis(t *testing.T) {
	testutil.SkipIfShort(t)
	runRestart(t, clusterOpts{static: true, redis: startRedis(t)})
}
