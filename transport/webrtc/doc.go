// Package webrtc is topicast's WebRTC adapter: clients reach the server over
// data channels of a peer connection, built on github.com/pion/webrtc/v4.
// It is for browsers without WebTransport that still want lossy,
// latest-wins delivery, and for clients whose network passes UDP but not
// QUIC.
//
// # Signalling
//
// The client POSTs its SDP offer, with ICE gathering complete, to
// /v1/webrtc (Content-Type application/sdp, at most MaxOfferSize bytes);
// the server answers 201 with its SDP answer, every candidate included, so
// one round trip sets the connection up (as WHIP does). The offer must hold
// an application (data channel) section and nothing else. Refusals are the
// HTTP API's JSON errors: 400 for a body that is not such an offer, 413 for
// one too large, 401 for a bad, expired or (when tokens are required)
// missing token, 403 for a refused Origin, 503 with Retry-After when the
// node holds Config.MaxConns sessions or Config.MaxPending peer connections
// are being set up.
//
// Every peer connection shares one UDP socket (Config.UDPAddr) through
// pion's UDP mux, so a deployment opens one port. The server gathers host
// candidates only; Config.PublicIPs replaces their address behind a 1:1
// NAT, and Config.ICEServers are the STUN and TURN servers clients should
// use, reported by GET /v1/info.
//
// # Sessions
//
// The client opens a data channel labelled "topicast" (ordered, reliable),
// and optionally one labelled "topicast-datagram" (unordered, no
// retransmissions). The session starts when "topicast" opens; a peer
// connection whose "topicast" channel is not open within
// Config.ConnectTimeout (ICE or DTLS never completed, or the client never
// opened it) is closed and forgotten. On "topicast" each message holds one
// or more frames joined by "\n", both ways, exactly as on a WebSocket; the
// server sends text messages no larger than the client's SCTP
// max-message-size allows and accepts messages up to Config.MaxMessage plus
// 4 KiB (a longer frame closes the session with 1009).
//
// The session implements transport.DatagramSession: datagram
// subscriptions get each msg frame as one message on "topicast-datagram"
// (at most MaxDatagramSize bytes, larger ones go over "topicast"; when more
// than 32 wait for the channel the oldest is dropped). A client that did
// not open the datagram channel has its datagram subscriptions delivered
// on "topicast".
//
// A server close sends an error frame with no id and no topic, whose code
// is the close code's name (see wire.AppendCloseFrame), waits up to a
// second for the client to acknowledge it, then closes the peer
// connection. A peer connection that fails or closes ends the session
// without a code.
package webrtc
