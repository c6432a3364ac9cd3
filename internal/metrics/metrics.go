package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/topicast/topicast/internal/tlsreload"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// Node is what Metrics needs to know of the cluster node.
type Node interface {
	// Name returns the node's name.
	Name() string
	// Members returns the number of cluster members the node sees.
	Members() int
	// Relays returns the number of topics with subscribers on the node.
	Relays() int
}

// Config configures Metrics.
type Config struct {
	// Node is the node measured; required.
	Node Node
	// NodeState is the node's transport state (cluster.Node.NodeState):
	// its counters and backlog are read at each scrape and Sample, and
	// ConnOpened and ConnClosed count in it. Nil means one of its own, in
	// which only ConnOpened and ConnClosed count.
	NodeState *transport.NodeState
	// Version is reported in topicast_node_info.
	Version string
	// TLS is the certificate of the listeners (tlsreload.Reloader); nil
	// (no --tls-cert) leaves the topicast_tls_* metrics out.
	TLS TLSSource
}

// TLSSource is what Metrics reads of a reloaded certificate.
type TLSSource interface {
	Stats() tlsreload.Stats
}

// Metrics collects a node's metrics. It is goroutine-safe.
type Metrics struct {
	cfg Config
	reg *prometheus.Registry

	mu sync.Mutex
	// Guarded by mu: closes by code and reason, and their total with code
	// 4008 (slow consumer).
	closes     map[closeKey]uint64
	slowCloses uint64
}

type closeKey struct{ code, reason string }

// New returns the metrics of cfg.Node on a registry of their own, with the Go
// runtime and process collectors.
func New(cfg Config) *Metrics {
	if cfg.NodeState == nil {
		cfg.NodeState = new(transport.NodeState)
	}
	m := &Metrics{cfg: cfg, reg: prometheus.NewRegistry(), closes: make(map[closeKey]uint64)}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collector{m},
	)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry returns the registry, for tests and for more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ConnOpened counts a new session. Call it once per session, and ConnClosed
// once when it ends.
func (m *Metrics) ConnOpened(info *transport.SessionInfo) {
	m.cfg.NodeState.Metrics.ConnOpened(info.Transport)
}

// ConnClosed counts the end of a session with its cause (a
// transport.Disconnect, a connection error, or nil). It returns the labels it
// counted the close under, for logs.
func (m *Metrics) ConnClosed(info *transport.SessionInfo, cause error) (code, reason string) {
	m.cfg.NodeState.Metrics.ConnClosed(info.Transport)
	code, reason = CloseLabels(cause)
	m.mu.Lock()
	m.closes[closeKey{code, reason}]++
	if code == slowCode {
		m.slowCloses++
	}
	m.mu.Unlock()
	return code, reason
}

// SlowConsumerCloses returns how many sessions closed with 4008.
func (m *Metrics) SlowConsumerCloses() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.slowCloses
}

var slowCode = strconv.Itoa(int(wire.CloseSlowConsumer))

// knownCodes are the close codes that get their own label value; any other
// code a client sends counts as "other", so labels stay few.
var knownCodes = map[wire.DisconnectCode]string{}

func init() {
	for _, c := range []wire.DisconnectCode{wire.CloseNormal, wire.CloseGoingAway, wire.CloseTooLarge,
		wire.CloseUnauthorized, wire.CloseSlowConsumer, wire.CloseProtocolError, wire.CloseRateLimited} {
		knownCodes[c] = strconv.Itoa(int(c))
	}
}

// reasons names the server's own disconnects.
var reasons = map[transport.Disconnect]string{
	transport.DisconnectShutdown:  "shutdown",
	transport.DisconnectSilent:    "silent",
	transport.DisconnectSlow:      "queue_full",
	transport.DisconnectWriteSlow: "write_timeout",
	transport.DisconnectTooLarge:  "too_large",
	transport.DisconnectProtocol:  "protocol",
}

// CloseLabels returns the code and reason labels of a session's end. code is
// the close code, "1006" for a connection that ended without one, or "other".
// reason is one of shutdown, silent, queue_full, write_timeout, too_large,
// protocol, server (another server-side close: token, limits), client (the
// client closed), network (the connection broke) and ended (a request-bound
// session finished: long polling).
func CloseLabels(cause error) (code, reason string) {
	if cause == nil {
		return knownCodes[wire.CloseNormal], "ended"
	}
	d, ok := transport.AsDisconnect(cause)
	if !ok || d.Code == 0 {
		return "1006", "network"
	}
	code, ok = knownCodes[d.Code]
	if !ok {
		code = "other"
	}
	if r, ok := reasons[d]; ok {
		return code, r
	}
	if d.Reason == "" {
		return code, "client"
	}
	return code, "server"
}

// collector reads the counters at scrape time.
type collector struct{ m *Metrics }

var (
	descConns      = prometheus.NewDesc("topicast_connections", "Client sessions open on this node, by transport.", []string{"transport"}, nil)
	descOpened     = prometheus.NewDesc("topicast_connections_opened_total", "Client sessions opened, by transport.", []string{"transport"}, nil)
	descClosed     = prometheus.NewDesc("topicast_connections_closed_total", "Client sessions closed, by close code (1006: none) and reason.", []string{"code", "reason"}, nil)
	descSubs       = prometheus.NewDesc("topicast_subscriptions", "Subscriptions on this node, by the transport of their session.", []string{"transport"}, nil)
	descTopics     = prometheus.NewDesc("topicast_topics_active", "Topic actors running on this node.", nil, nil)
	descSubTopics  = prometheus.NewDesc("topicast_topics_subscribed", "Topics with subscribers on this node.", nil, nil)
	descPublishes  = prometheus.NewDesc("topicast_publishes_total", "Messages numbered by this node's topic actors (idempotent repeats excluded).", nil, nil)
	descDeliver    = prometheus.NewDesc("topicast_deliveries_total", "Message frames written to clients (WebSocket, WebTransport streams, SSE).", nil, nil)
	descConflated  = prometheus.NewDesc("topicast_conflated_total", "Messages of latest-value subscriptions replaced by a newer one before they were written.", nil, nil)
	descWritten    = prometheus.NewDesc("topicast_written_bytes_total", "Bytes of the frames written to clients (WebSocket, WebTransport streams, SSE), framing not included.", nil, nil)
	descDeltaSave  = prometheus.NewDesc("topicast_delta_saved_bytes_total", "Bytes that delta subscriptions were spared: full frame lengths less their delta frames'.", nil, nil)
	descLatency    = prometheus.NewDesc("topicast_delivery_latency_seconds", "Time from a message's publish to its write to a client, sampled on one written batch in eight per connection (millisecond resolution; recoveries excluded).", nil, nil)
	descPubLat     = prometheus.NewDesc("topicast_publish_latency_seconds", "Time a successful publish call takes on this node (HTTP, clients' pub, sys:stats; a batch counts once): routing, the topic actor, the store's append.", nil, nil)
	descPubErrors  = prometheus.NewDesc("topicast_publish_errors_total", "Failed publish calls on this node, by error code (as on the wire: unavailable, rate_limited, ...).", []string{"code"}, nil)
	descStoreErrs  = prometheus.NewDesc("topicast_store_errors_total", "Failures of the history store (Redis unreachable, timeouts); fencing by a newer activation excluded.", nil, nil)
	descQueue      = prometheus.NewDesc("topicast_outbound_queue_bytes", "Bytes queued for clients and not yet written.", nil, nil)
	descHistory    = prometheus.NewDesc("topicast_history_messages", "Messages the topic actors of this node retain for recovery.", nil, nil)
	descRelayDeliv = prometheus.NewDesc("topicast_relay_deliveries_total", "Delivery messages this node's topic actors sent to relays, one per published batch and node with subscribers, by scope: local (this node's relay) or remote (another node's).", []string{"scope"}, nil)
	descPresRemote = prometheus.NewDesc("topicast_presence_remote_messages_total", "Presence messages (changes, events, snapshots) this node's relays and topic actors sent to other nodes.", nil, nil)
	descPresence   = prometheus.NewDesc("topicast_presence_members", "Presence members (a connection entered in a topic) of this node's connections.", nil, nil)
	descMembers    = prometheus.NewDesc("topicast_cluster_members", "Cluster members this node sees.", nil, nil)
	descInfo       = prometheus.NewDesc("topicast_node_info", "The node's name and version (always 1).", []string{"node", "version"}, nil)
	descTLSReload  = prometheus.NewDesc("topicast_tls_reloads_total", "Loads of the --tls-cert/--tls-key pair after the first (SIGHUP or the files changed), by result: ok, or error (the previous certificate is still served; the log says why).", []string{"result"}, nil)
	descTLSExpiry  = prometheus.NewDesc("topicast_tls_certificate_expiry_timestamp_seconds", "End of validity of the certificate served on the HTTP and WebTransport listeners, in seconds since 1970.", nil, nil)
)

// exportedBoundsUs are the latency buckets given to Prometheus, in
// microseconds: a subset of transport.LatencyBounds.
var exportedBoundsUs = []int64{500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
	1_000_000, 2_500_000, 5_000_000, 10_000_000}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConns, descOpened, descClosed, descSubs, descTopics, descSubTopics,
		descPublishes, descDeliver, descConflated, descWritten, descDeltaSave, descLatency, descPubLat, descPubErrors, descStoreErrs,
		descQueue, descHistory, descPresence, descPresRemote, descRelayDeliv, descMembers, descInfo, descTLSReload, descTLSExpiry} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.m.cfg.NodeState
	pm := &st.Metrics
	conns, opened, subs := pm.Conns(), pm.Opened(), pm.Subscriptions()
	for i, name := range transport.TransportNames {
		if name == "other" && conns[i] == 0 && opened[i] == 0 && subs[i] == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(conns[i]), name)
		ch <- prometheus.MustNewConstMetric(descOpened, prometheus.CounterValue, float64(opened[i]), name)
		ch <- prometheus.MustNewConstMetric(descSubs, prometheus.GaugeValue, float64(subs[i]), name)
	}
	c.m.mu.Lock()
	for k, n := range c.m.closes {
		ch <- prometheus.MustNewConstMetric(descClosed, prometheus.CounterValue, float64(n), k.code, k.reason)
	}
	c.m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descTopics, prometheus.GaugeValue, float64(pm.TopicsActive.Load()))
	ch <- prometheus.MustNewConstMetric(descSubTopics, prometheus.GaugeValue, float64(c.m.cfg.Node.Relays()))
	ch <- prometheus.MustNewConstMetric(descPublishes, prometheus.CounterValue, float64(pm.Publishes.Load()))
	ch <- prometheus.MustNewConstMetric(descDeliver, prometheus.CounterValue, float64(pm.Deliveries.Load()))
	ch <- prometheus.MustNewConstMetric(descConflated, prometheus.CounterValue, float64(pm.Conflated.Load()))
	ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(pm.BytesWritten.Load()))
	ch <- prometheus.MustNewConstMetric(descDeltaSave, prometheus.CounterValue, float64(pm.DeltaBytesSaved.Load()))
	ch <- latencyMetric(descLatency, &pm.Latency)
	ch <- latencyMetric(descPubLat, &pm.PublishLatency)
	// Every code is exported, zeros too, so that rate() and alerts over
	// them see a series from the first scrape on.
	for code, n := range pm.PublishErrors() {
		if code == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descPubErrors, prometheus.CounterValue, float64(n), wire.ErrorCode(code).String())
	}
	ch <- prometheus.MustNewConstMetric(descStoreErrs, prometheus.CounterValue, float64(pm.StoreErrors.Load()))
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(st.PendingBytes()))
	ch <- prometheus.MustNewConstMetric(descHistory, prometheus.GaugeValue, float64(pm.HistoryMessages.Load()))
	ch <- prometheus.MustNewConstMetric(descPresence, prometheus.GaugeValue, float64(pm.PresenceMembers.Load()))
	ch <- prometheus.MustNewConstMetric(descPresRemote, prometheus.CounterValue, float64(pm.PresenceRemoteSends.Load()))
	ch <- prometheus.MustNewConstMetric(descRelayDeliv, prometheus.CounterValue, float64(pm.LocalDeliveries.Load()), "local")
	ch <- prometheus.MustNewConstMetric(descRelayDeliv, prometheus.CounterValue, float64(pm.RemoteDeliveries.Load()), "remote")
	ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(c.m.cfg.Node.Members()))
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, c.m.cfg.Node.Name(), c.m.cfg.Version)
	if c.m.cfg.TLS != nil {
		st := c.m.cfg.TLS.Stats()
		ch <- prometheus.MustNewConstMetric(descTLSReload, prometheus.CounterValue, float64(st.Reloads), "ok")
		ch <- prometheus.MustNewConstMetric(descTLSReload, prometheus.CounterValue, float64(st.Failures), "error")
		ch <- prometheus.MustNewConstMetric(descTLSExpiry, prometheus.GaugeValue, float64(st.NotAfter.Unix()))
	}
}

// latencyMetric folds the fine latency buckets of h into exportedBoundsUs, as
// the histogram desc.
func latencyMetric(desc *prometheus.Desc, h *transport.LatencyHistogram) prometheus.Metric {
	var s transport.LatencySnapshot
	h.Snapshot(&s)
	bounds := transport.LatencyBounds()
	buckets := make(map[float64]uint64, len(exportedBoundsUs))
	var cum, total uint64
	j := 0
	for i, n := range s.Counts {
		total += n
		cum += n
		if i < len(bounds) && j < len(exportedBoundsUs) && bounds[i] == time.Duration(exportedBoundsUs[j])*time.Microsecond {
			buckets[float64(exportedBoundsUs[j])/1e6] = cum
			j++
		}
	}
	return prometheus.MustNewConstHistogram(desc, total, float64(s.SumMicros)/1e6, buckets)
}

// Sample is the state of the counters at one time.
type Sample struct {
	Time          time.Time
	Publishes     uint64
	Deliveries    uint64
	Latency       transport.LatencySnapshot
	Conns         map[string]int64
	Subscriptions map[string]int64
	Topics        int64
	QueueBytes    int64
	History       int64
	SlowCloses    uint64
	Conflated     uint64
	DeltaSaved    uint64
	Members       int
}

// Sample reads the counters now.
func (m *Metrics) Sample() Sample {
	st := m.cfg.NodeState
	pm := &st.Metrics
	s := Sample{
		Time:          time.Now(),
		Publishes:     pm.Publishes.Load(),
		Deliveries:    pm.Deliveries.Load(),
		Conns:         make(map[string]int64, len(transport.TransportNames)),
		Subscriptions: make(map[string]int64, len(transport.TransportNames)),
		Topics:        pm.TopicsActive.Load(),
		QueueBytes:    st.PendingBytes(),
		History:       pm.HistoryMessages.Load(),
		SlowCloses:    m.SlowConsumerCloses(),
		Conflated:     pm.Conflated.Load(),
		DeltaSaved:    pm.DeltaBytesSaved.Load(),
		Members:       m.cfg.Node.Members(),
	}
	pm.Latency.Snapshot(&s.Latency)
	conns, subs := pm.Conns(), pm.Subscriptions()
	for i, name := range transport.TransportNames {
		if name == "other" && conns[i] == 0 && subs[i] == 0 {
			continue
		}
		s.Conns[name], s.Subscriptions[name] = conns[i], subs[i]
	}
	return s
}
