package transport

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/topicast/topicast/sdk/wire"
)

// Transport names of SessionInfo.Transport, in the order of the per-transport
// counters. A name not listed counts as "other".
var TransportNames = [...]string{"ws", "wt", "sse", "poll", "grpc", "webrtc", "other"}

const numTransports = len(TransportNames)

func transportIndex(name string) int {
	switch name {
	case "ws":
		return 0
	case "wt":
		return 1
	case "sse":
		return 2
	case "poll":
		return 3
	case "grpc":
		return 4
	case "webrtc":
		return 5
	}
	return numTransports - 1
}

// NodeMetrics are the counters of one node that the hot paths update: the
// outbound writers of its sessions and its actors. They are plain atomics,
// with no label to resolve and nothing to allocate; internal/metrics reads
// them for GET /metrics and the sys:stats topic. A node's are the Metrics of
// its NodeState. The zero value is ready to use; its methods and fields are
// goroutine-safe.
type NodeMetrics struct {
	// Publishes counts the messages numbered by the node's topic actors
	// (idempotent repeats excluded).
	Publishes atomic.Uint64
	// Deliveries counts the msg frames the outbound writers wrote to
	// clients (WebSocket, WebTransport streams, WebRTC channels, SSE). Long-poll answers and
	// datagrams are not counted.
	Deliveries atomic.Uint64
	// Conflated counts the messages of latest-value subscriptions that a
	// newer one replaced in a session's queue before it was written.
	Conflated atomic.Uint64
	// DeltaBytesSaved counts the bytes that delta subscriptions were spared:
	// for each delta frame queued, the full frame's length less its own.
	DeltaBytesSaved atomic.Uint64
	// BytesWritten counts the bytes of the frames the outbound writers
	// wrote to clients (WebSocket, WebTransport streams, WebRTC channels, SSE; framing and
	// separators not included).
	BytesWritten atomic.Uint64
	// TopicsActive is the number of the node's topic actors running.
	TopicsActive atomic.Int64
	// HistoryMessages is the number of messages the node's topic actors
	// retain in memory for recovery.
	HistoryMessages atomic.Int64
	// PresenceMembers is the number of presence members (a connection
	// entered in a topic) of the node's connections.
	PresenceMembers atomic.Int64
	// PresenceRemoteSends counts the presence messages (changes, events,
	// snapshots) the node's relays and topic actors sent to other nodes:
	// the cost of presence between nodes, which must grow with the joins
	// and the nodes, never with the members.
	PresenceRemoteSends atomic.Uint64
	// LocalDeliveries and RemoteDeliveries count the delivery messages the
	// node's topic actors sent to relays (one per published batch and node
	// with subscribers) on this node and on others: the cost of a publish
	// between nodes, which must grow with the nodes that have subscribers,
	// never with the subscribers.
	LocalDeliveries, RemoteDeliveries atomic.Uint64
	// Latency is the delivery latency: from a message's publish time (its
	// "ts") to the write that delivered it.
	Latency LatencyHistogram
	// PublishLatency is the time a node's Publish takes to answer a
	// successful call (one observation per call, a batch as one): routing,
	// the topic actor, and the store's append when there is one.
	PublishLatency LatencyHistogram
	// StoreErrors counts the history store's failures (Redis unreachable,
	// timeouts); fencing by a newer activation is not one.
	StoreErrors atomic.Uint64

	// publishErrors counts failed publishes by wire.ErrorCode.
	publishErrors [numErrorCodes]atomic.Uint64

	conns  [numTransports]atomic.Int64
	opened [numTransports]atomic.Uint64
	subs   [numTransports]atomic.Int64

	topicMu sync.Mutex
	// Guarded by topicMu: local subscribers per topic, only topics with one
	// at least.
	topicSubs map[string]int
	// Guarded by topicMu: presence members per topic of this node's
	// connections, only topics with one.
	topicMembers map[string]int
}

// numErrorCodes bounds the wire.ErrorCode values, CodeInternal the largest.
const numErrorCodes = int(wire.CodeInternal) + 1

// PublishFailed counts a failed publish call by the code of its error.
func (m *NodeMetrics) PublishFailed(code wire.ErrorCode) {
	if int(code) >= numErrorCodes || code == 0 {
		code = wire.CodeInternal
	}
	m.publishErrors[code].Add(1)
}

// PublishErrors returns the failed publish calls by error code; index 0 is
// unused.
func (m *NodeMetrics) PublishErrors() (out [numErrorCodes]uint64) {
	for i := range out {
		out[i] = m.publishErrors[i].Load()
	}
	return out
}

// ConnOpened counts a session of the named transport as open.
func (m *NodeMetrics) ConnOpened(transport string) {
	i := transportIndex(transport)
	m.conns[i].Add(1)
	m.opened[i].Add(1)
}

// ConnClosed counts a session of the named transport as closed.
func (m *NodeMetrics) ConnClosed(transport string) { m.conns[transportIndex(transport)].Add(-1) }

// Subscribed counts delta subscriptions (1 or -1) of a session of the named
// transport to topic on this node. It takes a lock: call it per subscribe
// and unsubscribe, never per message.
func (m *NodeMetrics) Subscribed(transport, topic string, delta int) {
	m.subs[transportIndex(transport)].Add(int64(delta))
	m.topicMu.Lock()
	defer m.topicMu.Unlock()
	if m.topicSubs == nil {
		m.topicSubs = make(map[string]int)
	}
	n := m.topicSubs[topic] + delta
	if n <= 0 {
		delete(m.topicSubs, topic)
		return
	}
	m.topicSubs[topic] = n
}

// PresenceChanged counts delta presence members (1 or -1) of this node's
// connections in topic, in PresenceMembers and per topic. Like Subscribed,
// it is called per enter and leave, never per message.
func (m *NodeMetrics) PresenceChanged(topic string, delta int) {
	m.PresenceMembers.Add(int64(delta))
	m.topicMu.Lock()
	defer m.topicMu.Unlock()
	if m.topicMembers == nil {
		m.topicMembers = make(map[string]int)
	}
	n := m.topicMembers[topic] + delta
	if n <= 0 {
		delete(m.topicMembers, topic)
		return
	}
	m.topicMembers[topic] = n
}

// TopicMembers returns the presence members of this node's connections in
// topic.
func (m *NodeMetrics) TopicMembers(topic string) int {
	m.topicMu.Lock()
	defer m.topicMu.Unlock()
	return m.topicMembers[topic]
}

// TopicStopped counts a topic actor as stopped, with the messages its history
// held.
func (m *NodeMetrics) TopicStopped(historyLen int) {
	m.TopicsActive.Add(-1)
	m.HistoryMessages.Add(-int64(historyLen))
}

// Conns returns the open sessions per transport, in TransportNames order.
func (m *NodeMetrics) Conns() (out [numTransports]int64) {
	for i := range out {
		out[i] = m.conns[i].Load()
	}
	return out
}

// Opened returns the sessions opened since the node started, per
// transport, in TransportNames order.
func (m *NodeMetrics) Opened() (out [numTransports]uint64) {
	for i := range out {
		out[i] = m.opened[i].Load()
	}
	return out
}

// Subscriptions returns the subscriptions per transport, in TransportNames
// order.
func (m *NodeMetrics) Subscriptions() (out [numTransports]int64) {
	for i := range out {
		out[i] = m.subs[i].Load()
	}
	return out
}

// TopicSubscribers is a topic and its subscribers on this node.
type TopicSubscribers struct {
	Topic       string
	Subscribers int
}

// TopTopics returns the n topics with the most local subscribers, most
// first, ties by name; and the number of topics with local subscribers.
func (m *NodeMetrics) TopTopics(n int) (top []TopicSubscribers, total int) {
	m.topicMu.Lock()
	all := make([]TopicSubscribers, 0, len(m.topicSubs))
	for t, c := range m.topicSubs {
		all = append(all, TopicSubscribers{t, c})
	}
	m.topicMu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		if all[i].Subscribers != all[j].Subscribers {
			return all[i].Subscribers > all[j].Subscribers
		}
		return all[i].Topic < all[j].Topic
	})
	return all[:min(n, len(all))], len(all)
}

// latencyBounds are the upper bounds of the latency buckets, in
// microseconds. internal/metrics exports a subset of them to Prometheus, so
// that set must stay a subset.
var latencyBounds = [...]uint64{
	250, 500, 750, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 7500,
	10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000, 75_000,
	100_000, 150_000, 200_000, 250_000, 300_000, 400_000, 500_000, 600_000, 750_000,
	1_000_000, 1_500_000, 2_000_000, 2_500_000, 3_000_000, 4_000_000, 5_000_000,
	7_500_000, 10_000_000,
}

// NumLatencyBuckets is the number of latency buckets, the last one
// unbounded.
const NumLatencyBuckets = len(latencyBounds) + 1

// LatencyBounds returns the upper bounds of the latency buckets but the last
// (unbounded) one.
func LatencyBounds() []time.Duration {
	out := make([]time.Duration, len(latencyBounds))
	for i, b := range latencyBounds {
		out[i] = time.Duration(b) * time.Microsecond
	}
	return out
}

// LatencyHistogram counts delivery latencies in fixed buckets. It is
// goroutine-safe; the zero value is ready.
type LatencyHistogram struct {
	counts [NumLatencyBuckets]atomic.Uint64
	sumUs  atomic.Uint64
}

// LatencySnapshot is a copy of a LatencyHistogram's counts.
type LatencySnapshot struct {
	// Counts per bucket (not cumulative), the bounds of LatencyBounds.
	Counts [NumLatencyBuckets]uint64
	// Sum of the latencies, in microseconds.
	SumMicros uint64
}

// Observe counts n deliveries of latency d.
func (h *LatencyHistogram) Observe(d time.Duration, n uint64) {
	h.observe(uint64(max(d, 0)/time.Microsecond), n)
}

func (h *LatencyHistogram) observe(us, n uint64) {
	i := sort.Search(len(latencyBounds), func(i int) bool { return latencyBounds[i] >= us })
	h.counts[i].Add(n)
	h.sumUs.Add(us * n)
}

// Snapshot copies the counts into s. Counts are read one by one while writers
// may go on: the copy is consistent enough for monitoring.
func (h *LatencyHistogram) Snapshot(s *LatencySnapshot) {
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.SumMicros = h.sumUs.Load()
}

// countWritten counts the msg frames of a batch that a writer has written,
// and their latency from the "ts" of the batch's last msg frame: one parse
// per batch, nothing allocated. A backlog batch (recovered messages, old by
// design) is counted but not timed. msgBatches is the session's own count of
// msg batches, owned by its writer.
func (m *NodeMetrics) countWritten(batch [][]byte, backlog bool, msgBatches *uint64) {
	var n, size uint64
	var last []byte
	for _, f := range batch {
		size += uint64(len(f))
		if wire.IsMsg(f) {
			n++
			last = f
		}
	}
	m.BytesWritten.Add(size)
	if n == 0 {
		return
	}
	m.Deliveries.Add(n)
	if backlog {
		return
	}
	// Latency is sampled: the first batch of msg frames of each session and
	// one in eight after it. The histogram is shared by every writer; a
	// sample shows the same distribution for an eighth of the cost.
	if *msgBatches++; *msgBatches%8 != 1 {
		return
	}
	m.observeLatency(last, n)
}

// observeLatency times n deliveries by the "ts" of msg frame f. It is
// kept out of countWritten, which every write runs, so that the frame of
// the parsed head is on the stack of the sampled writes only.
//
//go:noinline
func (m *NodeMetrics) observeLatency(f []byte, n uint64) {
	h, ok := wire.ParseHead(f)
	if !ok {
		return
	}
	// TS has millisecond resolution: take the middle of its millisecond.
	us := time.Now().UnixMicro() - h.TS*1000 - 500
	m.Latency.observe(uint64(max(us, 0)), n)
}
