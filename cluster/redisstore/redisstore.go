// Package redisstore keeps topicast topics' durable state in Redis: an
// actors.HistoryStore, so that a topic re-activated on another node (its
// node died, or the membership changed) keeps its epoch, seq, history and
// idempotency keys.
//
// # Layout
//
// For topic T (the braces keep a topic's keys in one Redis Cluster slot):
//
//	topicast:{T}:m     hash: epoch, head (seq of the newest message), fence
//	topicast:{T}:s     stream: one entry per retained message, id "<seq>-1",
//	                   fields t (publish time, Unix ns) and f (the msg frame)
//	topicast:{T}:k:K   string: the seq that idempotency key K got (expires)
//
// An activation claims the topic by incrementing its fence (Open) and
// presents the value with every write; one Lua script checks it, checks the
// keys and the head, appends the batch (XADD ... MAXLEN ~ size), records the
// keys (SET ... PX) and moves the head, atomically. A stale activation's
// write fails with actors.ErrFenced and writes nothing.
//
// Store is goroutine-safe.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/topicast/topicast/actors"
)

// Defaults of Config.
const (
	DefaultPrefix = "topicast"
	// DefaultMetaTTL is how long a topic's epoch and head outlive its last
	// activation: a topic idle for longer starts a new epoch.
	DefaultMetaTTL = 24 * time.Hour
	// DefaultDialTimeout bounds Ping's wait for Redis.
	DefaultDialTimeout = 5 * time.Second
)

// Config configures a Store.
type Config struct {
	// URL is redis://[user:password@]host:port/db.
	URL string
	// HistorySize is how many messages a topic's stream keeps (MAXLEN ~).
	// Zero means actors.DefaultHistorySize, as in actors.TopicConfig;
	// negative keeps none (epoch, head and keys are still kept).
	HistorySize int
	// HistoryTTL is how long a message is kept: the stream expires that
	// long after its last write, and older entries are trimmed (MINID).
	HistoryTTL time.Duration
	// KeyTTL is how long an idempotency key is remembered.
	KeyTTL time.Duration
	// MetaTTL: see DefaultMetaTTL. Zero means DefaultMetaTTL.
	MetaTTL time.Duration
	// Prefix of every key. Empty means DefaultPrefix.
	Prefix string
}

// Store is the Redis actors.HistoryStore. It is goroutine-safe.
type Store struct {
	cfg Config
	rdb *redis.Client
}

var _ actors.HistoryStore = (*Store)(nil)

// New returns a Store on the Redis at cfg.URL. It does not wait for Redis:
// a node that starts while Redis is down (restarted by its supervisor
// during a Redis outage) must come up and answer "unavailable" for its
// topics until Redis is back, as a running node does, rather than exit.
// Ping tells whether Redis answers now. Only a bad URL or Config fails New.
func New(cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if cfg.HistoryTTL <= 0 || cfg.KeyTTL <= 0 {
		return nil, errors.New("redisstore: HistoryTTL and KeyTTL must be positive")
	}
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	// No retries inside the client: go-redis sends a command again after
	// an EOF that followed a complete write, so an append that Redis ran
	// before dying, retried on a new connection and refused by the dial,
	// came back as "connection refused", which reads as "nothing sent"
	// (unsent), and a keyless publish was numbered twice (test/nemesis,
	// Redis killed mid-append). The first attempt's error is the truth;
	// the topic actor and the node decide what may be tried again.
	opts.MaxRetries = -1
	return &Store{cfg: cfg, rdb: redis.NewClient(opts)}, nil
}

// Ping reports whether Redis answers within DefaultDialTimeout (or ctx).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: %s does not answer: %w", s.rdb.Options().Addr, err)
	}
	return nil
}

// withDefaults returns cfg with its zero values replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.HistorySize == 0 {
		c.HistorySize = actors.DefaultHistorySize
	}
	if c.MetaTTL == 0 {
		c.MetaTTL = DefaultMetaTTL
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	return c
}

// Close closes the connections.
func (s *Store) Close() { _ = s.rdb.Close() }

// Client returns the Redis client (for tests and tools).
func (s *Store) Client() *redis.Client { return s.rdb }

func (s *Store) metaKey(topic string) string   { return s.cfg.Prefix + ":{" + topic + "}:m" }
func (s *Store) streamKey(topic string) string { return s.cfg.Prefix + ":{" + topic + "}:s" }
func (s *Store) idemKey(topic, key string) string {
	return s.cfg.Prefix + ":{" + topic + "}:k:" + key
}

// Durable is true.
func (s *Store) Durable() bool { return true }

var openScript = redis.NewScript(`
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'head', '0')
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local head = redis.call('HGET', KEYS[1], 'head') or '0'
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local msgs = {}
if tonumber(ARGV[3]) > 0 then
  msgs = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[3])
end
return {fence, epoch, head, msgs}
`)

// Open claims topic: it increments the fence, creates the epoch if the
// topic is unknown, and reads the head and the newest messages.
func (s *Store) Open(ctx context.Context, topic, newEpoch string, limit int, minAt int64) (*actors.TopicState, error) {
	res, err := openScript.Run(ctx, s.rdb, []string{s.metaKey(topic), s.streamKey(topic)},
		newEpoch, s.cfg.MetaTTL.Milliseconds(), max(limit, 0)).Slice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: open %s: %w", topic, err)
	}
	if len(res) != 4 {
		return nil, fmt.Errorf("redisstore: open %s: unexpected reply %v", topic, res)
	}
	fence, ok1 := res[0].(int64)
	epoch, ok2 := res[1].(string)
	headStr, ok3 := res[2].(string)
	entries, ok4 := res[3].([]any)
	head, err := strconv.ParseUint(headStr, 10, 64)
	if !ok1 || !ok2 || !ok3 || !ok4 || err != nil {
		return nil, fmt.Errorf("redisstore: open %s: unexpected reply %v", topic, res)
	}
	st := &actors.TopicState{Fence: uint64(fence), Epoch: epoch, Head: head}
	// XREVRANGE is newest first; keep the young ones, oldest first.
	for i := len(entries) - 1; i >= 0; i-- {
		m, err := parseEntry(entries[i])
		if err != nil {
			return nil, fmt.Errorf("redisstore: open %s: %w", topic, err)
		}
		if m.At >= minAt && m.Seq <= head {
			st.Messages = append(st.Messages, m)
		}
	}
	// Keep them consecutive up to head: a hole (impossible with one writer)
	// would be taken for recoverable history.
	for i := len(st.Messages) - 1; i > 0; i-- {
		if st.Messages[i-1].Seq+1 != st.Messages[i].Seq {
			st.Messages = st.Messages[i:]
			break
		}
	}
	if n := len(st.Messages); n > 0 && st.Messages[n-1].Seq != head {
		st.Messages = nil
	}
	return st, nil
}

func parseEntry(v any) (actors.StoredMessage, error) {
	var m actors.StoredMessage
	e, ok := v.([]any)
	if !ok || len(e) != 2 {
		return m, fmt.Errorf("bad stream entry %v", v)
	}
	id, _ := e[0].(string)
	seqStr, _, _ := strings.Cut(id, "-")
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil {
		return m, fmt.Errorf("bad stream id %q", id)
	}
	fields, _ := e[1].([]any)
	m.Seq = seq
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].(string)
		val, _ := fields[i+1].(string)
		switch name {
		case "t":
			if m.At, err = strconv.ParseInt(val, 10, 64); err != nil {
				return m, fmt.Errorf("bad time %q in stream entry %s", val, id)
			}
		case "f":
			m.Frame = []byte(val)
		}
	}
	if m.Frame == nil {
		return m, fmt.Errorf("stream entry %s has no frame", id)
	}
	return m, nil
}

// appendScript: KEYS = meta, stream, then one key per message with an
// idempotency key. Under our fence the head can only have moved by this
// very batch (go-redis sent it again after a reply was lost): that counts
// as written. ARGV = fence, previous head, new head, maxlen, trim id
// ("" for none), key TTL ms, meta TTL ms, stream TTL ms, then 5 per message:
// stream id, seq, time, frame, index of its key in KEYS (0 for none).
var appendScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return {-1} end
local head = redis.call('HGET', KEYS[1], 'head') or '0'
if head ~= ARGV[2] then
  if head == ARGV[3] then return {0} end
  return {-3, head}
end
local dups = {}
for i = 3, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v then
    dups[#dups + 1] = i
    dups[#dups + 1] = v
  end
end
if #dups > 0 then return {-2, dups} end
local keep = tonumber(ARGV[4]) > 0
for b = 9, #ARGV, 5 do
  if keep then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], ARGV[b], 't', ARGV[b + 2], 'f', ARGV[b + 3])
  end
  local k = tonumber(ARGV[b + 4])
  if k > 0 then redis.call('SET', KEYS[k], ARGV[b + 1], 'PX', ARGV[6]) end
end
redis.call('HSET', KEYS[1], 'head', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
if keep then
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
  if ARGV[5] ~= '' then redis.call('XTRIM', KEYS[2], 'MINID', ARGV[5]) end
end
return {0}
`)

func streamID(seq uint64) string { return strconv.FormatUint(seq, 10) + "-1" }

// Append writes msgs if fence holds the topic. See actors.HistoryStore.
func (s *Store) Append(ctx context.Context, topic string, fence uint64, msgs []actors.StoredMessage, minSeq uint64) error {
	if len(msgs) == 0 {
		return nil
	}
	keys := []string{s.metaKey(topic), s.streamKey(topic)}
	trim := ""
	if minSeq > 0 {
		trim = streamID(minSeq)
	}
	args := make([]any, 0, 8+5*len(msgs))
	args = append(args, strconv.FormatUint(fence, 10), strconv.FormatUint(msgs[0].Seq-1, 10),
		strconv.FormatUint(msgs[len(msgs)-1].Seq, 10), s.cfg.HistorySize, trim,
		s.cfg.KeyTTL.Milliseconds(), s.cfg.MetaTTL.Milliseconds(), s.cfg.HistoryTTL.Milliseconds())
	for _, m := range msgs {
		k := 0
		if m.Key != "" {
			keys = append(keys, s.idemKey(topic, m.Key))
			k = len(keys)
		}
		args = append(args, streamID(m.Seq), strconv.FormatUint(m.Seq, 10), m.At, m.Frame, k)
	}
	res, err := appendScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		if unsent(err) {
			err = errors.Join(err, actors.ErrNotWritten)
		}
		return fmt.Errorf("redisstore: append to %s: %w", topic, err)
	}
	code, _ := res[0].(int64)
	switch code {
	case 0:
		return nil
	case -1:
		return actors.ErrFenced
	case -2:
		dups, _ := res[1].([]any)
		e := &actors.DuplicateKeysError{Seqs: make(map[string]uint64, len(dups)/2)}
		prefix := s.idemKey(topic, "")
		for i := 0; i+1 < len(dups); i += 2 {
			idx, _ := dups[i].(int64)
			val, _ := dups[i+1].(string)
			seq, err := strconv.ParseUint(val, 10, 64)
			if err != nil || idx < 1 || int(idx) > len(keys) {
				return fmt.Errorf("redisstore: append to %s: bad key reply %v", topic, res)
			}
			e.Seqs[strings.TrimPrefix(keys[idx-1], prefix)] = seq
		}
		return e
	default:
		// The head moved under a fence we hold: only a bug (or someone
		// else writing) does that. Treat it as losing the topic.
		return fmt.Errorf("redisstore: append to %s: head is %v, not %d: %w", topic, res[1:], msgs[0].Seq-1, actors.ErrFenced)
	}
}

// unsent reports whether err says that a command never reached Redis: no
// connection could be made or taken from the pool. Anything else (a
// timeout waiting for the reply, a connection reset) leaves it in doubt.
func unsent(err error) bool {
	var op *net.OpError
	return errors.Is(err, redis.ErrPoolTimeout) || (errors.As(err, &op) && op.Op == "dial")
}

// Fence returns the fence that holds topic now (0 for an unknown topic).
func (s *Store) Fence(ctx context.Context, topic string) (uint64, error) {
	v, err := s.rdb.HGet(ctx, s.metaKey(topic), "fence").Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redisstore: fence of %s: %w", topic, err)
	}
	return v, nil
}

var trimScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return -1 end
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[2])
return 0
`)

// Trim drops the messages below minSeq if fence holds the topic.
func (s *Store) Trim(ctx context.Context, topic string, fence uint64, minSeq uint64) error {
	if s.cfg.HistorySize <= 0 {
		return nil
	}
	n, err := trimScript.Run(ctx, s.rdb, []string{s.metaKey(topic), s.streamKey(topic)},
		strconv.FormatUint(fence, 10), streamID(minSeq)).Int()
	if err != nil {
		return fmt.Errorf("redisstore: trim %s: %w", topic, err)
	}
	if n < 0 {
		return actors.ErrFenced
	}
	return nil
}
