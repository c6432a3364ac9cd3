package metrics

import (
	"math"
	"time"

	"github.com/topicast/topicast/transport"
)

// Window keeps the samples of a recent span (a minute) to turn counters into
// rates and latency quantiles. It is owned by one goroutine.
type Window struct {
	span    time.Duration
	samples []Sample // oldest first
}

// NewWindow returns a Window over span.
func NewWindow(span time.Duration) *Window { return &Window{span: span} }

// Add appends s, which must be newer than the samples before it, and drops
// the samples that are no longer needed: the oldest kept one is at least span
// older than s, when there is one.
func (w *Window) Add(s Sample) {
	w.samples = append(w.samples, s)
	cut := 0
	for cut+1 < len(w.samples) && s.Time.Sub(w.samples[cut+1].Time) >= w.span {
		cut++
	}
	if cut > 0 {
		w.samples = append(w.samples[:0], w.samples[cut:]...)
	}
}

// Stats are what a node publishes to sys:stats once a second (docs/protocol.md
// "sys:stats"). Rates are over the last interval between samples; latency
// quantiles over the window (a minute), null without deliveries in it.
type Stats struct {
	Node    string `json:"node"`
	Version string `json:"version,omitempty"`
	// Time is the sample's time in Unix milliseconds.
	Time    int64 `json:"time"`
	Members int   `json:"members"`
	// Connections and Subscriptions are per transport: ws, wt, sse, poll.
	Connections   map[string]int64 `json:"connections"`
	Subscriptions map[string]int64 `json:"subscriptions"`
	// Topics is the number of topic actors on the node.
	Topics           int64    `json:"topics"`
	Publishes        uint64   `json:"publishes"`
	Deliveries       uint64   `json:"deliveries"`
	PublishesPerSec  float64  `json:"publishes_per_s"`
	DeliveriesPerSec float64  `json:"deliveries_per_s"`
	LatencyP50       *float64 `json:"latency_p50_ms"`
	LatencyP99       *float64 `json:"latency_p99_ms"`
	// LatencyWindow is the span of the quantiles in seconds.
	LatencyWindow      float64 `json:"latency_window_s"`
	SlowConsumerCloses uint64  `json:"slow_consumer_closes"`
	// Conflated counts the latest-value messages a newer one replaced.
	Conflated uint64 `json:"conflated"`
	// DeltaSaved counts the bytes delta subscriptions were spared.
	DeltaSaved      uint64 `json:"delta_saved_bytes"`
	QueueBytes      int64  `json:"queue_bytes"`
	HistoryMessages int64  `json:"history_messages"`
	// TopicList holds the topics with the most subscribers on the node.
	TopicList []TopicStats `json:"topic_list"`
	// TopicsSubscribed is the number of topics with subscribers on the node.
	TopicsSubscribed int `json:"topics_subscribed"`
}

// TopicStats is one topic of Stats.TopicList.
type TopicStats struct {
	Topic       string `json:"topic"`
	Subscribers int    `json:"subscribers"`
	// Members are the topic's presence members among this node's
	// connections.
	Members int `json:"members"`
	// Seq is the topic's head; MsgsPerSec its growth since the last stats.
	Seq        uint64  `json:"seq"`
	MsgsPerSec float64 `json:"msgs_per_s"`
}

// Stats computes the stats of the newest sample. It returns the zero Stats
// (with node) when there is no sample.
func (w *Window) Stats(node string) Stats {
	st := Stats{Node: node, TopicList: []TopicStats{}}
	n := len(w.samples)
	if n == 0 {
		return st
	}
	cur := &w.samples[n-1]
	st.Time = cur.Time.UnixMilli()
	st.Members = cur.Members
	st.Connections, st.Subscriptions = cur.Conns, cur.Subscriptions
	st.Topics = cur.Topics
	st.Publishes, st.Deliveries = cur.Publishes, cur.Deliveries
	st.SlowConsumerCloses = cur.SlowCloses
	st.Conflated = cur.Conflated
	st.DeltaSaved = cur.DeltaSaved
	st.QueueBytes = cur.QueueBytes
	st.HistoryMessages = cur.History
	if n < 2 {
		return st
	}
	prev := &w.samples[n-2]
	if dt := cur.Time.Sub(prev.Time).Seconds(); dt > 0 {
		st.PublishesPerSec = round(float64(cur.Publishes-prev.Publishes)/dt, 2)
		st.DeliveriesPerSec = round(float64(cur.Deliveries-prev.Deliveries)/dt, 2)
	}
	first := &w.samples[0]
	st.LatencyWindow = round(cur.Time.Sub(first.Time).Seconds(), 1)
	var diff transport.LatencySnapshot
	for i := range diff.Counts {
		diff.Counts[i] = cur.Latency.Counts[i] - first.Latency.Counts[i]
	}
	if p, ok := Quantile(&diff, 0.50); ok {
		v := round(p.Seconds()*1000, 3)
		st.LatencyP50 = &v
	}
	if p, ok := Quantile(&diff, 0.99); ok {
		v := round(p.Seconds()*1000, 3)
		st.LatencyP99 = &v
	}
	return st
}

// Quantile estimates the q quantile (0 to 1) of the latencies counted in s,
// interpolating linearly inside the bucket that holds it. ok is false when s
// counts nothing. A quantile in the unbounded last bucket reports its lower
// bound.
func Quantile(s *transport.LatencySnapshot, q float64) (d time.Duration, ok bool) {
	var total uint64
	for _, n := range s.Counts {
		total += n
	}
	if total == 0 {
		return 0, false
	}
	bounds := transport.LatencyBounds()
	rank := math.Max(q*float64(total), 1)
	var seen uint64
	for i, n := range s.Counts {
		if n == 0 || float64(seen+n) < rank {
			seen += n
			continue
		}
		if i == len(bounds) {
			return bounds[i-1], true
		}
		var lower time.Duration
		if i > 0 {
			lower = bounds[i-1]
		}
		frac := (rank - float64(seen)) / float64(n)
		return lower + time.Duration(frac*float64(bounds[i]-lower)), true
	}
	return bounds[len(bounds)-1], true
}

func round(v float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(v*p) / p
}
