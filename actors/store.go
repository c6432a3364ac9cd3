package actors

import (
	"context"
	"errors"
	"fmt"
)

// ErrFenced is returned by a HistoryStore when a newer activation of the
// topic has claimed it: the caller is stale and must stop writing.
var ErrFenced = errors.New("topicast: topic claimed by a newer activation")

// ErrNotWritten is wrapped by a HistoryStore's error when the store knows
// that the call wrote nothing (it could not reach its server, say). Errors
// that wrap neither it nor ErrFenced leave the write in doubt: a request
// that timed out may still have been applied.
var ErrNotWritten = errors.New("topicast: the store wrote nothing")

// notWritten reports whether err says for sure that a store call wrote
// nothing.
func notWritten(err error) bool {
	var dup *DuplicateKeysError
	return errors.Is(err, ErrFenced) || errors.Is(err, ErrNotWritten) || errors.As(err, &dup)
}

// StoredMessage is one retained message as a HistoryStore keeps it.
type StoredMessage struct {
	Seq uint64
	// At is the publish time, Unix nanoseconds.
	At int64
	// Frame is the encoded msg frame.
	Frame []byte
	// Key is the message's idempotency key, if any (only in Append).
	Key string
}

// TopicState is what a topic's activation starts from.
type TopicState struct {
	// Fence identifies the activation's claim; Append must present it.
	Fence uint64
	// Epoch of the topic; empty means the store keeps none and the
	// activation makes a fresh one.
	Epoch string
	// Head is the seq of the newest message ever published in Epoch.
	Head uint64
	// Messages are the newest retained messages, oldest first, at most the
	// limit given to Open, all of them with a seq at most Head.
	Messages []StoredMessage
}

// DuplicateKeysError is returned by Append when some keys of the batch were
// already used, by an earlier activation: nothing was written. Seqs maps each
// such key to the seq it got first.
type DuplicateKeysError struct {
	Seqs map[string]uint64
}

func (e *DuplicateKeysError) Error() string {
	return fmt.Sprintf("topicast: %d idempotency keys already used", len(e.Seqs))
}

// HistoryStore keeps what a topic must not lose when its actor moves to
// another node: its epoch, head seq, retained messages and idempotency keys.
//
// The topic actor is the single writer of its topic and calls the store
// from its own goroutine, so a store call blocks the topic (and only it)
// for one round trip; ctx bounds it. Implementations must be goroutine-safe
// across topics.
type HistoryStore interface {
	// Open claims topic for a new activation, fencing out older ones, and
	// returns its state with at most limit retained messages published at
	// or after minAt (Unix nanoseconds). It creates the topic with epoch
	// newEpoch when the store knows nothing of it.
	Open(ctx context.Context, topic, newEpoch string, limit int, minAt int64) (*TopicState, error)
	// Append writes msgs (consecutive seqs after the topic's head) and
	// remembers their keys, if fence still holds the topic. It returns
	// ErrFenced when a newer activation claimed the topic, and a
	// *DuplicateKeysError, writing nothing, when a key was used before.
	// Any other error wraps ErrNotWritten when nothing was written for
	// sure; else the write is in doubt. An Append applied twice (a retry
	// after a lost reply) must report success the second time.
	// minSeq > 0 also drops the messages with a smaller seq (expired).
	Append(ctx context.Context, topic string, fence uint64, msgs []StoredMessage, minSeq uint64) error
	// Fence returns the fence that holds topic now: an activation whose
	// fence differs has been claimed over.
	Fence(ctx context.Context, topic string) (uint64, error)
	// Trim drops the messages with a seq below minSeq, if fence still holds
	// the topic.
	Trim(ctx context.Context, topic string, fence uint64, minSeq uint64) error
	// Durable reports whether the state outlives the process.
	Durable() bool
}

// MemoryStore is the default HistoryStore: it keeps nothing beyond the
// topic actor itself, whose memory holds the history. A topic that moves or
// restarts starts a new epoch. It is goroutine-safe (it has no state).
type MemoryStore struct{}

var _ HistoryStore = MemoryStore{}

// Open returns a fresh state in newEpoch.
func (MemoryStore) Open(_ context.Context, _, newEpoch string, _ int, _ int64) (*TopicState, error) {
	return &TopicState{Epoch: newEpoch}, nil
}

// Append keeps nothing.
func (MemoryStore) Append(context.Context, string, uint64, []StoredMessage, uint64) error { return nil }

// Fence is always 0, as Open gives it.
func (MemoryStore) Fence(context.Context, string) (uint64, error) { return 0, nil }

// Trim has nothing to drop.
func (MemoryStore) Trim(context.Context, string, uint64, uint64) error { return nil }

// Durable is false.
func (MemoryStore) Durable() bool { return false }
