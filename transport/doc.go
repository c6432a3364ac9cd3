// Package transport is what every client protocol adapter shares: the Session
// a connection actor writes to, the Disconnect a session closes with, the
// bounded outbound queue and its writer (Outbound), and the heartbeat sweeper
// (Keepalive).
//
// # Writing
//
// A Session never blocks its caller. Write appends a frame to the session's
// queue, bounded in bytes; a writer goroutine, started only while there is
// something to write, takes everything queued and hands it to the adapter as
// one batch, which the adapter writes as one transport message and one system
// call. A queue over its bound closes the session with 4008 (slow consumer)
// without slowing the caller or anyone else.
//
// # Reading
//
// Adapters read frames themselves and hand each one to the Handler that the
// AcceptFunc returned for the session. Handlers must not block.
//
// All exported methods are goroutine-safe.
package transport
