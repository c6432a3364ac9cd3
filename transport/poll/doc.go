// Package poll serves long polling: GET /v1/poll?topic=a&topic=b&cursor=C&timeout=25.
//
//	mux.Handle("GET /v1/poll", poll.NewHandler(poll.Config{Accept: node.Accept, History: node}))
//
// # Answer
//
// {"messages":[msg frames],"cursor":"C2","truncated":false}: messages is
// always an array (per topic in order; topics may interleave), and the
// cursor (see wire.Cursor) records, for exactly the requested topics, the
// last message the answer carries, or where the client already was. The
// client sends it back with its next poll.
//
// A poll answers at once with the retained messages after its cursor (at
// most MaxMessages, default 1000, per answer: the next poll gets the rest).
// When there are none it waits, up to timeout, for the next message of any
// of its topics, and answers with what arrived together. A topic the cursor
// does not name (or every topic, without cursor) starts at its head: the
// poll waits for its next message.
//
// truncated is true, and the poll answers at once, when messages after the
// cursor may be missing:
//
//   - the topic's history no longer reaches back to the cursor: the
//     retained messages follow, the cursor moves past them;
//   - the topic changed epoch (it restarted without its history): every
//     message the new epoch retains follows, from its oldest, and the cursor
//     moves into the new epoch, so nothing published since the restart is
//     skipped;
//   - the cursor is past the topic's head: the cursor moves to the head.
//
// # Request
//
//   - topic= once per topic: 1 to MaxTopics (default 32) valid names;
//     repeats count once.
//   - cursor= from a previous answer or an SSE event id (one codec).
//   - timeout= seconds to wait, decimals allowed. Absent: DefaultTimeout
//     (25 s). Values at or below 0 mean no wait; values above MaxTimeout
//     (60 s) are cut to it; neither is an error.
//   - token= or Authorization: Bearer, passed on in SessionInfo.Token.
//
// Errors answer {"error":{"code":..,"message":..}}: 400 for a missing or
// bad topic, too many topics, a malformed or foreign cursor, or a timeout
// that is not a number; 403 for a refused browser Origin; 503 when a topic
// does not answer.
//
// # Waiting
//
// A poll that must wait opens a short-lived session through the node's
// AcceptFunc, the same connection actor as a WebSocket client, and
// subscribes each topic with since = the position the history read left
// it at. The topic answers that sub with every message published after
// that position, so a message published between the history read and the
// subscription is delivered, not missed. The poll answers on the first
// delivery and closes the session, so its relays drop it.
//
// Why this and not a session parked between polls: nothing outlives a
// request, so any node can answer any poll, and there is no state to
// expire or to find again; recovery is the WebSocket logic, not a copy of
// it. The cost is a connection actor and a subscription per waiting poll,
// cheap next to an HTTP round trip.
//
// If a sub answers recovered:false or a reset arrives (the topic changed
// epoch while the poll waited), the poll reads the history again (at most
// three times) instead of skipping the new epoch's messages. A sub that
// fails answers its error; a session closed by the server (shutdown)
// answers what it has. What a waiting poll collects is bounded by
// MaxPendingBytes; frames beyond it are left for the next poll, which the
// cursor allows because it covers only what the answer carries.
//
// Handler is goroutine-safe. ServeHTTP holds no goroutine but the request's.
package poll
