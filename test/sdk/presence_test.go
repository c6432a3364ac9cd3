package sdktest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
)

// The Go SDK's presence against a real node: a watcher sees a member join,
// update and leave; after every connection is reset, the member's client
// enters again by itself with the same info, on its new connection.
func TestPresenceAcrossReconnection(t *testing.T) {
	ctx := testCtx(t)
	topic := "room." + strings.TrimPrefix(topicFor(t), "test.")
	wrec, mrec := newRecorder(), newRecorder()
	watcher := dial(t, srv.WSURL, fastBackoff(wrec))
	member := dial(t, srv.WSURL, fastBackoff(mrec))
	_, err := watcher.Subscribe(ctx, topic, func(sdk.Message) {}, sdk.Presence())
	require.NoError(t, err)
	sub, err := member.Subscribe(ctx, topic, func(sdk.Message) {})
	require.NoError(t, err)

	require.NoError(t, sub.Enter(ctx, map[string]string{"name": "ada"}))
	join := wrec.waitEvents(t, sdk.EventJoin, 1)[0]
	require.Equal(t, topic, join.Topic)
	require.JSONEq(t, `{"name":"ada"}`, string(join.Member.Info))
	p, err := watcher.Presence(ctx, topic)
	require.NoError(t, err)
	require.Equal(t, 1, p.Count)
	require.Equal(t, join.Member.Conn, p.Members[0].Conn)

	require.NoError(t, sub.Enter(ctx, json.RawMessage(`{"name":"ada","away":true}`)))
	upd := wrec.waitEvents(t, sdk.EventUpdate, 1)[0]
	require.JSONEq(t, `{"name":"ada","away":true}`, string(upd.Member.Info))

	// Every connection breaks; both clients reconnect, and the member
	// enters again with its latest info.
	require.Equal(t, 2, srv.resetSessions())
	mrec.waitEvents(t, sdk.EventConnected, 2)
	wrec.waitEvents(t, sdk.EventConnected, 2)
	// The watcher may resubscribe after the member entered again, and then
	// has no join for it: presence events are not recovered, the list is
	// what to ask (PROTOCOL.md).
	var again wire.Member
	wrec.waitFor(t, 20*time.Second, "the member listed on its new connection", func() bool {
		p, err := watcher.Presence(ctx, topic)
		if err != nil || p.Count != 1 || p.Members[0].Conn == join.Member.Conn {
			return false
		}
		again = p.Members[0]
		return true
	})
	require.JSONEq(t, `{"name":"ada","away":true}`, string(again.Info), "entered again with its latest info")
	require.Empty(t, mrec.eventsOf(sdk.EventError))

	require.NoError(t, sub.Leave(ctx))
	wrec.waitFor(t, 20*time.Second, "the leave", func() bool {
		for _, e := range wrec.eventsOf(sdk.EventLeave) {
			if e.Member.Conn == again.Conn {
				return true
			}
		}
		return false
	})
	p, err = watcher.Presence(ctx, topic)
	require.NoError(t, err)
	require.Zero(t, p.Count)
}
