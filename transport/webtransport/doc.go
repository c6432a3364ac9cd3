// Package webtransport is topicast's WebTransport adapter: sessions on
// https://HOST:PORT/wt over HTTP/3 and QUIC, built on
// github.com/quic-go/webtransport-go (which pins quic-go v0.64.1).
//
// # Sessions
//
// A client opens a session (?token= is passed on in SessionInfo.Token),
// then opens one bidirectional stream within Config.StreamTimeout; without
// one the session is closed with 4009. Both directions of that stream carry
// NDJSON: every frame is one JSON line ending in "\n". The Outbound writes
// each batch of queued frames in one stream write. Streams the client opens
// after the first are reset (bidirectional) or never read
// (unidirectional).
//
// The session implements transport.DatagramSession: WriteDatagram sends a
// frame of up to MaxDatagramSize bytes as one QUIC datagram, and reports
// false for a larger one so that the caller uses the stream.
//
// A server close (transport.Session.Close) becomes the WebTransport
// session error with the same code and reason; a line longer than
// Config.MaxMessage plus 4 KiB closes the session with 1009. Closing a
// WebTransport session resets its streams, so frames written just before a
// close may be lost.
//
// # Certificates
//
// Without Config.TLSConfig the server makes a development certificate that
// browsers accept through serverCertificateHashes (ECDSA P-256, valid 10
// days), reports its hash with Server.CertHash and replaces it after 8
// days. LoadCertificate reads a certificate and key from PEM files instead.
//
// # Usage
//
//	srv, err := webtransport.New(webtransport.Config{Accept: node.Accept, NodeState: node.NodeState()})
//	if err != nil { ... }
//	if err := srv.Start(ctx); err != nil { ... }
//	defer srv.Close()
//	info.URL, info.CertHash = srv.URL(), srv.CertHash()
//
// Server methods are goroutine-safe. The Handler that Accept returns is
// called from the session's reader goroutine and must not block.
package webtransport
