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
// Adapters that read the server's own frames back (SSE, polling, the
// delivery metrics) never match their JSON: Kind and IsMsg classify a frame,
// and ParseHead, ParseOK and ParseError read its fields, without allocating
// for msg, reset and ok frames. They are built from the same constants as
// the encoders, so a change of a frame's shape is made here only (and
// frame_test.go fails when an encoder and its parser disagree):
//
//	if h, ok := wire.ParseHead(frame); ok && h.Kind == wire.FrameMsg {
//		cursor.AdvanceTo(&h)
//	}
//
// SubCommand builds the sub command an adapter sends on its client's behalf.
//
// Client frames are parsed by DecodeCommand, which answers a *Error carrying
// the protocol error code (and the command's id when it could be read).
//
// All functions are goroutine-safe; no function keeps a reference to its input
// (the slices of a Head or Reply alias the parsed frame).
package wire
