package actors

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk/wire"
)

// heldPublisher publishes through LocalTopics once the test lets it.
type heldPublisher struct {
	*LocalTopics
	release chan struct{}
	calls   chan []wire.PublishItem
}

func (p *heldPublisher) Publish(ctx context.Context, items []wire.PublishItem) ([]wire.PublishResult, error) {
	p.calls <- items
	<-p.release
	return p.LocalTopics.Publish(ctx, items)
}

// A pub waits for its topic off the connection actor: the client's other
// commands are answered meanwhile, a topic that is slow to answer holds up
// its own pubs only, and each topic's pubs are published in the order sent,
// consecutive ones in one call.
func TestPubDoesNotHoldTheConnection(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	pub := &heldPublisher{LocalTopics: e.topics, release: make(chan struct{}), calls: make(chan []wire.PublishItem, 10)}
	e.conns = NewConns(e.system, pub, e.relays, ConnConfig{MaxMessage: 1024})
	c := e.connect()
	c.send(`{"op":"pub","id":1,"topic":"a","data":1}`)
	require.Len(t, <-pub.calls, 1) // held inside the publisher
	for i := 2; i <= 4; i++ {
		c.send(fmt.Sprintf(`{"op":"pub","id":%d,"topic":"a","data":%d}`, i, i))
	}
	c.send(`{"op":"pub","id":5,"topic":"b","data":5}`)
	c.send(`{"op":"ping"}`)
	require.Equal(t, "pong", c.next(t, 1)[0].Op, "the actor waited for the publisher")
	other := <-pub.calls
	require.Equal(t, "b", other[0].Topic, "topic b waited for topic a")
	close(pub.release)
	require.Len(t, <-pub.calls, 3, "pubs 2 to 4 go in one call")
	seqs := make(map[uint64]uint64)
	for _, f := range c.next(t, 5) {
		require.Equal(t, "ok", f.Op, f.Raw)
		seqs[f.ID] = f.Seq
	}
	require.Equal(t, map[uint64]uint64{1: 1, 2: 2, 3: 3, 4: 4, 5: 1}, seqs, "seqs follow the order sent")
}

// A publisher's error answers every pub of the call with it.
func TestPubErrorsAnswerEachPub(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	e.conns = NewConns(e.system, failingPublisher{}, e.relays, ConnConfig{MaxMessage: 1024})
	c := e.connect()
	c.send(`{"op":"pub","id":7,"topic":"a","data":1}`)
	f := c.next(t, 1)[0]
	require.Equal(t, "error", f.Op)
	require.Equal(t, uint64(7), f.ID)
	require.Equal(t, "unavailable", f.Code)
}

type failingPublisher struct{}

func (failingPublisher) Publish(context.Context, []wire.PublishItem) ([]wire.PublishResult, error) {
	return nil, wire.Errorf(wire.CodeUnavailable, "no topic today")
}
