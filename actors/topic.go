package actors

import (
	"crypto/rand"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/transport/wire"
)

// Defaults of TopicConfig.
const (
	DefaultHistorySize = 1000
	DefaultHistoryTTL  = 5 * time.Minute
	DefaultKeyTTL      = 2 * time.Minute
	DefaultIdleCheck   = 30 * time.Second
)

// Clock tells the time. Tests give actors a clock they control.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// TopicConfig configures topic actors.
type TopicConfig struct {
	// HistorySize is how many of the newest messages a topic keeps. Zero
	// means DefaultHistorySize; negative keeps none.
	HistorySize int
	// HistoryTTL is how long a message is kept. Zero means DefaultHistoryTTL.
	HistoryTTL time.Duration
	// KeyTTL is how long an idempotency key is remembered. Zero means
	// DefaultKeyTTL.
	KeyTTL time.Duration
	// IdleCheck is how long a topic waits without a message before it trims
	// its history and considers stopping. Zero means DefaultIdleCheck.
	IdleCheck time.Duration
	// Clock tells the time; nil means the system clock.
	Clock Clock
	// Logger; nil discards.
	Logger *slog.Logger
}

func (c TopicConfig) withDefaults() TopicConfig {
	if c.HistorySize == 0 {
		c.HistorySize = DefaultHistorySize
	}
	if c.HistoryTTL == 0 {
		c.HistoryTTL = DefaultHistoryTTL
	}
	if c.KeyTTL == 0 {
		c.KeyTTL = DefaultKeyTTL
	}
	if c.IdleCheck == 0 {
		c.IdleCheck = DefaultIdleCheck
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// NewTopicProps returns the props of a topic actor. The topic learns its name
// from the first request it gets (every request carries it), so the same props
// serve a cluster grain and a plainly spawned actor. onStop, if set, is called
// when the actor stops, from its goroutine.
func NewTopicProps(cfg TopicConfig, onStop func(name string, pid *actor.PID)) *actor.Props {
	cfg = cfg.withDefaults()
	return actor.PropsFromProducer(func() actor.Actor {
		return &topicActor{cfg: cfg, onStop: onStop}
	})
}

// NewEpoch returns a fresh epoch: 8 random characters of [a-z2-7].
func NewEpoch() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return string(b[:])
}

type keyEntry struct {
	key string
	seq uint64
	at  int64
}

// topicActor is the single writer of one topic: it numbers messages, keeps
// the history and the idempotency keys, and fans out to the relays of the
// nodes that have subscribers.
type topicActor struct {
	cfg    TopicConfig
	onStop func(string, *actor.PID)

	name    string
	epoch   string
	seq     uint64
	hist    history
	keys    map[string]uint64
	keyList []keyEntry // oldest first
	relays  []*actor.PID
}

func (a *topicActor) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *actor.Started:
		a.onStarted(c)
	case *actorpb.PublishRequest:
		a.onPublish(c, msg)
	case *actorpb.JoinRequest:
		a.onJoin(c, msg)
	case *actorpb.LeaveRequest:
		a.onLeave(c, msg)
	case *actorpb.HistoryRequest:
		a.onHistory(c, msg)
	case *actor.ReceiveTimeout:
		a.onIdle(c)
	case *actor.Stopped:
		if a.onStop != nil {
			a.onStop(a.name, c.Self())
		}
	}
}

func (a *topicActor) onStarted(c actor.Context) {
	a.epoch = NewEpoch()
	a.hist = newHistory(a.cfg.HistorySize)
	a.keys = make(map[string]uint64)
	c.SetReceiveTimeout(a.cfg.IdleCheck)
}

func (a *topicActor) setName(topic string) {
	if a.name == "" {
		a.name = topic
	}
}

// trim drops expired history and keys.
func (a *topicActor) trim(now int64) {
	a.hist.dropOlder(now - int64(a.cfg.HistoryTTL))
	cutoff := now - int64(a.cfg.KeyTTL)
	i := 0
	for i < len(a.keyList) && a.keyList[i].at < cutoff {
		delete(a.keys, a.keyList[i].key)
		i++
	}
	if i > 0 {
		a.keyList = append(a.keyList[:0], a.keyList[i:]...)
	}
}

func (a *topicActor) onPublish(c actor.Context, req *actorpb.PublishRequest) {
	a.setName(req.Topic)
	now := a.cfg.Clock.Now()
	nowNs, nowMs := now.UnixNano(), now.UnixMilli()
	a.trim(nowNs)
	resp := &actorpb.PublishResponse{Epoch: a.epoch, Tag: req.Tag, Seqs: make([]uint64, len(req.Items))}
	var frames [][]byte
	first := a.seq + 1
	for i, it := range req.Items {
		if it.Key != "" {
			if seq, ok := a.keys[it.Key]; ok {
				resp.Seqs[i] = seq
				continue
			}
		}
		a.seq++
		frame := wire.AppendMsg(make([]byte, 0, wire.MsgFrameLen(a.name, a.epoch, a.seq, it.Data)),
			a.name, a.epoch, a.seq, nowMs, it.Data)
		a.hist.push(entry{seq: a.seq, at: nowNs, frame: frame})
		if it.Key != "" {
			a.keys[it.Key] = a.seq
			a.keyList = append(a.keyList, keyEntry{key: it.Key, seq: a.seq, at: nowNs})
		}
		resp.Seqs[i] = a.seq
		frames = append(frames, frame)
	}
	if len(frames) > 0 && len(a.relays) > 0 {
		d := &actorpb.Delivery{Topic: a.name, Epoch: a.epoch, FirstSeq: first, Frames: frames}
		for _, r := range a.relays {
			c.Send(r, d)
		}
	}
	if c.Sender() != nil {
		c.Respond(resp)
	}
}

func (a *topicActor) relayIndex(pid *actor.PID) int {
	for i, r := range a.relays {
		if r.Equal(pid) {
			return i
		}
	}
	return -1
}

func (a *topicActor) onJoin(c actor.Context, req *actorpb.JoinRequest) {
	a.setName(req.Topic)
	if req.Relay == nil {
		return
	}
	a.trim(a.cfg.Clock.Now().UnixNano())
	if a.relayIndex(req.Relay) < 0 {
		a.relays = append(a.relays, req.Relay)
	}
	resp := &actorpb.JoinResponse{Tag: req.Tag, Epoch: a.epoch, Head: a.seq}
	if s := req.Since; s != nil && s.Epoch == a.epoch && a.hist.covers(s.Seq, a.seq) {
		resp.Recovered = true
		resp.Frames = a.hist.after(s.Seq, 0)
	}
	// Sent on the same path as deliveries: see the package doc.
	c.Send(req.Relay, resp)
}

func (a *topicActor) onLeave(c actor.Context, req *actorpb.LeaveRequest) {
	a.setName(req.Topic)
	if i := a.relayIndex(req.Relay); i >= 0 {
		a.relays = append(a.relays[:i], a.relays[i+1:]...)
	}
}

func (a *topicActor) onHistory(c actor.Context, req *actorpb.HistoryRequest) {
	a.setName(req.Topic)
	a.trim(a.cfg.Clock.Now().UnixNano())
	resp := &actorpb.HistoryResponse{Epoch: a.epoch, Head: a.seq}
	if req.Since < a.seq {
		resp.Truncated = !a.hist.covers(req.Since, a.seq)
		resp.Frames = a.hist.after(req.Since, int(req.Limit))
	}
	if c.Sender() != nil {
		c.Respond(resp)
	}
}

// onIdle stops a topic that nobody needs any more: no relay, no retained
// message and no remembered key. Its epoch and seq are then lost, which the
// protocol allows because its history has expired anyway.
func (a *topicActor) onIdle(c actor.Context) {
	a.trim(a.cfg.Clock.Now().UnixNano())
	if len(a.relays) == 0 && a.hist.len() == 0 && len(a.keys) == 0 {
		c.Stop(c.Self())
		return
	}
	// protoactor's receive timeout fires once; arm it again.
	c.SetReceiveTimeout(a.cfg.IdleCheck)
}
