// Package metrics exposes a node's counters: Prometheus text on GET /metrics,
// and the per-second Stats that the server publishes to the sys:stats topic.
//
// The hot paths never touch this package. The outbound writers and the actors
// add to plain atomics in the node's transport.NodeState (its Metrics and
// backlog); a Metrics reads the state it is given when Prometheus scrapes and
// when the server samples once a second. Only per-connection events (a
// session opened, closed with a code) come through here, from the server's
// wiring.
//
// # Usage
//
//	m := metrics.New(metrics.Config{Node: node, NodeState: node.NodeState(), Version: cluster.Version})
//	mux.Handle("GET /metrics", m.Handler())
//	w := metrics.NewWindow(time.Minute)
//	w.Add(m.Sample()) // once a second
//	stats := w.Stats(node.Name())
//
// Metrics is goroutine-safe. A Window is not: one goroutine owns it.
//
// # Metric names
//
//	topicast_connections{transport}             gauge    open sessions
//	topicast_connections_opened_total{transport} counter
//	topicast_connections_closed_total{code,reason} counter closes by close code
//	topicast_subscriptions{transport}           gauge    subscriptions on this node
//	topicast_topics_active                      gauge    topic actors on this node
//	topicast_topics_subscribed                  gauge    topics with subscribers on this node
//	topicast_publishes_total                    counter  messages numbered by this node's topics
//	topicast_deliveries_total                   counter  msg frames written to clients
//	topicast_conflated_total                    counter  latest-value msgs replaced before their write
//	topicast_delta_saved_bytes_total            counter  bytes delta subscriptions were spared
//	topicast_written_bytes_total                counter  bytes of frames written to clients
//	topicast_delivery_latency_seconds           histogram publish ("ts") to write, 1 batch in 8 sampled
//	topicast_publish_latency_seconds            histogram a successful publish call (a batch once)
//	topicast_publish_errors_total{code}         counter  failed publish calls by wire error code
//	topicast_store_errors_total                 counter  history store (Redis) failures
//	topicast_outbound_queue_bytes               gauge    bytes queued for clients, not yet written
//	topicast_history_messages                   gauge    messages retained for recovery
//	topicast_presence_members                   gauge    presence members of the node's connections
//	topicast_presence_remote_messages_total     counter  presence messages sent to other nodes
//	topicast_relay_deliveries_total{scope}      counter  delivery messages from topics to relays (local, remote)
//	topicast_cluster_members                    gauge    members this node sees
//	topicast_node_info{node,version}            gauge    always 1
//	topicast_tls_reloads_total{result}          counter  certificate reloads, ok or error (--tls-cert only)
//	topicast_tls_certificate_expiry_timestamp_seconds
//	                                            gauge    the served certificate's NotAfter (--tls-cert only)
//
// plus the Go runtime (go_*) and process (process_*) collectors, which
// measure the whole process. The topicast_* counters count per node: several
// nodes in one process (tests) each have their own.
package metrics
