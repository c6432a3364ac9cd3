package actors

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/testutil"
)

// 20,000 subscribers of one topic leaving at once (their node's clients
// reconnecting elsewhere, say) cost the relay O(N), not O(N^2), and a
// subscriber that stayed gets the next message at once.
func TestRelayCrowdLeavesAtOnce(t *testing.T) {
	testutil.SkipIfShort(t)
	const leaving = 20000
	e := newEnv(t, TopicConfig{})
	stay := e.connect()
	stay.send(`{"op":"sub","id":1,"topic":"t"}`)
	stay.next(t, 1)
	crowd := make([]*ConnRef, leaving)
	for i := range crowd {
		crowd[i] = &ConnRef{Session: testutil.NewSession()}
		e.relays.send("t", &relaySubscribe{conn: crowd[i], id: 1})
	}
	// Joining is not what this test measures: the crowd's 20,000 oks get
	// one generous deadline (a CI run with the race detector, its CPU shared
	// with other work, once took more than 5 s for the first of them).
	joined := time.Now().Add(60 * time.Second)
	for _, ref := range crowd {
		ref.Session.(*testutil.Session).WaitFrames(t, 1, time.Until(joined))
	}
	start := time.Now()
	for _, ref := range crowd {
		e.relays.send("t", &relayUnsubscribe{conn: ref})
	}
	_, err := e.system.Root.RequestFuture(e.relayPID("t"), &relayFlush{}, 10*time.Second).Result()
	require.NoError(t, err)
	took := time.Since(start)
	e.publish("t", data(1))
	require.Equal(t, uint64(1), stay.next(t, 1)[0].Seq)
	t.Logf("the relay handled %d unsubscribes in %v", leaving, took)
	require.Less(t, took, time.Second) // the slice scan took 3.1 s here; a loaded -race run takes about 0.3 s
}
