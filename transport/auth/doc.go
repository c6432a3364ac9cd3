// Package auth decides who may reach a topicast server and how much they may
// ask of it: it verifies client tokens, matches topic patterns, meters
// rates and counts sessions. It imports only the wire package and
// golang-jwt, so adapters and actors can both use it.
//
// # Tokens
//
// A client token is a JWT signed with HS256 (no other algorithm, and never
// "none") that carries "sub" and "exp" and two lists of topic patterns,
// "subscribe" and "publish":
//
//	v := auth.NewVerifier(secret)
//	claims, err := v.Verify(token) // err is a *wire.Error, code unauthorized
//	if claims.Subscribe.Allow("game.1") { ... }
//
// An HTTP client (SSE, polling, history) brings its token in the URL or the
// Authorization header; v.AuthorizeRequest checks it against the topics it
// asks for, and a nil *Verifier (no token required) allows everything.
//
// # Patterns
//
// A pattern is a topic name, which matches itself, or a prefix ending in
// "*", which matches every topic that starts with the prefix ("game.*"
// matches "game.1"; "*" matches every topic).
//
// # Concurrency
//
// Verifier and Patterns are goroutine-safe. Bucket is not: it belongs to one
// goroutine (a connection's reader). Limiter and ConnLimit (a node's count
// of client sessions against its maximum) are goroutine-safe.
package auth
