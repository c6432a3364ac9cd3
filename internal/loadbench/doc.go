// Package loadbench is the engine of `topicast bench`, the project's own load
// tool: it drives a topicast server with real WebSocket, WebTransport or
// WebRTC subscribers and HTTP publishers, measures delivery latency, and checks the protocol's delivery
// guarantees while doing so.
//
// # What a run does
//
// Run connects Conns subscribers (subscriber i subscribes to topic
// "bench.<i%Topics>"), publishes Rate messages a second round-robin over the
// topics with POST /v1/publish for Duration, waits up to Drain for the last
// deliveries, and closes every connection:
//
//	rep, err := loadbench.Run(ctx, loadbench.Config{
//		URL:      "ws://127.0.0.1:8080/ws",
//		Conns:    10000,
//		Topics:   100,
//		Rate:     5000,
//		Duration: 30 * time.Second,
//		Progress: os.Stderr,
//	})
//	if err != nil {
//		return err
//	}
//	rep.WriteText(os.Stdout)
//
// # Clusters and several processes
//
// URLs names several nodes of one cluster: subscriber i connects to
// URLs[i%len(URLs)] and publisher goroutine k posts to the HTTP base of
// URLs[k%len(URLs)]. A topic's messages have one seq order cluster-wide,
// so every check holds as against one node.
//
// With Procs N, Run keeps the first of N equal shares of the subscribers
// (see Share) and starts N-1 workers with StartWorker; `topicast bench`
// starts its own binary with the hidden flag -worker offset:conns, which
// calls RunWorker. Subscriber numbers, and with them topics, nodes and
// source addresses, are global, so the processes never collide. The
// processes talk JSON lines: a worker reports progress every 200 ms and
// "ready" once connected; Run publishes only once every worker is ready,
// then sends each the publishes answered by topic, drains until every
// process has its deliveries, and sends "close"; the worker closes its
// connections and sends its result (counts, checks, latency histogram),
// which Run merges into one Report. A worker ends when its stdin ends, so
// none outlives Run's process. One process holds at most
// MaxConnsPerProcess subscribers (one file descriptor each).
//
// Run samples each node's CPU time and RSS (process_cpu_seconds_total and
// process_resident_memory_bytes of GET /metrics, or /proc/<pid> with
// NodePIDs) before connecting, once everyone is connected and when the
// drain ends, and reports per node CPU per delivery and RSS per
// connection (Report.Nodes), and the time to connect everyone.
//
// # Transports
//
// Subscribers use WebSocket by default. With Transport
// TransportWebTransport each one has a UDP socket, QUIC connection and
// WebTransport session of its own, and one bidirectional stream on which it
// writes its sub and reads NDJSON frames (answering pings with pongs). The
// endpoint and the certificate to pin default to what GET /v1/info reports
// (webtransport.url and certHash). With TransportWebRTC each one has a pion
// peer connection of its own (one DTLS certificate shared by all; against
// a server on loopback, loopback candidates only, so one UDP socket each)
// and the "topicast" data channel, offered to POST /v1/webrtc with every
// candidate; the endpoint and the ICE servers default to what
// GET /v1/info reports (webrtc.url and iceServers). Every transport shares
// the parsing, the checks and the latency accounting.
//
// # Latency
//
// Every message carries the time it was due to be published ({"t":<Unix
// nanoseconds>,"p":"xx…"}), not the time it was sent: when the server slows
// the publishers down, the delay shows in the latency instead of thinning the
// sample (no coordinated omission). Publishers and subscribers share one
// clock, this process's. Latencies go into a log-linear Histogram with
// buckets about 1% wide, whose Buckets feed plots.
//
// # Invariants
//
// Each subscriber checks its stream against the protocol: after the head its
// sub reply named, every seq exactly once and in order. It counts gaps
// (including the seqs after its last delivery up to the last one published),
// duplicates and late arrivals; the run compares the deliveries with the
// publishes answered times the subscribers of each topic. Report.OK sums it
// up. The check assumes the bench is the only publisher on bench.* topics.
//
// # Resources
//
// Each connection costs one goroutine and a few KiB of buffers. Against a
// server on 127.0.0.1, connections are spread over source addresses
// 127.0.0.2 and up (Config.SourceAddrs), because one source address has only
// about 28,000 ephemeral ports. A WebTransport subscriber costs a UDP
// socket (one file descriptor) and a handful of quic-go goroutines; a
// WebRTC one a UDP socket and some twenty of pion's goroutines (ICE, DTLS,
// SCTP, timers), and about as many on the server.
//
// Run is goroutine-safe and may run concurrently with itself; it joins every
// goroutine it starts before it returns.
package loadbench
