// Package websocket is topicast's WebSocket adapter (GET /ws), built on
// github.com/gobwas/ws, a low-level library that lets the adapter write each
// batch of frames as one WebSocket message in one system call and read with
// small, reused buffers.
//
// The HTTP handler upgrades the request, hands a transport.Session to the
// AcceptFunc and then reads the client's messages, splitting each into
// frames (one or more JSON lines): one epoll instance watches idle
// connections and a reader goroutine runs only while a client has sent
// something. Writes go through the session's transport.Outbound: the frames
// queued since the last write are joined with "\n" into one text message.
// Over TCP the session is a transport.NonblockingConn: the node's pooled
// writers (Config.NodeState) write what the socket takes at once, and only a
// session whose socket is full gets a goroutine, until the rest is written.
//
// A message longer than the frame limit closes the session with 1009; a
// client close frame is answered and ends the session.
package websocket
