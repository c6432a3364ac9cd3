package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sync/errgroup"

	tccluster "github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/testutil"
)

const (
	loadTopics     = 20
	loadClients    = 300
	loadMessages   = 20000
	loadPublishers = 6
)

func topicName(i int) string { return fmt.Sprintf("load.%02d", i) }

// clientTopics are the two topics of client i.
func clientTopics(i int) []string {
	return []string{topicName(i % loadTopics), topicName((i + loadTopics/2) % loadTopics)}
}

// orderBook records, per topic, the hash of the frame each seq carried, so
// that every subscriber's copy can be compared: one order for all.
type orderBook struct {
	mu     sync.Mutex
	frames map[string]map[uint64]uint64 // topic -> seq -> xxhash(frame)
}

func newOrderBook() *orderBook { return &orderBook{frames: make(map[string]map[uint64]uint64)} }

func (b *orderBook) check(topic string, seq uint64, frame []byte) error {
	h := xxhash.Sum64(frame)
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.frames[topic]
	if m == nil {
		m = make(map[uint64]uint64)
		b.frames[topic] = m
	}
	if prev, ok := m[seq]; ok && prev != h {
		return fmt.Errorf("topic %s seq %d: two different messages", topic, seq)
	}
	m[seq] = h
	return nil
}

// rawClient is a WebSocket client that checks strictly: every seq once, +1
// each time, and the same message for a seq as every other client.
type rawClient struct {
	c    *testutil.WSClient
	book *orderBook

	mu   sync.Mutex
	last map[string]uint64
	got  int
	errs []string
}

func (r *rawClient) run() {
	r.c.Read(func(f []byte) {
		topic, seq, ok := testutil.MsgSeq(f)
		r.mu.Lock()
		defer r.mu.Unlock()
		if !ok {
			if len(r.errs) < 5 {
				r.errs = append(r.errs, "unexpected frame "+string(f))
			}
			return
		}
		if want := r.last[topic] + 1; seq != want && len(r.errs) < 5 {
			r.errs = append(r.errs, fmt.Sprintf("topic %s: seq %d after %d", topic, seq, r.last[topic]))
		}
		if err := r.book.check(topic, seq, f); err != nil && len(r.errs) < 5 {
			r.errs = append(r.errs, err.Error())
		}
		r.last[topic] = seq
		r.got++
	})
}

func (r *rawClient) lastSeq(topic string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[topic]
}

// runLoad: 300 WebSocket clients spread over the nodes, two topics each out
// of 20, and 20,000 messages published round-robin on every node by 6
// publishers. Every client must see every message of its topics once, in
// the one order all clients of the topic see.
func runLoad(t *testing.T, c *cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	book := newOrderBook()
	clients := make([]*rawClient, loadClients)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range clients {
		g.Go(func() error {
			n := c.nodes[i%len(c.nodes)]
			wc, err := testutil.DialWS(gctx, n.wsURL(), 0)
			if err != nil {
				return fmt.Errorf("client %d on %s: %w", i, n.name, err)
			}
			rc := &rawClient{c: wc, book: book, last: make(map[string]uint64)}
			for j, topic := range clientTopics(i) {
				ok, err := wc.Subscribe(topic, j+1, nil)
				if err != nil || ok.Op != "ok" {
					return fmt.Errorf("client %d sub %s on %s: %v %s", i, topic, n.name, err, ok.Raw)
				}
				rc.last[topic] = ok.Seq
			}
			clients[i] = rc
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	var readers sync.WaitGroup
	for _, rc := range clients {
		readers.Go(rc.run)
	}
	defer func() {
		for _, rc := range clients {
			rc.c.Close()
		}
		readers.Wait()
	}()

	addrs := func() []string {
		var out []string
		for _, n := range c.nodes {
			out = append(out, n.http)
		}
		return out
	}
	var next atomic.Int64
	var seqMu sync.Mutex
	seqs := make(map[string][]uint64)
	start := time.Now()
	pubs, pctx := errgroup.WithContext(ctx)
	for p := range loadPublishers {
		pubs.Go(func() error {
			for {
				n := int(next.Add(1) - 1)
				if n >= loadMessages {
					return nil
				}
				topic := topicName(n % loadTopics)
				data, _ := json.Marshal(msgData{P: p, N: n, TS: time.Now().UnixNano()})
				r, _, err := publishRetry(pctx, addrs, n, topic, fmt.Sprintf("m%d", n), data)
				if err != nil {
					return err
				}
				seqMu.Lock()
				seqs[topic] = append(seqs[topic], r.Seq)
				seqMu.Unlock()
			}
		})
	}
	if err := pubs.Wait(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	per := loadMessages / loadTopics
	for topic, s := range seqs {
		slices.Sort(s)
		if len(s) != per || s[0] != 1 || s[len(s)-1] != uint64(per) || len(slices.Compact(s)) != per {
			t.Fatalf("topic %s: publishers got %d seqs from %d to %d, want 1..%d once each", topic, len(s), s[0], s[len(s)-1], per)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for i, rc := range clients {
		for _, topic := range clientTopics(i) {
			for rc.lastSeq(topic) < uint64(per) {
				if time.Now().After(deadline) {
					t.Fatalf("client %d (%s) topic %s: last seq %d, want %d", i, c.nodes[i%len(c.nodes)].name, topic, rc.lastSeq(topic), per)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	total := 0
	for i, rc := range clients {
		rc.mu.Lock()
		if len(rc.errs) > 0 {
			t.Errorf("client %d: %v", i, rc.errs)
		}
		total += rc.got
		rc.mu.Unlock()
	}
	if want := loadClients * 2 * per; total != want {
		t.Errorf("%d deliveries, want %d", total, want)
	}
	t.Logf("%d messages published in %v (%.0f/s), %d deliveries checked", loadMessages, elapsed.Round(time.Millisecond),
		float64(loadMessages)/elapsed.Seconds(), total)
}

func TestStaticClusterLoad(t *testing.T) {
	testutil.SkipIfShort(t)
	c := newCluster(t, clusterOpts{nodes: 3, static: true})
	c.start()
	runLoad(t, c)
}

func TestEtcdClusterLoad(t *testing.T) {
	testutil.SkipIfShort(t)
	c := newCluster(t, clusterOpts{nodes: 3, etcd: startEtcd(t)})
	c.start()
	runLoad(t, c)
}

// TestPublishLatency measures publish-to-deliver latency with publisher,
// topic owner and subscriber on three different nodes, and on one node.
func TestPublishLatency(t *testing.T) {
	testutil.SkipIfShort(t)
	measure := func(t *testing.T, pubNode, subNode *node, topic string) (p50, p99 time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		wc, err := testutil.DialWS(ctx, subNode.wsURL(), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer wc.Close()
		if ok, err := wc.Subscribe(topic, 1, nil); err != nil || ok.Op != "ok" {
			t.Fatalf("sub: %v %s", err, ok.Raw)
		}
		const n = 1000
		lat := make(chan time.Duration, n)
		go wc.Read(func(f []byte) {
			if _, _, _, d, err := decodeMsg(f); err == nil {
				lat <- time.Duration(time.Now().UnixNano() - d.TS)
			}
		})
		var all []time.Duration
		for i := range n {
			data, _ := json.Marshal(msgData{N: i, TS: time.Now().UnixNano()})
			if _, err := publish(ctx, pubNode.http, topic, "", data); err != nil {
				t.Fatal(err)
			}
			select {
			case d := <-lat:
				all = append(all, d)
			case <-ctx.Done():
				t.Fatal("no delivery")
			}
		}
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		return all[len(all)/2], all[len(all)*99/100]
	}
	t.Run("three nodes", func(t *testing.T) {
		c := newCluster(t, clusterOpts{nodes: 3, static: true})
		c.start()
		addrs := c.clusterAddrs(c.nodes...)
		topic := ""
		for i := 0; topic == ""; i++ {
			if tccluster.TopicOwner(addrs, fmt.Sprintf("lat.%d", i)) == c.nodes[2].clusterAddr {
				topic = fmt.Sprintf("lat.%d", i)
			}
		}
		p50, p99 := measure(t, c.nodes[0], c.nodes[1], topic)
		t.Logf("publish on n1, topic on n3, subscriber on n2: publish-to-deliver p50 %v p99 %v (includes the HTTP publish)", p50, p99)
	})
	t.Run("one node", func(t *testing.T) {
		c := newCluster(t, clusterOpts{nodes: 1})
		c.start()
		p50, p99 := measure(t, c.nodes[0], c.nodes[0], "lat.0")
		t.Logf("one node: publish-to-deliver p50 %v p99 %v (includes the HTTP publish)", p50, p99)
	})
}
