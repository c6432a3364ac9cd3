package metrics

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/tlsreload"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

type fakeNode struct{}

func (fakeNode) Name() string { return "n1" }
func (fakeNode) Members() int { return 3 }
func (fakeNode) Relays() int  { return 2 }

func TestCloseLabels(t *testing.T) {
	for _, c := range []struct {
		cause        error
		code, reason string
	}{
		{nil, "1000", "ended"},
		{errors.New("read: connection reset"), "1006", "network"},
		{transport.DisconnectShutdown, "1001", "shutdown"},
		{transport.DisconnectSilent, "1001", "silent"},
		{transport.DisconnectSlow, "4008", "queue_full"},
		{transport.DisconnectWriteSlow, "4008", "write_timeout"},
		{transport.DisconnectTooLarge, "1009", "too_large"},
		{transport.DisconnectNormal, "1000", "client"},
		{transport.Disconnect{Code: 3333}, "other", "client"},
		{transport.Disconnect{Code: wire.CloseUnauthorized, Reason: "token expired"}, "4001", "server"},
	} {
		code, reason := CloseLabels(c.cause)
		require.Equal(t, c.code+"/"+c.reason, code+"/"+reason, "%v", c.cause)
	}
}

func TestExportedBoundsAreBuckets(t *testing.T) {
	bounds := make(map[time.Duration]bool)
	for _, b := range transport.LatencyBounds() {
		bounds[b] = true
	}
	for _, us := range exportedBoundsUs {
		require.True(t, bounds[time.Duration(us)*time.Microsecond], "%d us is not a bucket bound", us)
	}
}

func TestHandler(t *testing.T) {
	st := new(transport.NodeState)
	m := New(Config{Node: fakeNode{}, Version: "v9", NodeState: st})
	st.Metrics.PublishFailed(wire.CodeUnavailable)
	st.Metrics.PublishFailed(wire.ErrorCode(200)) // unknown: internal
	st.Metrics.PublishLatency.Observe(3*time.Millisecond, 1)
	st.Metrics.StoreErrors.Add(2)
	m.ConnOpened(&transport.SessionInfo{Transport: "ws"})
	m.ConnClosed(&transport.SessionInfo{Transport: "ws"}, transport.DisconnectSlow)
	require.Equal(t, uint64(1), m.SlowConsumerCloses())
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`topicast_cluster_members 3`,
		`topicast_topics_subscribed 2`,
		`topicast_node_info{node="n1",version="v9"} 1`,
		`topicast_connections_closed_total{code="4008",reason="queue_full"} 1`,
		`topicast_delivery_latency_seconds_bucket{le="0.0005"}`,
		`topicast_delivery_latency_seconds_bucket{le="+Inf"}`,
		`# TYPE topicast_deliveries_total counter`,
		`topicast_publish_errors_total{code="unavailable"} 1`,
		`topicast_publish_errors_total{code="internal"} 1`,
		`topicast_publish_errors_total{code="bad_request"} 0`,
		`topicast_publish_latency_seconds_bucket{le="0.0025"} 0`,
		`topicast_publish_latency_seconds_bucket{le="0.005"} 1`,
		`topicast_store_errors_total 2`,
		`go_goroutines`,
	} {
		require.Contains(t, body, want)
	}
	require.False(t, strings.Contains(body, `transport="other"`), "no series for an unused transport")
}

type fakeTLS struct{ st tlsreload.Stats }

func (f fakeTLS) Stats() tlsreload.Stats { return f.st }

// TestTLSMetrics checks the certificate's series: present with a reloaded
// certificate, absent without one.
func TestTLSMetrics(t *testing.T) {
	scrape := func(m *Metrics) string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	require.NotContains(t, scrape(New(Config{Node: fakeNode{}})), "topicast_tls_")
	body := scrape(New(Config{Node: fakeNode{}, TLS: fakeTLS{tlsreload.Stats{Reloads: 2, Failures: 1, NotAfter: time.Unix(1_800_000_000, 0)}}}))
	for _, want := range []string{
		`topicast_tls_reloads_total{result="ok"} 2`,
		`topicast_tls_reloads_total{result="error"} 1`,
		`topicast_tls_certificate_expiry_timestamp_seconds 1.8e+09`,
	} {
		require.Contains(t, body, want)
	}
}

func TestQuantile(t *testing.T) {
	var s transport.LatencySnapshot
	_, ok := Quantile(&s, 0.5)
	require.False(t, ok)
	// 100 values in (0, 250us], 100 in (1ms, 1.5ms].
	s.Counts[0] = 100
	s.Counts[4] = 100
	p50, ok := Quantile(&s, 0.5)
	require.True(t, ok)
	require.Equal(t, 250*time.Microsecond, p50)
	p99, _ := Quantile(&s, 0.99)
	require.InDelta(t, float64(1490*time.Microsecond), float64(p99), float64(10*time.Microsecond))
	s = transport.LatencySnapshot{}
	s.Counts[transport.NumLatencyBuckets-1] = 5
	p, _ := Quantile(&s, 0.99)
	require.Equal(t, 10*time.Second, p, "the unbounded bucket reports its lower bound")
}

func TestWindow(t *testing.T) {
	w := NewWindow(time.Minute)
	require.Equal(t, "n", w.Stats("n").Node)
	start := time.Unix(1_700_000_000, 0)
	for i := range 90 {
		s := Sample{Time: start.Add(time.Duration(i) * time.Second), Publishes: uint64(10 * i), Deliveries: uint64(100 * i),
			Conns: map[string]int64{"ws": 1}}
		if i >= 80 { // deliveries at 2 ms for the last 10 s only
			s.Latency.Counts[5] = uint64(100 * (i - 79))
		}
		w.Add(s)
	}
	require.Len(t, w.samples, 61, "a minute of samples and the one before")
	st := w.Stats("n")
	require.Equal(t, 10.0, st.PublishesPerSec)
	require.Equal(t, 100.0, st.DeliveriesPerSec)
	require.Equal(t, 60.0, st.LatencyWindow)
	require.NotNil(t, st.LatencyP50)
	require.InDelta(t, 1.75, *st.LatencyP50, 0.01)
	require.Equal(t, start.Add(89*time.Second).UnixMilli(), st.Time)
	require.Equal(t, int64(1), st.Connections["ws"])
	require.NotNil(t, st.TopicList)
}

// TestMetricsReadTheirNode gives two Metrics the states of two nodes: each
// reads and counts in its own.
func TestMetricsReadTheirNode(t *testing.T) {
	var st1, st2 transport.NodeState
	m1 := New(Config{Node: fakeNode{}, NodeState: &st1})
	m2 := New(Config{Node: fakeNode{}, NodeState: &st2})
	st1.Metrics.Publishes.Add(3)
	m1.ConnOpened(&transport.SessionInfo{Transport: "ws"})
	s1, s2 := m1.Sample(), m2.Sample()
	require.Equal(t, uint64(3), s1.Publishes)
	require.Equal(t, int64(1), s1.Conns["ws"])
	require.Zero(t, s2.Publishes)
	require.Zero(t, s2.Conns["ws"])
	require.Equal(t, int64(1), st1.Metrics.Conns()[0], "ConnOpened counts in the node's state")
	require.Zero(t, st2.Metrics.Conns()[0])
}
