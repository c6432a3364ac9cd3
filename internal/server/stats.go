package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"time"

	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/metrics"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// StatsTopic is where every node publishes its metrics.Stats once a second.
const StatsTopic = wire.SystemPrefix + "stats"

// DefaultStatsInterval is how often a node publishes to StatsTopic.
const DefaultStatsInterval = time.Second

// statsTopics is how many topics a node's stats list.
const statsTopics = 10

// statsPublisher samples the node's counters every interval and publishes
// them to StatsTopic. Its goroutine is joined by close.
type statsPublisher struct {
	node    *cluster.Node
	m       *metrics.Metrics
	every   time.Duration
	logger  *slog.Logger
	stop    chan struct{}
	done    chan struct{}
	window  *metrics.Window
	heads   map[string]topicHead // owned by run: the last head seen per listed topic
	lastErr time.Time            // owned by run: when a failure was last logged
}

type topicHead struct {
	epoch string
	seq   uint64
	at    time.Time
}

func startStats(node *cluster.Node, m *metrics.Metrics, every time.Duration, logger *slog.Logger) *statsPublisher {
	p := &statsPublisher{node: node, m: m, every: every, logger: logger,
		stop: make(chan struct{}), done: make(chan struct{}),
		window: metrics.NewWindow(time.Minute), heads: make(map[string]topicHead)}
	go p.run()
	return p
}

func (p *statsPublisher) close() {
	close(p.stop)
	<-p.done
}

func (p *statsPublisher) run() {
	defer close(p.done)
	t := time.NewTicker(p.every)
	defer t.Stop()
	p.window.Add(p.m.Sample())
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.window.Add(p.m.Sample())
		st := p.window.Stats(p.node.Name())
		st.Version = cluster.Version
		st.TopicList, st.TopicsSubscribed = p.topics()
		data, err := json.Marshal(st)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), p.every)
			_, err = p.node.Publish(ctx, []wire.PublishItem{{Topic: StatsTopic, Data: data}})
			cancel()
		}
		if err != nil && time.Since(p.lastErr) > time.Minute {
			p.lastErr = time.Now()
			p.logger.LogAttrs(context.Background(), slog.LevelWarn, "publish stats failed",
				slog.String("topic", StatsTopic), slog.Any("err", err))
		}
	}
}

// topics lists the topics with the most subscribers on this node, with their
// head and message rate, read from their topic actors (one short request
// each, at most statsTopics per interval).
func (p *statsPublisher) topics() ([]metrics.TopicStats, int) {
	top, total := p.node.NodeState().Metrics.TopTopics(statsTopics)
	out := make([]metrics.TopicStats, 0, len(top))
	seen := make(map[string]topicHead, len(top))
	ctx, cancel := context.WithTimeout(context.Background(), p.every/2)
	defer cancel()
	for _, t := range top {
		ts := metrics.TopicStats{Topic: t.Topic, Subscribers: t.Subscribers,
			Members: p.node.NodeState().Metrics.TopicMembers(t.Topic)}
		h, err := p.node.History(ctx, t.Topic, math.MaxUint64, 1)
		if err == nil {
			now := time.Now()
			ts.Seq = h.Head
			if prev, ok := p.heads[t.Topic]; ok && prev.epoch == h.Epoch && h.Head >= prev.seq {
				if dt := now.Sub(prev.at).Seconds(); dt > 0 {
					ts.MsgsPerSec = math.Round(float64(h.Head-prev.seq)/dt*100) / 100
				}
			}
			seen[t.Topic] = topicHead{h.Epoch, h.Head, now}
		}
		out = append(out, ts)
	}
	p.heads = seen
	return out, total
}

// countAccept wraps accept to count and log each session it takes; the
// node's OnConnClosed calls connClosed when the session ends.
func countAccept(logger *slog.Logger, mx *metrics.Metrics, accept transport.AcceptFunc) transport.AcceptFunc {
	return func(s transport.Session) transport.Handler {
		info := s.Info()
		mx.ConnOpened(info)
		if level := connLogLevel(info); logger.Enabled(context.Background(), level) {
			logger.LogAttrs(context.Background(), level, "connection opened",
				slog.String("conn_id", info.ID), slog.String("transport", info.Transport))
		}
		return accept(s)
	}
}

// connClosed counts and logs the end of a session.
func connClosed(logger *slog.Logger, mx *metrics.Metrics, info *transport.SessionInfo, cause error) {
	code, reason := mx.ConnClosed(info, cause)
	level := connLogLevel(info)
	if !logger.Enabled(context.Background(), level) {
		return
	}
	attrs := []slog.Attr{slog.String("conn_id", info.ID), slog.String("transport", info.Transport),
		slog.String("code", code), slog.String("reason", reason)}
	if _, ok := transport.AsDisconnect(cause); !ok && cause != nil {
		attrs = append(attrs, slog.Any("err", cause))
	}
	logger.LogAttrs(context.Background(), level, "connection closed", attrs...)
}

// connLogLevel is INFO for the sessions of a client connection, DEBUG for
// those of one long poll (one per request: they come and go with messages).
func connLogLevel(info *transport.SessionInfo) slog.Level {
	if info.Transport == "poll" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
