// Package actors holds topicast's actors: the topic actor (one per topic in
// the whole cluster; it orders, numbers, keeps and fans out the topic's
// messages), the node relay actor (one per topic per node with subscribers;
// it hands each delivery to the node's subscribed connections), and the
// connection actor (one per client session, whatever its transport).
//
// # Message flow
//
//	publisher ──PublishRequest──▶ topic ──Delivery──▶ relay (per node) ──Session.WriteMany──▶ sessions
//	conn ──sub──▶ relay ──JoinRequest──▶ topic ──JoinResponse──▶ relay ──ok + missed frames──▶ session
//
// The topic actor encodes each msg frame once; relays and sessions share those
// bytes. A relay writes deliveries straight into each session's bounded queue
// (transport.Session is goroutine-safe and never blocks) rather than through
// the connection actors' mailboxes: a message to 10,000 subscribers wakes no
// mailbox, and a slow client is closed by its own queue (4008), not waited for.
//
// The topic sends a JoinResponse to a relay after every Delivery up to the
// head it reports and before any later one, on the same path, so a relay that
// adds a connection when the response arrives gives it the missed messages
// and then the live ones with no gap and no duplicate.
//
// A relay's subscribers share one position, (epoch, last seq). When the topic
// actor stops (the relay watches it), moves after a topology change
// (TopologyChanged), or sends a delivery that does not follow the position,
// the relay joins again with that position (a rejoin, tied to no
// connection). The answer brings every subscriber to the head: with the
// missed messages when the topic still has them (a topic re-activated from a
// durable HistoryStore keeps its epoch), else with a reset frame. Never a
// silent gap, never a duplicate.
//
// # Durable state
//
// A topic actor keeps its epoch, seq, history and idempotency keys through
// a HistoryStore: MemoryStore (the default) keeps them in the actor only;
// cluster/redisstore keeps them in Redis, written before each batch is
// delivered and answered, and fences out stale activations.
//
// # Concurrency
//
// Actors keep their state private and never block. A topic actor whose store
// lives in the process runs its mailbox on the goroutine that sends to it
// (protoactor's synchronized dispatcher, one message at a time still), so a
// publish is numbered and handed to the relays on the publisher's goroutine;
// callers on this member wait with a LocalCall rather than a future. Relays
// (the registry of a node's relay actors) is goroutine-safe. Messages that
// may cross nodes are the protobuf types of package actorpb.
package actors
