// Package nemesis tests a topicast cluster under injected faults, in the
// manner of Jepsen: a workload of publishers and subscribers runs against
// three to five node processes while a nemesis kills, stops, pauses and
// partitions them, and a checker then judges everything the clients saw.
//
// # Running it
//
// It needs root (a private network namespace, nftables rules, node
// processes under their own uids), unshare, ip and nft (apt-get install
// nftables), redis-server and etcd (Debian's etcd-server). Without root or
// those programs the nemesis tests skip, or fail when CI is set; the
// checker's unit tests run anyway.
//
//	go test -v -run TestNemesisShort ./test/nemesis/      # three fixed schedules, 3 to 4 minutes
//	scripts/nemesis.sh --cycles 100 --seed 42 [--mode memory] [--membership etcd] [--nodes 5]
//	go test -v -run TestRecheck ./test/nemesis/ -nemesis.recheck /tmp/topicast-nemesis-.../history.jsonl
//
// TestMain builds cmd/topicast once (or takes TOPICAST_NEMESIS_BINARY)
// and runs the test binary again under "unshare --net --pid --fork
// --kill-child", so its rules touch nothing outside and every process it
// starts dies with it. A failed run writes its history (JSON lines), its
// report and every process's log under TOPICAST_NEMESIS_OUT (default
// os.TempDir()) and logs the path. -nemesis.faults none runs a control
// with no fault at all.
//
// # The cluster
//
// Node i listens on its own loopback address (n1 127.0.0.11, n2
// 127.0.0.12, ...): HTTP on :8080, cluster on :7000 (and :7001 for the
// static membership's health checks), and runs as uid 2001+i. Redis
// (append-only file, fsync always) listens on 127.0.0.2:6379, etcd on
// 127.0.0.3:2379. Membership is static (--peers) or etcd; topic history
// is in memory or in Redis. Loopback connections all come from 127.0.0.1,
// so the partition rules tell nodes apart by the sending socket's uid
// (meta skuid) and by a connection mark set from it when a node opens a
// connection; clients, Redis and etcd are never cut. TestNetworkFaults
// checks these rules with helper processes.
//
// # The faults
//
// kill -9 and restart (at once, before the others notice, or past failure
// detection); SIGTERM, wait, restart; SIGSTOP past failure
// detection, SIGCONT; one node cut from the others; a minority from the
// majority; a bridge (two halves that only one node sees); random packet
// loss between nodes; Redis killed (and restarted from its AOF) or
// paused; etcd killed or paused. Each cycle injects one, holds it past
// failure detection, heals it and lets the cluster settle; the seed
// (math/rand/v2) picks the victims, the durations and, in the long run,
// the kinds.
//
// # The workload
//
// Publishers send about -nemesis.rate messages per second over ten
// topics; each message's data carries a unique id and its send time. Most
// go by POST /v1/publish with the id as idempotency key, retried on the
// other nodes for up to 10 s; some without key, and some as pub frames on
// a WebSocket, once. Each publish ends acknowledged (epoch, seq), failed
// (a definite refusal) or indeterminate. Subscribers, all subscribed
// before the first publish, are raw WebSocket clients (recording every
// frame, duplicates included, reconnecting with since: to the same node
// once after a broken connection, else to the next, and back to their
// home node now and then, and at once when it comes back, as a load
// balancer would) and Go SDK clients (exercising the SDK's own recovery).
//
// # The guarantees checked
//
//   - conflicting: one (topic, epoch, seq) with two different messages;
//   - lost: an acknowledged message a subscriber should have received and
//     never did: its stream was in that epoch below the seq and later at
//     or past it (or ended below the epoch's head) with no reset or
//     recovered:false in between; with Redis, every message of its topics;
//     lost-unacked: the same for a numbered message no publisher saw
//     acknowledged;
//   - duplicated: a subscriber received one (topic, epoch, seq) twice, or
//     one message was numbered twice (without Redis, once per epoch is
//     allowed: idempotency keys die with the topic);
//   - reordered: within an epoch, a seq lower than one received before;
//   - silent-discontinuity: a seq jump or an epoch change nobody announced;
//   - unexpected: a failed publish, or one never sent, delivered;
//   - non-converged: a subscriber not at its topic's head at the end;
//   - reset-with-redis: any reset or recovered:false with Redis;
//   - diverged: nodes answering different heads for a topic at the end
//     (answers between the head and the head after a late publish are a
//     head that moved while the nodes were asked, not a divergence).
//
// Announced discontinuities (allowed without Redis), messages delivered
// long after their publish ended, and epochs of one topic acknowledged at
// the same time are reported, not judged. The report also gives, per kind
// of fault, the time from the injection to the next message on each
// subscriber of the affected nodes.
//
// The checker (Check, Report) is pure: it judges a History, in memory or
// read back from a file. The harness's methods run on the test goroutine;
// the recorder and the node states are goroutine-safe.
package nemesis
