package actors

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// Defaults of TopicConfig.
const (
	DefaultHistorySize = 1000
	DefaultHistoryTTL  = 5 * time.Minute
	DefaultKeyTTL      = 2 * time.Minute
	DefaultIdleCheck   = 30 * time.Second
	// DefaultStoreTimeout bounds one call of a topic to its HistoryStore.
	DefaultStoreTimeout = 2 * time.Second
)

// Clock tells the time. Tests give actors a clock they control.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// TopicConfig configures topic actors.
type TopicConfig struct {
	// HistorySize is how many of the newest messages a topic keeps. Zero
	// means DefaultHistorySize; negative keeps none. (The same holds for
	// redisstore.Config.HistorySize; only the serve flag --history-size,
	// which shows its default, reads 0 as none and passes -1 here.)
	HistorySize int
	// HistoryTTL is how long a message is kept. Zero means DefaultHistoryTTL.
	HistoryTTL time.Duration
	// KeyTTL is how long an idempotency key is remembered. Zero means
	// DefaultKeyTTL.
	KeyTTL time.Duration
	// IdleCheck is how long a topic waits without a message before it trims
	// its history and considers stopping. Zero means DefaultIdleCheck.
	IdleCheck time.Duration
	// Store keeps what must survive the topic actor (epoch, seq, history,
	// keys). Nil means MemoryStore: nothing survives the actor.
	Store HistoryStore
	// StoreTimeout bounds one Store call. Zero means DefaultStoreTimeout.
	StoreTimeout time.Duration
	// Clock tells the time; nil means the system clock.
	Clock Clock
	// Metrics are the node's counters (transport.NodeState's), where topics
	// count themselves, their publishes and the messages they retain. Nil
	// means counters of their own, which no one reads.
	Metrics *transport.NodeMetrics
	// Logger; nil discards.
	Logger *slog.Logger
	// Namespaces may give topics other history options than the above.
	Namespaces Namespaces
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
	if c.Store == nil {
		c.Store = MemoryStore{}
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.Metrics == nil {
		c.Metrics = new(transport.NodeMetrics)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// topicThroughput is how many messages a topic's mailbox handles in a row
// (protoactor's default).
const topicThroughput = 300

// NewTopicProps returns the props of a topic actor. The topic learns its name
// from the first request it gets (every request carries it), so the same props
// serve any topic. onStop, if set, is called when the actor stops, from its
// goroutine.
func NewTopicProps(cfg TopicConfig, onStop func(name string, pid *actor.PID)) *actor.Props {
	return NewNamedTopicProps(cfg, "", onStop)
}

// NewNamedTopicProps returns the props of the actor of topic name, which
// claims the topic in its store as it starts (a cluster activation).
func NewNamedTopicProps(cfg TopicConfig, name string, onStop func(name string, pid *actor.PID)) *actor.Props {
	cfg = cfg.withDefaults()
	var opts []actor.PropsOption
	if !cfg.Store.Durable() {
		// A topic whose state lives in the process never blocks, so its
		// mailbox runs on the goroutine that sends to it (still one message
		// at a time: a message that comes while it runs elsewhere is queued
		// for that run). A publish then is handled on the publisher's own
		// goroutine and answered before its Send returns, instead of costing
		// a goroutine, its stack growth and two wake-ups
		// (BenchmarkPublishManyTopics: 18.8k -> 11.5k CPU ns per publish).
		// A topic on a durable store waits on it, and must not hold its
		// senders (a remote endpoint's reader, say) meanwhile: it keeps
		// protoactor's dispatcher.
		opts = append(opts, actor.WithDispatcher(actor.NewSynchronizedDispatcher(topicThroughput)))
	}
	return actor.PropsFromProducer(func() actor.Actor {
		a := &topicActor{cfg: cfg, onStop: onStop}
		a.setName(name)
		return a
	}, opts...)
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
//
// With a durable HistoryStore, the actor writes each publish batch to the
// store before it delivers and answers it, from its own goroutine: the topic
// is its store's single writer, the call costs one round trip for the whole
// batch, and blocking here only delays this topic's own mailbox, which is
// exactly the order the topic must keep anyway. A store that says the
// activation was fenced out (a newer one claimed the topic) or that fails
// makes the actor answer "retry" to what it has queued and stop; the callers
// look the topic up again and reach the activation that holds it.
type topicActor struct {
	cfg    TopicConfig
	onStop func(string, *actor.PID)

	name    string
	opened  bool // the store was opened: fence, epoch, seq and hist are loaded
	dead    bool // stale or failed: answers "retry" until it stops
	fence   uint64
	epoch   string
	seq     uint64
	hist    history
	keys    map[string]uint64
	keyList []keyEntry // oldest first
	relays  []*actor.PID
	// dropped are relays dropped on an AddressTerminated that have not
	// joined again, told again and again (see onRelayTerminated).
	dropped      []droppedRelay
	droppedTimer *time.Timer
	presence     topicPresence
	trimmed      uint64 // the store dropped the messages below this seq
	durable      bool   // the store outlives the process (its calls may block)

	// call is the LocalCall whose request is being handled, if it came as
	// one: its answer goes there instead of to the sender.
	call *LocalCall
}

func (a *topicActor) Receive(c actor.Context) {
	msg := c.Message()
	a.call = nil
	if call, ok := msg.(*LocalCall); ok {
		a.call, msg = call, call.Request
	}
	switch msg := msg.(type) {
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
	case *actorpb.PresenceChange:
		a.onPresenceChange(c, msg)
	case *actorpb.PresenceRequest:
		a.onPresence(c, msg)
	case *actorpb.PresenceSnapshotRequest:
		a.onPresenceSnapshot(c, msg)
	case *actor.Terminated:
		a.onRelayTerminated(c, msg)
	case *actor.ReceiveTimeout:
		a.onIdle(c)
	case *retellDropped:
		a.onRetellDropped(c)
	case *actor.Stopped:
		if a.droppedTimer != nil {
			a.droppedTimer.Stop()
		}
		a.cfg.Metrics.TopicStopped(a.hist.len())
		if a.onStop != nil {
			a.onStop(a.name, c.Self())
		}
	}
}

func (a *topicActor) onStarted(c actor.Context) {
	a.hist = newHistory(a.cfg.HistorySize, a.cfg.Metrics)
	a.durable = a.cfg.Store.Durable()
	a.cfg.Metrics.TopicsActive.Add(1)
	a.keys = make(map[string]uint64)
	c.SetReceiveTimeout(a.cfg.IdleCheck)
	if a.name != "" {
		a.ready(c)
	}
}

// setName names the topic the actor is for, once, and applies its
// namespace's history options (nothing is stored before it has a name).
func (a *topicActor) setName(topic string) {
	if a.name == "" && topic != "" {
		a.name = topic
		a.cfg = a.cfg.forTopic(topic)
		a.hist.max = a.cfg.HistorySize
	}
}

// respond answers the request being handled, to its LocalCall or its sender.
func (a *topicActor) respond(c actor.Context, resp any) {
	switch {
	case a.call != nil:
		a.call.answer(resp, nil)
	case c.Sender() != nil:
		c.Respond(resp)
	}
}

func noCancel() {}

// storeContext bounds a store call. A store that lives in the process never
// blocks, and a publish should not pay a timer for it.
func (a *topicActor) storeContext() (context.Context, context.CancelFunc) {
	if !a.durable {
		return context.Background(), noCancel
	}
	return context.WithTimeout(context.Background(), a.cfg.StoreTimeout)
}

// ready opens the store once and reports whether the actor may serve.
func (a *topicActor) ready(c actor.Context) bool {
	if a.dead {
		return false
	}
	if a.opened {
		return true
	}
	ctx, cancel := a.storeContext()
	defer cancel()
	limit := max(a.cfg.HistorySize, 0)
	minAt := a.cfg.Clock.Now().UnixNano() - int64(a.cfg.HistoryTTL)
	st, err := a.cfg.Store.Open(ctx, a.name, NewEpoch(), limit, minAt)
	if err != nil {
		a.fail(c, "open the topic's store", err)
		return false
	}
	a.opened = true
	a.fence, a.epoch, a.seq = st.Fence, st.Epoch, st.Head
	if a.epoch == "" {
		a.epoch = NewEpoch()
	}
	for _, m := range st.Messages {
		a.hist.push(entry{seq: m.Seq, at: m.At, frame: m.Frame})
	}
	if len(st.Messages) > 0 {
		a.trimmed = st.Messages[0].Seq
	}
	return true
}

// fail makes the actor answer "retry" to everything it has queued, then stop.
func (a *topicActor) fail(c actor.Context, what string, err error) {
	level := slog.LevelWarn
	if errors.Is(err, ErrFenced) {
		level = slog.LevelInfo
	}
	a.cfg.Logger.LogAttrs(context.Background(), level, "topic activation stops",
		slog.String("topic", a.name), slog.String("reason", what), slog.Any("err", err))
	a.dead = true
	c.Poison(c.Self()) // after what is queued, which gets "retry"
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

// storeTrimSeq returns the seq below which the store may drop messages, or
// 0 when it has nothing new to drop.
func (a *topicActor) storeTrimSeq() uint64 {
	if !a.cfg.Store.Durable() {
		return 0
	}
	min := a.seq + 1
	if a.hist.len() > 0 {
		min = a.hist.oldest().seq
	}
	if min <= a.trimmed {
		return 0
	}
	return min
}

func (a *topicActor) remember(key string, seq uint64, at int64) {
	if _, ok := a.keys[key]; ok {
		return
	}
	a.keys[key] = seq
	a.keyList = append(a.keyList, keyEntry{key: key, seq: seq, at: at})
}

func (a *topicActor) respondPublishRetry(c actor.Context, tag uint64) {
	a.respond(c, &actorpb.PublishResponse{Tag: tag, Retry: true, Error: &actorpb.ErrorInfo{
		Code: uint32(wire.CodeUnavailable), Message: "topic " + a.name + " is moving, try again"}})
}

// number gives the next seqs to the items of req whose key is new, encodes
// them into msgs and fills resp.Seqs. known holds keys the store already had.
func (a *topicActor) number(req *actorpb.PublishRequest, resp *actorpb.PublishResponse, known map[string]uint64,
	nowNs, nowMs int64, msgs []StoredMessage) []StoredMessage {
	seq := a.seq
	for i, it := range req.Items {
		if it.Key != "" {
			if s, ok := a.keys[it.Key]; ok {
				resp.Seqs[i] = s
				continue
			}
			if s, ok := known[it.Key]; ok {
				resp.Seqs[i] = s
				continue
			}
			if s, ok := keyIn(msgs, it.Key); ok {
				resp.Seqs[i] = s // a repeated key in one batch answers the first seq
				continue
			}
		}
		seq++
		frame := wire.AppendMsg(make([]byte, 0, wire.MsgFrameLen(a.name, a.epoch, seq, it.Data)),
			a.name, a.epoch, seq, nowMs, it.Data)
		msgs = append(msgs, StoredMessage{Seq: seq, At: nowNs, Frame: frame, Key: it.Key})
		resp.Seqs[i] = seq
	}
	return msgs
}

// allKeyed reports whether every item of req has an idempotency key.
func allKeyed(req *actorpb.PublishRequest) bool {
	for _, it := range req.Items {
		if it.Key == "" {
			return false
		}
	}
	return true
}

func keyIn(msgs []StoredMessage, key string) (uint64, bool) {
	for i := range msgs {
		if msgs[i].Key == key {
			return msgs[i].Seq, true
		}
	}
	return 0, false
}

func (a *topicActor) onPublish(c actor.Context, req *actorpb.PublishRequest) {
	a.setName(req.Topic)
	if !a.ready(c) {
		a.respondPublishRetry(c, req.Tag)
		return
	}
	now := a.cfg.Clock.Now()
	nowNs, nowMs := now.UnixNano(), now.UnixMilli()
	a.trim(nowNs)
	resp := &actorpb.PublishResponse{Epoch: a.epoch, Tag: req.Tag, Seqs: make([]uint64, len(req.Items))}
	var known map[string]uint64
	var msgs []StoredMessage
	for attempt := 1; ; attempt++ {
		msgs = a.number(req, resp, known, nowNs, nowMs, msgs[:0])
		if len(msgs) == 0 {
			break
		}
		minSeq := a.storeTrimSeq()
		ctx, cancel := a.storeContext()
		err := a.cfg.Store.Append(ctx, a.name, a.fence, msgs, minSeq)
		cancel()
		if dupSeqs, ok := duplicateKeys(err); ok && attempt < 3 {
			if known == nil {
				known = make(map[string]uint64, len(dupSeqs))
			}
			for k, s := range dupSeqs {
				known[k] = s
			}
			continue
		}
		if err != nil {
			// The activation no longer knows its head: the next one reads
			// what the store has. Asking the caller to try again is safe
			// when nothing was written, or when every item carries a key
			// (the store answers a repeated key with its first seq); else
			// the message may have been published, and a second try would
			// publish it twice.
			a.fail(c, "write a publish batch", err)
			if notWritten(err) || allKeyed(req) {
				a.respondPublishRetry(c, req.Tag)
			} else {
				a.respond(c, &actorpb.PublishResponse{Tag: req.Tag, Error: &actorpb.ErrorInfo{
					Code:    uint32(wire.CodeUnavailable),
					Message: "the topic's store did not confirm the write: it may have been published (publish with a key to retry safely)"}})
			}
			return
		}
		if minSeq > a.trimmed {
			a.trimmed = minSeq
		}
		break
	}
	for k, s := range known {
		a.remember(k, s, nowNs)
	}
	if len(msgs) > 0 {
		a.cfg.Metrics.Publishes.Add(uint64(len(msgs)))
		frames := make([][]byte, len(msgs))
		for i := range msgs {
			m := &msgs[i]
			a.hist.push(entry{seq: m.Seq, at: m.At, frame: m.Frame})
			if m.Key != "" {
				a.remember(m.Key, m.Seq, nowNs)
			}
			frames[i] = m.Frame
		}
		first := a.seq + 1
		a.seq = msgs[len(msgs)-1].Seq
		if len(a.relays) > 0 {
			d := &actorpb.Delivery{Topic: a.name, Epoch: a.epoch, FirstSeq: first, Frames: frames}
			self, remote := c.Self().Address, 0
			for _, r := range a.relays {
				if r.Address != self {
					remote++
				}
				c.Send(r, d)
			}
			a.cfg.Metrics.LocalDeliveries.Add(uint64(len(a.relays) - remote))
			a.cfg.Metrics.RemoteDeliveries.Add(uint64(remote))
		}
	}
	a.respond(c, resp)
}

// duplicateKeys returns the seqs of a DuplicateKeysError in err. It checks
// err for nil first: errors.As's target escapes, and a publish that succeeded
// should not pay an allocation for it.
func duplicateKeys(err error) (map[string]uint64, bool) {
	if err == nil {
		return nil, false
	}
	var dup *DuplicateKeysError
	if !errors.As(err, &dup) {
		return nil, false
	}
	return dup.Seqs, true
}

func (a *topicActor) relayIndex(pid *actor.PID) int {
	for i, r := range a.relays {
		if r.Equal(pid) {
			return i
		}
	}
	return -1
}

func (a *topicActor) removeRelay(pid *actor.PID) bool {
	if i := a.relayIndex(pid); i >= 0 {
		a.relays = append(a.relays[:i], a.relays[i+1:]...)
		return true
	}
	return false
}

// behind reports whether pos, in this activation's epoch, is past its head.
// With a durable store an epoch outlives activations, so a newer activation
// may have written more (or the client made the position up: the store
// tells, see stale); in memory a new activation has a new epoch.
func (a *topicActor) behind(pos *actorpb.Position) bool {
	return a.durable && pos != nil && pos.Epoch == a.epoch && pos.Seq > a.seq
}

// stale asks the store whether a newer activation has claimed the topic.
// A store that does not answer says nothing: the activation goes on.
func (a *topicActor) stale() bool {
	ctx, cancel := a.storeContext()
	defer cancel()
	fence, err := a.cfg.Store.Fence(ctx, a.name)
	return err == nil && fence != a.fence
}

// onRelayTerminated drops a relay whose watch fired. protoactor answers the
// watches of remote actors for their whole address when it drops a member
// or a connection: when the member at that address is a new process (a node
// restarted with the same address) or the connection broke while the node
// lives, the relay may well be alive, and dropping it alone would leave its
// subscribers without a word. So a relay that did not stop for sure is told;
// if it lives, it joins again with its position and misses nothing. The
// notice travels a connection that protoactor is tearing down and setting
// up again, where messages are lost (seen in test/cluster: one node's
// notices arrived, another's did not), so it is told again a few times
// until it joins; the relay's own periodic check (Relays.StartChecks) is
// what bounds the silence when every notice is lost.
func (a *topicActor) onRelayTerminated(c actor.Context, t *actor.Terminated) {
	if t.Why != actor.TerminatedReason_AddressTerminated {
		a.forgetDropped(t.Who) // it stopped for sure
	}
	if !a.removeRelay(t.Who) {
		return
	}
	// Its node died or is cut off: its members leave. One that comes back
	// joins again with its position and enters its members again.
	a.dropPresence(c, t.Who, true)
	if t.Why != actor.TerminatedReason_AddressTerminated {
		return
	}
	c.Send(t.Who, &actorpb.RelayDropped{Topic: a.name, Activation: c.Self()})
	for i := range a.dropped {
		if a.dropped[i].pid.Equal(t.Who) {
			a.dropped[i].told = 1
			return
		}
	}
	a.dropped = append(a.dropped, droppedRelay{pid: t.Who, told: 1})
	a.scheduleRetell(c)
}

// droppedRelay is a relay told that it was dropped, and how many times.
type droppedRelay struct {
	pid  *actor.PID
	told int
}

// retellDropped makes a topic tell its dropped relays again.
type retellDropped struct{}

// Telling a dropped relay again: after retellFirst, doubling, at most
// retellTimes in all.
const (
	retellFirst = 250 * time.Millisecond
	retellTimes = 5
)

func (a *topicActor) scheduleRetell(c actor.Context) {
	if a.droppedTimer != nil || len(a.dropped) == 0 {
		return
	}
	d := retellFirst << (a.dropped[0].told - 1)
	self, root := c.Self(), c.ActorSystem().Root
	a.droppedTimer = time.AfterFunc(d, func() { root.Send(self, &retellDropped{}) })
}

// forgetDropped stops telling pid: it joined again, left or stopped.
func (a *topicActor) forgetDropped(pid *actor.PID) {
	for i := range a.dropped {
		if a.dropped[i].pid.Equal(pid) {
			a.dropped = slices.Delete(a.dropped, i, i+1)
			return
		}
	}
}

func (a *topicActor) onRetellDropped(c actor.Context) {
	a.droppedTimer = nil
	kept := a.dropped[:0]
	for _, d := range a.dropped {
		if d.told >= retellTimes {
			continue // gone for good, or its check will find out
		}
		c.Send(d.pid, &actorpb.RelayDropped{Topic: a.name, Activation: c.Self()})
		d.told++
		kept = append(kept, d)
	}
	clear(a.dropped[len(kept):])
	a.dropped = kept
	a.scheduleRetell(c)
}

func (a *topicActor) onJoin(c actor.Context, req *actorpb.JoinRequest) {
	a.setName(req.Topic)
	if req.Relay == nil {
		return
	}
	if !a.ready(c) {
		// Stale, or its store failed: it stops. The relay asks again, a
		// little later, wherever the topic lives by then.
		c.Send(req.Relay, &actorpb.JoinResponse{Tag: req.Tag, Topic: c.Self(), Retry: true})
		return
	}
	if (a.behind(req.Since) || a.behind(req.RelaySince)) && a.stale() {
		// A newer activation has numbered past this one's head (its node
		// was paused, say, and has not been told yet). Answering from here
		// would take the joiner back in time.
		a.fail(c, "a joiner is ahead of this activation", ErrFenced)
		c.Send(req.Relay, &actorpb.JoinResponse{Tag: req.Tag, Topic: c.Self(), Retry: true})
		return
	}
	a.trim(a.cfg.Clock.Now().UnixNano())
	registered := a.relayIndex(req.Relay) >= 0
	if s := req.RelaySince; req.Check && registered && s != nil && s.Epoch == a.epoch && s.Seq >= a.seq {
		return // the relay is registered and up to date: nothing to say
	}
	if !registered {
		a.forgetDropped(req.Relay)
		a.relays = append(a.relays, req.Relay)
		c.Watch(req.Relay) // a relay whose node dies is dropped
	}
	resp := &actorpb.JoinResponse{Tag: req.Tag, Epoch: a.epoch, Head: a.seq, Topic: c.Self(), Registered: !registered}
	if s := req.Since; s != nil && s.Epoch == a.epoch && a.hist.covers(s.Seq, a.seq) {
		resp.Recovered = true
		resp.Frames = a.hist.after(s.Seq, 0)
	}
	if s := req.RelaySince; s != nil && s.Epoch == a.epoch && a.hist.covers(s.Seq, a.seq) {
		resp.RelayRecovered = true
		resp.RelayFrames = a.hist.after(s.Seq, 0)
	}
	// Sent on the same path as deliveries: see the package doc.
	c.Send(req.Relay, resp)
}

func (a *topicActor) onLeave(c actor.Context, req *actorpb.LeaveRequest) {
	a.setName(req.Topic)
	if req.Relay != nil {
		a.forgetDropped(req.Relay)
	}
	if req.Relay != nil && a.removeRelay(req.Relay) {
		c.Unwatch(req.Relay)
		a.dropPresence(c, req.Relay, false)
	}
}

func (a *topicActor) onHistory(c actor.Context, req *actorpb.HistoryRequest) {
	a.setName(req.Topic)
	if !a.ready(c) {
		a.respond(c, &actorpb.HistoryResponse{Retry: true})
		return
	}
	a.trim(a.cfg.Clock.Now().UnixNano())
	resp := &actorpb.HistoryResponse{Epoch: a.epoch, Head: a.seq}
	if req.Since < a.seq {
		resp.Truncated = !a.hist.covers(req.Since, a.seq)
		resp.Frames = a.hist.after(req.Since, int(req.Limit))
	}
	a.respond(c, resp)
}

// onIdle stops a topic that nobody needs any more. Without a durable store
// that means no relay, no retained message and no remembered key: its epoch
// and seq are then lost, which the protocol allows because its history has
// expired anyway. With one, no relay is enough: the store keeps the rest.
func (a *topicActor) onIdle(c actor.Context) {
	if a.dead {
		return
	}
	a.trim(a.cfg.Clock.Now().UnixNano())
	durable := a.cfg.Store.Durable()
	if durable && a.opened {
		if minSeq := a.storeTrimSeq(); minSeq > 0 {
			ctx, cancel := a.storeContext()
			err := a.cfg.Store.Trim(ctx, a.name, a.fence, minSeq)
			cancel()
			if err != nil {
				a.fail(c, "trim the topic's store", err)
				return
			}
			a.trimmed = minSeq
		}
	}
	if len(a.relays) == 0 && (durable || (a.hist.len() == 0 && len(a.keys) == 0)) {
		// Poison, not Stop: a request already queued gets "retry", not
		// silence.
		a.dead = true
		c.Poison(c.Self())
		return
	}
	// protoactor's receive timeout fires once; arm it again.
	c.SetReceiveTimeout(a.cfg.IdleCheck)
}
