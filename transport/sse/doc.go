// Package sse serves Server-Sent Events: GET /v1/sse?topic=a&topic=b.
//
// A stream is a client session like a WebSocket one: the handler gives a
// transport.Session to the node's AcceptFunc and feeds the returned
// Handler one sub frame per topic, with "since" set from the client's
// cursor, so subscription and recovery are exactly the WebSocket logic.
//
//	mux.Handle("GET /v1/sse", sse.NewHandler(sse.Config{Accept: node.Accept, NodeState: node.NodeState()}))
//
// # Request
//
//   - topic= once per topic: 1 to MaxTopics (default 32) valid names;
//     repeats count once.
//   - cursor= a cursor (see wire.Cursor) to resume from. The Last-Event-ID
//     header does the same and wins when both are present: a browser that
//     reconnects sends the URL it first opened, cursor= included, and the
//     id of the last event it got. Positions of topics that the stream does
//     not name are ignored.
//   - token= or Authorization: Bearer, passed on in SessionInfo.Token.
//   - mode=latest makes every topic of the stream a latest-value
//     subscription (PROTOCOL.md 1.1): a client that falls behind gets the
//     newest message of each topic, never a 4008 for a topic's volume.
//
// Before the stream starts, a request without topic, with a bad topic or
// too many, a mode other than latest, or with a malformed or foreign cursor
// or Last-Event-ID is answered 400 with
// {"error":{"code":"bad_request","message":..}} (the message starts with
// "Last-Event-ID: " when the header is at fault), and a browser Origin that
// CheckOrigin refuses gets 403.
//
// # Events
//
//   - event: ready, first, once every topic's sub is answered. Its data is
//     {"topics":{"a":{"epoch":..,"seq":..,"recovered":..}}}: seq is the
//     head when the stream started, recovered is present only for topics
//     the cursor named. It carries an id too, so a stream dropped before
//     any message resumes where it started.
//   - one unnamed event per msg frame: data is the frame, id is a cursor of
//     every topic of the stream that includes the message. For a recovered
//     topic, ids keep the cursor's position until its missed messages have
//     been written, so resuming from any id never skips one.
//   - event: reset, with an id, when a topic changes epoch while
//     subscribed; data is the reset frame.
//   - event: error, data an error frame. An error that answers a sub (the
//     topic is unavailable, say) ends the stream after the event: the
//     client reconnects, as a browser does on its own. An error without id
//     (the server ended one subscription) leaves the stream open.
//   - the comment ": keepalive" after KeepaliveEvery (15 s) without event.
//
// # Closing
//
// The session ends when the client goes (the request's context is done).
// The server ends the stream, without a last event, when it closes the
// session: on shutdown (1001), for a slow consumer (4008: a queue over
// MaxPendingBytes, a write over WriteTimeout, or more than MaxPendingBytes
// of live messages held back before the ready event), or after a failed
// sub.
// A client reconnects with the last id it got.
//
// # Writing
//
// The session embeds transport.Outbound; its writer turns each batch of
// queued frames into events, writes them in one Write and flushes them
// (http.ResponseController), with a write deadline. The writer reads the
// sub's ok frames instead of writing them, holds back what comes before the
// ready event, and keeps the stream's cursor. Streams are not tracked by a
// transport.Keepalive, whose silence rule would close them (an SSE client
// never sends); each stream's request goroutine runs its comment ticker.
//
// Handler is goroutine-safe. ServeHTTP returns when the stream ends.
package sse
