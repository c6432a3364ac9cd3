// Package cluster runs a topicast node: the protoactor actor system, the
// cluster it belongs to (a cluster of one by default), the topic grain kind,
// the node's relays and connection actors, and the node's API that the
// transports and HTTP handlers call: Accept a session, Publish, History,
// Info.
//
// # Usage
//
//	n, err := cluster.New(cluster.Config{Name: "n1"})
//	if err != nil { ... }
//	if err := n.Start(ctx); err != nil { ... }
//	defer n.Close(ctx)
//	wsHandler := websocket.NewHandler(websocket.Config{Accept: n.Accept, NodeState: n.NodeState()})
//
// A node owns a transport.NodeState (NodeState): its actors count in its
// Metrics, and the adapters that feed Accept write their sessions through it,
// so nodes in one process share no backlog, writers or counters.
//
// Topic actors are cluster grains of kind "topic", one per topic name in the
// whole cluster. A single node is a cluster of one, so adding members changes
// the membership provider, not the code path.
//
// # Membership and placement
//
// Config.Peers selects protoactor's automanaged provider (static seeds; each
// node serves its health endpoint on cluster port + 1), Config.Etcd the etcd
// provider, neither a cluster of one. Placement is the package's own
// protoactor IdentityLookup: rendezvous hashing with xxhash over the
// members' addresses, a PID cache, and one activator actor per member that
// spawns the topics the member owns, refuses the others, and stops those it
// no longer owns after a membership change. Config.Redis keeps topic state
// in Redis (package redisstore) so that a moved topic goes on gaplessly.
// docs/cluster.md describes failures and guarantees.
//
// Node's methods are goroutine-safe.
package cluster
