package actors

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/testutil"
)

// A "mode":"latest" sub is refused on a session that cannot conflate (long
// polling), and on one that can, the relay hands it every message through
// WriteLatest, in order.
func TestLatestSubscription(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	plain := e.connect()
	plain.send(`{"op":"sub","id":1,"topic":"cpu","mode":"latest"}`)
	wantError(1, "bad_request")(t, plain.next(t, 1)[0])

	s := testutil.NewLatestSession()
	h := e.conns.Accept(s)
	t.Cleanup(func() { h.HandleClosed(nil) })
	c := &client{sess: s.Session, handler: h}
	c.send(`{"op":"sub","id":1,"topic":"cpu","mode":"latest"}`)
	require.Equal(t, "ok", c.next(t, 1)[0].Op)
	for i := range 3 {
		e.publish("cpu", data(i))
	}
	for i, f := range c.next(t, 3) {
		require.Equal(t, "msg", f.Op)
		require.Equal(t, uint64(i+1), f.Seq)
	}
	require.Equal(t, int64(3), s.LatestWrites())
	require.Nil(t, s.Closed())
}
