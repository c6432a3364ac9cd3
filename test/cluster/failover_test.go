package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	tccluster "github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk"
)

// position is where a client is in a topic.
type position struct {
	epoch string
	seq   uint64
}

// sdkClient is a Go SDK client (reconnecting, recovering with since) that
// checks what it is handed: every message follows the previous one (same
// epoch, seq+1) unless an EventReset announced the jump.
type sdkClient struct {
	idx    int
	c      *sdk.Client
	topics []string

	mu        sync.Mutex
	url       string
	pos       map[string]position
	got       int
	resets    map[string]int
	gaps      int
	errs      []string
	watchFrom time.Time // a kill: record the time to the next message
	recovered []time.Duration
}

func (s *sdkClient) fail(format string, args ...any) {
	if len(s.errs) < 5 {
		s.errs = append(s.errs, fmt.Sprintf(format, args...))
	}
}

func (s *sdkClient) onEvent(e sdk.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Kind {
	case sdk.EventConnected:
		s.url = e.URL
	case sdk.EventReset:
		s.resets[e.Topic]++
		s.pos[e.Topic] = position{e.Epoch, e.Seq}
	case sdk.EventGap:
		s.gaps++
		s.fail("gap in %s after %s:%d", e.Topic, e.Epoch, e.Seq)
	case sdk.EventSubscriptionEnded, sdk.EventClosed, sdk.EventError:
		s.fail("event %v", e)
	}
}

func (s *sdkClient) onMessage(m sdk.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pos[m.Topic]
	switch {
	case !ok && m.Seq != 1:
		s.fail("%s: first message is seq %d", m.Topic, m.Seq)
	case ok && p.epoch == "" && m.Seq != p.seq+1:
		s.fail("%s: seq %d after %d", m.Topic, m.Seq, p.seq)
	case ok && p.epoch != "" && (m.Epoch != p.epoch || m.Seq != p.seq+1):
		s.fail("%s: %s:%d after %s:%d with no reset", m.Topic, m.Epoch, m.Seq, p.epoch, p.seq)
	}
	s.pos[m.Topic] = position{m.Epoch, m.Seq}
	s.got++
	if !s.watchFrom.IsZero() {
		s.recovered = append(s.recovered, time.Since(s.watchFrom))
		s.watchFrom = time.Time{}
	}
}

func (s *sdkClient) position(topic string) position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos[topic]
}

// dialClients connects n SDK clients to the given nodes in turn, each with
// the others as fallbacks, subscribed to two topics.
func dialClients(t *testing.T, ctx context.Context, nodes []*node, all []*node, n int) []*sdkClient {
	t.Helper()
	clients := make([]*sdkClient, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range clients {
		g.Go(func() error {
			home := nodes[i%len(nodes)]
			var fallbacks []string
			for k := range all {
				if o := all[(i+k)%len(all)]; o != home {
					fallbacks = append(fallbacks, o.wsURL())
				}
			}
			s := &sdkClient{idx: i, topics: clientTopics(i), pos: make(map[string]position), resets: make(map[string]int)}
			s.url = home.wsURL() // before Dial: its OnEvent may set it from another goroutine
			c, err := sdk.Dial(gctx, home.wsURL(), sdk.Config{
				FallbackURLs: fallbacks,
				MinBackoff:   50 * time.Millisecond,
				MaxBackoff:   time.Second,
				OnEvent:      s.onEvent,
			})
			if err != nil {
				return fmt.Errorf("client %d: %w", i, err)
			}
			s.c = c
			for _, topic := range s.topics {
				if _, err := c.Subscribe(gctx, topic, s.onMessage); err != nil {
					return fmt.Errorf("client %d sub %s: %w", i, topic, err)
				}
				s.mu.Lock()
				s.pos[topic] = position{seq: 0}
				s.mu.Unlock()
			}
			clients[i] = s
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range clients {
			if s != nil {
				s.c.Close()
			}
		}
	})
	return clients
}

// loadGen publishes to the nodes in turn, with idempotency keys, at about
// rate messages per second in total, until stop or max messages.
type loadGen struct {
	mu   sync.Mutex
	seqs map[string]map[uint64]int // topic -> epoch-less seq -> times answered
	keys map[string]publishResult
	n    atomic.Int64
}

func (l *loadGen) run(ctx context.Context, addrs func() []string, rate, max int, stop <-chan struct{}) error {
	l.seqs = make(map[string]map[uint64]int)
	l.keys = make(map[string]publishResult)
	g, gctx := errgroup.WithContext(ctx)
	every := time.Duration(loadPublishers) * time.Second / time.Duration(rate)
	for p := range loadPublishers {
		g.Go(func() error {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return nil
				case <-gctx.Done():
					return gctx.Err()
				case <-tick.C:
				}
				n := int(l.n.Add(1) - 1)
				if n >= max {
					return nil
				}
				topic := topicName(n % loadTopics)
				key := fmt.Sprintf("m%d", n)
				data, _ := json.Marshal(msgData{P: p, N: n, TS: time.Now().UnixNano()})
				pctx, cancel := context.WithTimeout(gctx, 30*time.Second)
				r, _, err := publishRetry(pctx, addrs, n, topic, key, data)
				cancel()
				if err != nil {
					return fmt.Errorf("publish %s: %w", key, err)
				}
				l.mu.Lock()
				m := l.seqs[r.Epoch+"/"+topic]
				if m == nil {
					m = make(map[uint64]int)
					l.seqs[r.Epoch+"/"+topic] = m
				}
				m[r.Seq]++
				l.keys[key] = r
				l.mu.Unlock()
			}
		})
	}
	return g.Wait()
}

// heads returns each topic's epoch and head, asked on addr.
func heads(t *testing.T, addr string) map[string]position {
	t.Helper()
	out := make(map[string]position)
	for i := range loadTopics {
		epoch, head, err := history(addr, topicName(i))
		if err != nil {
			t.Fatal(err)
		}
		out[topicName(i)] = position{epoch, head}
	}
	return out
}

// converge waits until every client reached its topics' heads.
func converge(t *testing.T, clients []*sdkClient, hs map[string]position, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, s := range clients {
		for _, topic := range s.topics {
			for {
				p := s.position(topic)
				if p == hs[topic] {
					break
				}
				if time.Now().After(deadline) {
					s.mu.Lock()
					t.Fatalf("client %d (%s) topic %s at %s:%d, head %s:%d; errs %v", s.idx, s.url, topic, p.epoch, p.seq,
						hs[topic].epoch, hs[topic].seq, s.errs)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	slices.Sort(ds)
	return fmt.Sprintf("min %v p50 %v max %v (n=%d)", ds[0].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond),
		ds[len(ds)-1].Round(time.Millisecond), len(ds))
}

// runKill: kill -9 a node under load 5 times in a row (a different one each
// time, restarted each time). Clients of the dead node reconnect to a live
// one and recover with since.
func runKill(t *testing.T, redis string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := newCluster(t, clusterOpts{nodes: 3, static: true, redis: redis})
	c.start()
	clients := dialClients(t, ctx, c.nodes, c.nodes, loadClients)

	var live sync.Map // http addr -> bool
	for _, n := range c.nodes {
		live.Store(n.http, true)
	}
	addrs := func() []string {
		var out []string
		for _, n := range c.nodes {
			if v, _ := live.Load(n.http); v == true {
				out = append(out, n.http)
			}
		}
		return out
	}
	var gen loadGen
	stop := make(chan struct{})
	pubErr := make(chan error, 1)
	go func() { pubErr <- gen.run(ctx, addrs, 1000, loadMessages, stop) }()

	var kills []string
	for k := range 5 {
		time.Sleep(1500 * time.Millisecond)
		victim := c.nodes[k%len(c.nodes)]
		now := time.Now()
		for _, s := range clients {
			s.mu.Lock()
			if s.url == victim.wsURL() {
				s.watchFrom = now
			}
			s.mu.Unlock()
		}
		live.Store(victim.http, false)
		c.kill(victim)
		kills = append(kills, fmt.Sprintf("%s at %d msgs", victim.name, gen.n.Load()))
		time.Sleep(1500 * time.Millisecond)
		c.start(victim)
		live.Store(victim.http, true)
	}
	// The publishers go on to all 20,000 messages.
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	close(stop)
	hs := heads(t, c.nodes[0].http)
	converge(t, clients, hs, 60*time.Second)

	var rec []time.Duration
	resets, total := 0, 0
	for _, s := range clients {
		s.mu.Lock()
		if len(s.errs) > 0 {
			t.Errorf("client %d: %v", s.idx, s.errs)
		}
		for _, n := range s.resets {
			resets += n
		}
		total += s.got
		rec = append(rec, s.recovered...)
		s.mu.Unlock()
	}
	t.Logf("kills: %s; %d messages published, %d delivered, %d resets", strings.Join(kills, ", "), len(gen.keys), total, resets)
	t.Logf("kill -9 to the first message on a client of the dead node: %s", durations(rec))
	if redis != "" {
		if resets != 0 {
			t.Errorf("%d resets with durable history, want none", resets)
		}
		// Zero loss, no duplicate: each topic's seqs 1..head once each, one
		// per key.
		for topic, h := range hs {
			m := gen.seqs[h.epoch+"/"+topic]
			if len(gen.seqs) != loadTopics {
				t.Errorf("publishes saw %d (epoch, topic) pairs, want %d: an epoch changed", len(gen.seqs), loadTopics)
			}
			if uint64(len(m)) != h.seq {
				t.Errorf("topic %s: %d distinct seqs answered, head %d", topic, len(m), h.seq)
			}
			for seq, n := range m {
				if n != 1 || seq < 1 || seq > h.seq {
					t.Errorf("topic %s: seq %d answered %d times", topic, seq, n)
				}
			}
		}
	}
}

func TestKillNodeWithRedis(t *testing.T) {
	testutil.SkipIfShort(t)
	runKill(t, startRedis(t))
}

func TestKillNodeWithoutRedis(t *testing.T) {
	testutil.SkipIfShort(t)
	runKill(t, "")
}

// runJoin: a third node joins two under load. With Redis no client loses
// anything or sees a reset; without, only the topics that moved reset.
func runJoin(t *testing.T, redis string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCluster(t, clusterOpts{nodes: 3, static: true, redis: redis})
	first := c.nodes[:2]
	c.start(first...)
	clients := dialClients(t, ctx, first, first, 200)
	var joined atomic.Bool
	addrs := func() []string {
		if joined.Load() {
			return []string{c.nodes[0].http, c.nodes[1].http, c.nodes[2].http}
		}
		return []string{c.nodes[0].http, c.nodes[1].http}
	}
	var gen loadGen
	stop := make(chan struct{})
	pubErr := make(chan error, 1)
	go func() { pubErr <- gen.run(ctx, addrs, 1000, loadMessages, stop) }()
	time.Sleep(2 * time.Second)
	c.start(c.nodes[2])
	joined.Store(true)
	time.Sleep(3 * time.Second)
	close(stop)
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	hs := heads(t, c.nodes[2].http)
	converge(t, clients, hs, 60*time.Second)

	before, after := c.clusterAddrs(first...), c.clusterAddrs(c.nodes...)
	moved := make(map[string]bool)
	for i := range loadTopics {
		topic := topicName(i)
		moved[topic] = tccluster.TopicOwner(before, topic) != tccluster.TopicOwner(after, topic)
	}
	var movedList []string
	for topic, m := range moved {
		if m {
			movedList = append(movedList, topic)
		}
	}
	sort.Strings(movedList)
	if len(movedList) == 0 {
		t.Fatal("no topic moved to the new node")
	}
	resets := make(map[string]int)
	for _, s := range clients {
		s.mu.Lock()
		if len(s.errs) > 0 {
			t.Errorf("client %d: %v", s.idx, s.errs)
		}
		for topic, n := range s.resets {
			resets[topic] += n
		}
		s.mu.Unlock()
	}
	t.Logf("%d messages; topics moved to n3: %v; resets by topic: %v", len(gen.keys), movedList, resets)
	for topic, n := range resets {
		if redis != "" || !moved[topic] {
			t.Errorf("topic %s (moved %v): %d resets, want none", topic, moved[topic], n)
		}
	}
}

func TestNodeJoinsWithRedis(t *testing.T) {
	testutil.SkipIfShort(t)
	runJoin(t, startRedis(t))
}

func TestNodeJoinsWithoutRedis(t *testing.T) {
	testutil.SkipIfShort(t)
	runJoin(t, "")
}
