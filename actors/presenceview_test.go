package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors/actorpb"
)

// A relay dropped by its activation without being told (the notice lost)
// misses the events sent meanwhile; when it is registered there again (by
// its periodic check, or after its watch of the activation fired on a
// broken connection) it compares its subscribers' view with the
// activation's members and tells them what they missed: here the leave of
// a member of another node.
func TestPresenceViewAfterSilentDrop(t *testing.T) {
	for _, how := range []string{"check", "terminated"} {
		t.Run(how, func(t *testing.T) {
			e, _ := presenceEnv(t)
			w := e.connect()
			w.send(`{"op":"sub","id":1,"topic":"room.1","presence":true}`)
			require.Equal(t, "ok", w.next(t, 1)[0].Op)
			time.Sleep(100 * time.Millisecond) // the view's first snapshot
			// Another node's relay, with member x.
			other := e.newProbe()
			e.send("room.1", &actorpb.JoinRequest{Topic: "room.1", Relay: other.pid, Tag: 1, Rejoin: true})
			_ = other.next(t)
			e.send("room.1", &actorpb.PresenceChange{Topic: "room.1", Relay: other.pid, Full: true, Last: true,
				Entered: []*actorpb.PresenceMember{{Client: "x", Conn: "x"}}})
			f := w.next(t, 1)[0]
			require.Equal(t, "join", f.Op, f.Raw)

			// The activation drops this node's relay without a word, and x
			// leaves meanwhile.
			relay := e.relayPID("room.1")
			topic, _ := e.topics.TopicPID("room.1")
			e.send("room.1", &actorpb.LeaveRequest{Topic: "room.1", Relay: relay})
			e.send("room.1", &actorpb.PresenceChange{Topic: "room.1", Relay: other.pid, Left: []string{"x"}})
			time.Sleep(50 * time.Millisecond)
			if how == "check" {
				stop := e.relays.StartChecks(10 * time.Millisecond)
				t.Cleanup(stop)
			} else {
				e.system.Root.Send(relay, &actor.Terminated{Who: topic, Why: actor.TerminatedReason_AddressTerminated})
			}
			f = w.next(t, 1)[0]
			require.Equal(t, "leave", f.Op, "the subscriber is told x left: %s", f.Raw)
			require.Equal(t, "x", f.Conn)

			e.send("room.1", &actorpb.PresenceChange{Topic: "room.1", Relay: other.pid,
				Entered: []*actorpb.PresenceMember{{Client: "y", Conn: "y"}}})
			f = w.next(t, 1)[0]
			require.Equal(t, "join", f.Op, f.Raw)
			require.Equal(t, "y", f.Conn)
		})
	}
}
