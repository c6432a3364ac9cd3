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
//	wsHandler := websocket.NewHandler(websocket.Config{Accept: n.Accept})
//
// Topic actors are cluster grains of kind "topic", one per topic name in the
// whole cluster. A single node is a cluster of one, so adding members changes
// the membership provider, not the code path.
//
// Node's methods are goroutine-safe.
package cluster
