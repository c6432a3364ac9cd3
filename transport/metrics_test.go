package transport

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk/wire"
)

func TestCountWritten(t *testing.T) {
	var m NodeMetrics
	now := time.Now().UnixMilli()
	msg := func(seq uint64, ts int64) []byte {
		return wire.AppendMsg(nil, "t", "e", seq, ts, []byte(`{}`))
	}
	batch := [][]byte{wire.PongFrame, msg(1, now-2000), msg(2, now-5), wire.AppendOK(nil, 1)}
	m.countWritten(batch, false, new(uint64))
	require.Equal(t, uint64(2), m.Deliveries.Load())
	var s LatencySnapshot
	m.Latency.Snapshot(&s)
	var total uint64
	for _, n := range s.Counts {
		total += n
	}
	require.Equal(t, uint64(2), total, "each delivery of the batch counted at the last one's latency")
	require.InDelta(t, 2*5000, float64(s.SumMicros), 2*5000, "about 5 ms each")

	// Recovered frames are delivered, not timed.
	m.countWritten([][]byte{msg(3, now-60000)}, true, new(uint64))
	require.Equal(t, uint64(3), m.Deliveries.Load())
	m.Latency.Snapshot(&s)
	total = 0
	for _, n := range s.Counts {
		total += n
	}
	require.Equal(t, uint64(2), total)

	// No msg frame: nothing counted.
	m.countWritten([][]byte{wire.PingFrame}, false, new(uint64))
	require.Equal(t, uint64(3), m.Deliveries.Load())
}

func TestCountWrittenDoesNotAllocate(t *testing.T) {
	var m NodeMetrics
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = wire.AppendMsg(nil, "topic."+strconv.Itoa(i), "epoch", uint64(i+1), time.Now().UnixMilli(), []byte(`{"n":1}`))
	}
	var sampled uint64
	allocs := testing.AllocsPerRun(1000, func() { m.countWritten(batch, false, &sampled) })
	require.Zero(t, allocs)
}

func TestLatencyBuckets(t *testing.T) {
	var h LatencyHistogram
	h.Observe(0, 1)
	h.Observe(250*time.Microsecond, 1)
	h.Observe(251*time.Microsecond, 1)
	h.Observe(time.Hour, 3)
	var s LatencySnapshot
	h.Snapshot(&s)
	require.Equal(t, uint64(2), s.Counts[0], "0 and 250 us: the first bucket's bound is inclusive")
	require.Equal(t, uint64(1), s.Counts[1])
	require.Equal(t, uint64(3), s.Counts[NumLatencyBuckets-1], "beyond the last bound")
	b := LatencyBounds()
	require.Len(t, b, NumLatencyBuckets-1)
	for i := 1; i < len(b); i++ {
		require.Less(t, b[i-1], b[i])
	}
}

func TestSubscribedAndTopTopics(t *testing.T) {
	var m NodeMetrics
	m.Subscribed("ws", "a", 1)
	m.Subscribed("ws", "a", 1)
	m.Subscribed("wt", "b", 1)
	m.Subscribed("sse", "c", 1)
	m.Subscribed("sse", "c", -1)
	m.Subscribed("carrier-pigeon", "d", 1)
	subs := m.Subscriptions()
	require.Equal(t, [numTransports]int64{2, 1, 0, 0, 0, 0, 1}, subs)
	top, total := m.TopTopics(2)
	require.Equal(t, 3, total)
	require.Equal(t, []TopicSubscribers{{"a", 2}, {"b", 1}}, top)

	m.ConnOpened("ws")
	m.ConnOpened("poll")
	m.ConnClosed("ws")
	require.Equal(t, [numTransports]int64{0, 0, 0, 1, 0, 0, 0}, m.Conns())
	require.Equal(t, [numTransports]uint64{1, 0, 0, 1, 0, 0}, m.Opened())
}

// BenchmarkCountWritten measures what a writer adds per batch for the
// metrics: find the msg frames and, in one batch of eight, time the last.
func BenchmarkCountWritten(b *testing.B) {
	var m NodeMetrics
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = wire.AppendMsg(nil, "topic."+strconv.Itoa(i), "k3x7q2ma", uint64(i+1), time.Now().UnixMilli(), []byte(`{"n":1}`))
	}
	batch[10] = wire.PongFrame
	batch[20] = wire.AppendSubOK(nil, 1, "t", "e", 1, wire.Recovered)
	var sampled uint64
	b.ReportAllocs()
	for b.Loop() {
		m.countWritten(batch, false, &sampled)
	}
}

func TestPresenceChanged(t *testing.T) {
	var m NodeMetrics
	m.PresenceChanged("room.a", 1)
	m.PresenceChanged("room.a", 1)
	m.PresenceChanged("room.b", 1)
	m.PresenceChanged("room.a", -1)
	require.Equal(t, int64(2), m.PresenceMembers.Load())
	require.Equal(t, 1, m.TopicMembers("room.a"))
	require.Equal(t, 1, m.TopicMembers("room.b"))
	m.PresenceChanged("room.b", -1)
	require.Zero(t, m.TopicMembers("room.b"))
	require.Len(t, m.topicMembers, 1, "a topic without members is forgotten")
}
