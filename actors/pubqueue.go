package actors

import (
	"context"
	"strconv"
	"sync"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// Publisher publishes messages: the node's publish path, which finds each
// topic's actor wherever it lives and asks again while a topic moves
// between nodes (cluster.Node). POST /v1/publish and clients' pub frames
// both go through it, with the same retries and errors. It may block for a
// round trip or a member's timeout, so connection actors call it off their
// goroutine. Implementations are goroutine-safe.
type Publisher interface {
	Publish(ctx context.Context, items []wire.PublishItem) ([]wire.PublishResult, error)
}

// Bounds of the pubs of one connection that wait for their topics; more
// are refused with rate_limited. They bound what a client that publishes
// faster than its topics answer (a node died under them, say) can hold in
// the server.
const (
	maxPendingPubs      = 1024
	maxPendingPubsBytes = 1 << 20
)

// maxPubBatch bounds how many queued pubs of one topic go in one call.
const maxPubBatch = 100

// pubQueue publishes a connection's pubs off the actor's goroutine: the
// connection actor never waits for a topic. Each topic with pubs waiting
// has a goroutine that publishes them in the order the client sent them,
// consecutive ones in one call (one round trip, seqs in order); a topic
// that moves holds up its own pubs only (the protocol orders nothing
// across topics). Each pub is answered with its ok or error frame, written
// to the session directly.
type pubQueue struct {
	sess      transport.Session
	publisher Publisher
	cfg       *ConnConfig

	mu sync.Mutex
	// Guarded by mu.
	topics map[string][]queuedPub // pubs waiting, by topic; present while a goroutine drains it
	count  int
	bytes  int
}

type queuedPub struct {
	id    uint64
	topic string
	data  []byte
}

// push queues a pub; it reports false when too many are waiting.
func (q *pubQueue) push(p queuedPub) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.count >= maxPendingPubs || q.bytes+len(p.data) > maxPendingPubsBytes {
		return false
	}
	q.count++
	q.bytes += len(p.data)
	if q.topics == nil {
		q.topics = make(map[string][]queuedPub)
	}
	pending, running := q.topics[p.topic]
	q.topics[p.topic] = append(pending, p)
	if !running {
		go q.drain(p.topic)
	}
	return true
}

// next takes the next run of pubs of topic, or reports that none is left,
// ending the topic's drain.
func (q *pubQueue) next(topic string) []queuedPub {
	q.mu.Lock()
	defer q.mu.Unlock()
	pending := q.topics[topic]
	if len(pending) == 0 {
		delete(q.topics, topic)
		return nil
	}
	n := min(len(pending), maxPubBatch)
	run := make([]queuedPub, n)
	copy(run, pending)
	q.topics[topic] = append(pending[:0], pending[n:]...)
	return run
}

// done releases what run held.
func (q *pubQueue) done(run []queuedPub) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range run {
		q.count--
		q.bytes -= len(p.data)
	}
}

func (q *pubQueue) drain(topic string) {
	for run := q.next(topic); run != nil; run = q.next(topic) {
		q.publish(run)
		q.done(run)
	}
}
func (q *pubQueue) publish(run []queuedPub) {
	items := make([]wire.PublishItem, len(run))
	for i, p := range run {
		items[i] = wire.PublishItem{Topic: p.topic, Data: p.data}
	}
	// The session's context ends the wait when the client leaves; the
	// request timeout bounds it otherwise, as for POST /v1/publish.
	ctx, cancel := context.WithTimeout(q.sess.Context(), q.cfg.RequestTimeout)
	res, err := q.publisher.Publish(ctx, items)
	cancel()
	frames := make([][]byte, 0, len(run))
	for i, p := range run {
		switch {
		case err != nil:
			e := *wire.AsError(err)
			e.ID = p.id
			frames = append(frames, wire.AppendError(nil, &e))
		case i < len(res):
			frames = append(frames, wire.AppendPubOK(nil, p.id, p.topic, res[i].Epoch, res[i].Seq))
		default:
			frames = append(frames, wire.AppendError(nil, &wire.Error{Code: wire.CodeInternal, ID: p.id,
				Message: "publish answered " + strconv.Itoa(len(res)) + " results for " + strconv.Itoa(len(run)) + " messages"}))
		}
	}
	_ = q.sess.WriteMany(frames) // a closed session needs no answer
}
