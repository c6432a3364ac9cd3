// Package websocket is topicast's WebSocket adapter (GET /ws), built on
// github.com/gobwas/ws, a low-level library that lets the adapter write each
// batch of frames as one WebSocket message in one system call and read with
// small, reused buffers.
//
// The HTTP handler upgrades the request, hands a transport.Session to the
// AcceptFunc and then reads the client's messages on the handler's goroutine,
// splitting each into frames (one or more JSON lines). Writes go through the
// session's transport.Outbound: the frames queued since the last write are
// joined with "\n" into one text message.
//
// A message longer than the frame limit closes the session with 1009; a
// client close frame is answered and ends the session.
package websocket
