package browser

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/server"
)

// presenceScript runs two topicast.js clients in the page: both subscribe
// to the room's presence, alice then bob enter, alice asks who is in, bob
// leaves and then closes.
const presenceScript = `(async (server, topic, transports) => {
  const { connect } = await import(server + "/topicast.js");
  const events = { alice: [], bob: [] };
  const open = (name) => connect({ url: server, transports, minBackoff: 50, onEvent: (e) => {
    if (e.type === "join" || e.type === "update" || e.type === "leave")
      events[name].push({ type: e.type, conn: e.conn, name: e.info ? e.info.name : "" });
  } });
  const alice = await open("alice"), bob = await open("bob");
  const sa = alice.subscribe(topic, () => {}, { presence: true });
  const sb = bob.subscribe(topic, () => {}, { presence: true });
  await sa.ready; await sb.ready;
  const until = async (cond) => {
    for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  };
  await sa.enter({ name: "alice" });
  await sb.enter({ name: "bob" });
  await until(() => events.alice.length >= 2 && events.bob.length >= 2);
  const list = await sa.presence();
  await sb.leave();
  await until(() => events.alice.length >= 3);
  await sb.enter({ name: "bob again" });
  await until(() => events.alice.length >= 4);
  bob.close();
  await until(() => events.alice.length >= 5);
  alice.close();
  return { events, count: list.count, names: list.members.map((m) => m.info.name).sort() };
})`

type presenceEvent struct {
	Type, Conn, Name string
}

// Two topicast.js clients in Chromium see each other enter and leave, over
// WebSocket and over WebTransport: join, join, a listing of both, leave,
// join again, and the leave of a client that closes.
func TestClientPresence(t *testing.T) {
	srv := startTopicast(t, true, server.Config{Node: cluster.Config{Topic: actors.TopicConfig{
		Namespaces: actors.Namespaces{{Pattern: "room.*", Presence: true, JoinLeave: true}},
	}}})
	b := newBrowser(t)
	for _, tr := range []string{"websocket", "webtransport"} {
		t.Run(tr, func(t *testing.T) {
			b.open(t, srv)
			var r struct {
				Events map[string][]presenceEvent
				Count  int
				Names  []string
			}
			b.call(t, &r, presenceScript, "http://"+srv.Addr(), "room."+tr, []string{tr})
			require.Equal(t, 2, r.Count)
			require.Equal(t, []string{"alice", "bob"}, r.Names)
			a, bob := r.Events["alice"], r.Events["bob"]
			require.Len(t, a, 5, "alice's events: %v", a)
			want := []presenceEvent{
				{"join", a[0].Conn, "alice"}, {"join", a[1].Conn, "bob"}, {"leave", a[1].Conn, ""},
				{"join", a[1].Conn, "bob again"}, {"leave", a[1].Conn, ""},
			}
			require.Equal(t, want, a)
			require.NotEqual(t, a[0].Conn, a[1].Conn)
			require.Equal(t, want[:4], bob, "bob sees the same events until he closes")
		})
	}
}
