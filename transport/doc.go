// Package transport is what every client protocol adapter shares: the Session
// a connection actor writes to, the Disconnect a session closes with, the
// bounded outbound queue and its writer (Outbound), and the heartbeat sweeper
// (Keepalive).
//
// # Writing
//
// A Session never blocks its caller. Write appends a frame to the session's
// queue, bounded in bytes; a writer takes everything queued and hands it to
// the adapter as one batch, which the adapter writes as one transport message
// and one system call. A queue over its bound closes the session with 4008
// (slow consumer) without slowing the caller or anyone else.
//
// Which writer: an adapter whose connection can be written without waiting
// (a NonblockingConn: WebSocket over TCP) is served by a pool of at most one
// goroutine per CPU, shared by every session of the node, that exists only
// while some session has something queued; a session whose socket is full
// continues on a goroutine of its own until its queue is empty, so a slow
// client never holds a pooled writer. Other adapters get a writer goroutine
// per session, started only while there is something to write.
//
// # Per node, not per process
//
// What the sessions of a node share lives in the node's NodeState, never in
// a package variable: the pooled writers, the delivery backlog
// (PendingBytes: bytes queued and not yet written, which the publish
// backpressure reads) and the counters (NodeMetrics: deliveries and their
// latency, connections, subscriptions, topics, publishes, history). The node
// makes one and gives it to each adapter's Config, which passes it to every
// session's OutboundConfig; its actors count in its Metrics. Several nodes in
// one process (tests) share nothing. An adapter or Outbound given none makes
// its own, which no one else reads.
//
//	st := new(transport.NodeState) // one per node
//	h := websocket.NewHandler(websocket.Config{Accept: accept, NodeState: st})
//	backlog := st.PendingBytes()
//
// # Reading
//
// Adapters read frames themselves and hand each one to the Handler that the
// AcceptFunc returned for the session. Handlers must not block.
//
// All exported methods are goroutine-safe.
package transport
