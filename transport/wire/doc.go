// Package wire is the leaf of topicast's client protocol (docs/protocol.md): the
// frames clients and servers exchange, the error and close codes, topic name
// rules, the publish body, and the cursor codec shared by SSE and polling.
//
// It imports only the standard library, so the SDK, the transports and the
// server all speak the protocol through the same code.
//
// # Encoding
//
// Server frames are built with Append functions that write into a caller's
// buffer, so the hot path (one msg frame per published message, shared by
// every subscriber) costs one allocation per message, not per delivery:
//
//	frame := wire.AppendMsg(nil, "scores", "e1", 58, ts, data)
//
// Client frames are parsed by DecodeCommand, which answers a *Error carrying
// the protocol error code (and the command's id when it could be read).
//
// All functions are goroutine-safe; no function keeps a reference to its input.
package wire
