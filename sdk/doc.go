// Package sdk is the Go SDK of topicast: a Client that subscribes to topics
// (and may publish) over a connection it keeps up by itself, and a
// Publisher that services use to publish over HTTP.
//
// # Subscribing
//
// Dial connects to a server's WebSocket endpoint and returns a Client.
// Subscribe returns once the server confirmed the subscription; its handler
// then gets every message of the topic, exactly once and in order:
//
//	c, err := sdk.Dial(ctx, "ws://127.0.0.1:8080/ws", sdk.Config{
//		OnEvent: func(e sdk.Event) { log.Println("topicast:", e) },
//	})
//	if err != nil { ... }
//	defer c.Close()
//	sub, err := c.Subscribe(ctx, "scores", func(m sdk.Message) {
//		fmt.Println(m.Seq, string(m.Data))
//	})
//	...
//	err = sub.Unsubscribe(ctx)
//
// A message is named by its topic's epoch and its seq (1, 2, 3... in an
// epoch, without gaps). To resume after a restart of the application, store
// the (Epoch, Seq) of the last message handled and subscribe with
// Since(epoch, seq): the server replays what followed from its history (by
// default the last 1000 messages and at least 5 minutes).
//
// # Reconnection and delivery guarantees
//
// When the connection breaks (network error, server restart, 1001, slow
// consumer 4008, rate limit 4029, or a server silent for
// Config.SilenceTimeout), the client reconnects by itself. It waits a
// random time in [0, min(MaxBackoff, MinBackoff*2^n)] before the n-th
// consecutive attempt (100 ms and 10 s by default; "full jitter", so that
// many clients dropped at once do not come back at once), and moves to the
// next of Config.FallbackURLs after a failed attempt or a 1001. It then
// subscribes every topic again with since = the position of the last
// message it delivered, and drops any message at or below that position,
// so the application sees each message once and in order per topic.
// Nothing is promised across topics.
//
// When the server cannot fill the gap (the history no longer reaches back,
// or the topic restarted in a new epoch), OnEvent gets an EventReset with
// the topic and the new position, and the subscription goes on live from
// there: the application resyncs that topic on its own (GET /v1/history,
// its database...).
//
// The client does not reconnect after the close codes that need a fix
// first: 1009 (a frame too large), 4001 (unauthorized) and 4009 (protocol
// error). It stops, Done is closed, Err returns the *CloseError, OnEvent
// gets an EventClosed, and calls fail with that error.
//
// In the SDK's chaos test (10,000 messages, 20 broken connections: 4008,
// 1001 and TCP resets, loopback, default backoff), a break to the first
// recovered message took 35-75 ms at the median and 85-105 ms at p99 (n=20
// per run), nearly all of it the backoff's jitter.
//
// Heartbeats: the client answers the server's pings, pings when the
// connection has been quiet for Config.PingAfter (25 s), and drops a
// connection on which the server sent nothing for Config.SilenceTimeout
// (60 s).
//
// # Handlers and concurrency
//
// The Client's and Publisher's methods are goroutine-safe. Message
// handlers and Config.OnEvent are called one at a time, on one goroutine
// per Client, in the order the messages and events happened. A handler
// must not block for long: the messages after it wait in memory. A handler
// may call Subscribe, Unsubscribe, Publish, Enter, Leave and Presence, but
// not Close, which waits for the handler in progress (call it from another
// goroutine). No handler call starts after Unsubscribe or Close returned.
// Every goroutine of a Client or Publisher ends in Close.
//
// # Publishing
//
// Services publish with a Publisher (POST /v1/publish):
//
//	p, err := sdk.NewPublisher("http://127.0.0.1:8080", sdk.PublisherConfig{APIKey: key})
//	if err != nil { ... }
//	defer p.Close()
//	res, err := p.Publish(ctx, "scores", map[string]int{"home": 2, "away": 1})
//	// res.Epoch, res.Seq: where the message landed
//
// Each message carries a random idempotency key, and the Publisher retries
// network errors and 408, 429 (after Retry-After) and 5xx answers with
// backoff: the server publishes a key once, so a retry never duplicates a
// message. With PublisherConfig.BatchSize above 1, concurrent Publish
// calls share requests.
//
// A Client may publish too (Client.Publish), if its token allows it. That
// path has no idempotency key: when the connection drops before the answer,
// Publish fails with ErrConnectionLost and the message may or may not have
// been published.
//
// # Errors
//
// Errors of the protocol (an error frame, an HTTP error body, a refused
// topic or size) are *wire.Error, with a wire.ErrorCode such as
// wire.CodeForbidden: match them with errors.As. A server's close is a
// *CloseError. Sentinels (ErrClosed, ErrConnectionLost, ErrServerSilent,
// ErrAlreadySubscribed...) match with errors.Is; those meaning "connection
// gone" also match net.ErrClosed.
//
// # Transports
//
// The client speaks WebSocket (ws:// and wss:// URLs), WebTransport over
// QUIC (https:// URLs, such as https://127.0.0.1:4433/wt) and WebRTC
// (below), with the same frames, guarantees and reconnection: over WebTransport they travel
// on one bidirectional stream as NDJSON, and the server's session error
// codes are the close codes above (a *CloseError). The client writes an
// empty line on the stream as soon as it opens it, since a server sees a
// stream only once data comes on it. FallbackURLs may mix them, for
// instance WebTransport first and WebSocket for networks that block UDP.
//
// A server without a configured certificate makes its own (valid 10 days)
// and reports its SHA-256 in GET /v1/info as webtransport.certHash: pass
// it as Config.CertHash to pin it. Otherwise the certificate must chain to
// Config.TLSConfig's roots (or the system's).
//
//	c, err := sdk.Dial(ctx, "https://127.0.0.1:4433/wt", sdk.Config{CertHash: info.WebTransport.CertHash})
//
// # WebRTC
//
// A URL whose path ends in /v1/webrtc, on the server's HTTP port (http://
// or https://), selects WebRTC data channels (protocol 1.1, with
// github.com/pion/webrtc): for networks that pass UDP but not QUIC, and
// for datagram subscriptions without WebTransport.
//
//	c, err := sdk.Dial(ctx, "http://127.0.0.1:8080/v1/webrtc", sdk.Config{})
//
// Each connection is a peer connection of its own. The client creates the
// "topicast" channel (ordered, reliable), which carries the same frames as
// a WebSocket, and always the "topicast-datagram" one (unordered, no
// retransmission) for datagram subscriptions; it gathers its ICE
// candidates, POSTs the offer with all of them (the token from
// Config.Token goes with it as Authorization: Bearer, and in the first
// hello as on the other transports), and waits, within
// Config.DialTimeout, for ICE, DTLS and the channel to open. Writes are
// split between frames to fit the server's max-message-size.
//
// ICE servers (STUN, TURN) are Config.ICEServers or, when empty, those the
// server lists in GET /v1/info (webrtc.iceServers); none are needed when
// the client reaches the server's addresses directly (the same host or
// network, or a server with a public address). Host candidates use IP
// addresses, loopback included, never mDNS names.
//
// The server closes a session with an error frame naming the close code
// ("slow_consumer"...), then closes the peer connection: the client reports
// it as the *CloseError of that code and reconnects or stops exactly as
// after a WebSocket close. A peer connection that fails or closes without
// it is a broken connection: the client reconnects with backoff and
// recovers. An offer refused with 401 (400, 413) is the *wire.Error of its
// body and also the *CloseError 4001 (4009, 1009) a WebSocket session
// would have closed with, so the client does not try again; other
// refusals (403, 503...) are retried like failed dials. Close closes the
// peer connection; every goroutine of pion's ends with it.
//
// # Datagram subscriptions
//
// Over WebTransport, Subscribe(ctx, topic, handler, Datagram()) asks for
// the topic's messages as QUIC datagrams (over WebRTC, as messages of the
// datagram channel): a lost packet is not resent, so the newest value
// never waits behind an older one. The handler gets seqs
// that only grow ("never older than what you have": late or repeated
// datagrams are dropped), with gaps, without EventGap, without recovery
// after a reconnection (the subscription goes on from the head), and
// without exactly-once. Use it for values where only the latest matters.
//
// # Presence
//
// A topic may also say who is in it (protocol 1.1, where the server's
// namespace enables it; elsewhere the server answers bad_request). A
// subscription's Enter makes the client's connection a member, with a JSON
// info of at most 1 KiB, until Leave, Unsubscribe or Close. A subscription
// made with the Presence option gets the topic's EventJoin, EventUpdate (a
// member entered again with a new info) and EventLeave through
// Config.OnEvent, each with its Member (client, connection, info), and
// Client.Presence lists the members:
//
//	room, err := c.Subscribe(ctx, "room.1", handler, sdk.Presence())
//	...
//	err = room.Enter(ctx, map[string]string{"name": "ada"})
//	p, err := c.Presence(ctx, "room.1") // p.Count, p.Members
//
// Presence is the server's soft state: a connection's end leaves every
// topic it entered. After a reconnection the client subscribes again and
// enters again, with the same info, and other members may see it leave and
// join again. Presence events are not recovered: a client that needs the
// exact list after a reconnection asks Client.Presence again once
// OnEvent got the topic's EventSubscribed.
//
// # Latest-value subscriptions
//
// Subscribe(ctx, topic, handler, Latest()) asks the server to conflate: when
// the client falls behind, only the newest undelivered message of the topic
// waits for it, so a dashboard gets fresh values and is never closed as a
// slow consumer for that topic's volume. Over every transport it is
// reliable and ordered (seqs only grow), with gaps and without EventGap for
// them; a reconnection recovers with Since as usual.
package sdk
