package test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/loadbench"
	"github.com/topicast/topicast/internal/metrics"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// scrape reads GET /metrics and parses it.
func scrape(t *testing.T, srv *server.Server) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := httpClient.Get("http://" + srv.Addr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// metricValue returns the value of the series of name whose labels include
// labels (name=value pairs); 0 when there is none. Histograms give their count.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestMetrics scrapes /metrics before and after known traffic and checks
// the counters against it: connections and subscriptions by transport,
// publishes, deliveries and their latency, history, a slow consumer's close
// by code; and that the default log level logs connections, not messages.
// Counters are per node and start at zero; the test compares differences all
// the same.
func TestMetrics(t *testing.T) {
	var logs syncBuffer
	srv := startServer(t, server.Config{
		StatsInterval: -1, // no sys:stats traffic in the counts
		MaxQueue:      64 << 10,
		PublishRate:   -1,
		Logger:        slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	ctx := context.Background()
	before := scrape(t, srv)
	diff := func(after map[string]*dto.MetricFamily, name string, labels ...string) float64 {
		return metricValue(after, name, labels...) - metricValue(before, name, labels...)
	}
	require.Equal(t, 1.0, metricValue(before, "topicast_cluster_members"))
	require.Equal(t, 1.0, metricValue(before, "topicast_node_info", "node", srv.Node().Name()))
	require.NotNil(t, before["go_goroutines"], "Go runtime collector")
	require.NotNil(t, before["process_cpu_seconds_total"], "process collector")
	logsBefore := strings.Count(logs.String(), "\n")

	// Three subscribers: two on m.a, one on m.b.
	a1 := newSubscriber(t, ctx, wsURL(srv), "m.a")
	a2 := newSubscriber(t, ctx, wsURL(srv), "m.a")
	b1 := newSubscriber(t, ctx, wsURL(srv), "m.b")
	for _, s := range []*subscriber{a1, a2, b1} {
		go s.run()
	}
	mid := scrape(t, srv)
	require.Equal(t, 3.0, diff(mid, "topicast_connections", "transport", "ws"))
	require.Equal(t, 3.0, diff(mid, "topicast_connections_opened_total", "transport", "ws"))
	require.Equal(t, 3.0, diff(mid, "topicast_subscriptions", "transport", "ws"))

	const na, nb = 50, 30
	for i := range na {
		publish(t, srv, "m.a", fmt.Sprintf(`{"i":%d}`, i))
	}
	var items []string
	for i := range nb {
		items = append(items, fmt.Sprintf(`{"topic":"m.b","data":{"i":%d}}`, i))
	}
	status, body := post(t, srv, `{"messages":[`+strings.Join(items, ",")+`]}`)
	require.Equal(t, http.StatusOK, status, "%s", body)
	testutil.Eventually(t, 10*time.Second, func() error {
		if a1.count("m.a") != na || a2.count("m.a") != na || b1.count("m.b") != nb {
			return fmt.Errorf("received %d, %d, %d", a1.count("m.a"), a2.count("m.a"), b1.count("m.b"))
		}
		return nil
	})
	// The writers count after their write returns: let them finish.
	const deliveries = 2*na + nb
	var after map[string]*dto.MetricFamily
	testutil.Eventually(t, 5*time.Second, func() error {
		after = scrape(t, srv)
		if d := diff(after, "topicast_deliveries_total"); d != deliveries {
			return fmt.Errorf("deliveries %v, want %d", d, deliveries)
		}
		return nil
	})
	require.Equal(t, float64(na+nb), diff(after, "topicast_publishes_total"))
	// Latency is sampled: one written batch in eight per session.
	observed := diff(after, "topicast_delivery_latency_seconds")
	require.Greater(t, observed, 0.0, "latency observations")
	require.LessOrEqual(t, observed, float64(deliveries), "latency observations")
	require.Equal(t, float64(na+nb), diff(after, "topicast_history_messages"))
	require.GreaterOrEqual(t, metricValue(after, "topicast_topics_active"), 2.0)
	require.GreaterOrEqual(t, metricValue(after, "topicast_topics_subscribed"), 2.0)
	require.Equal(t, 0.0, metricValue(after, "topicast_outbound_queue_bytes"))
	// Loopback deliveries take well under a second.
	lat := after["topicast_delivery_latency_seconds"].Metric[0].Histogram
	var under1s uint64
	for _, b := range lat.Bucket {
		if b.GetUpperBound() == 1 {
			under1s = b.GetCumulativeCount()
		}
	}
	require.Equal(t, lat.GetSampleCount(), under1s, "latencies under 1 s")

	// A client that reads too slowly is closed with 4008 and counted. (It
	// reads, slowly: the close frame must reach it, behind the write in
	// flight.)
	slow, err := testutil.DialWS(ctx, wsURL(srv), 128<<10)
	require.NoError(t, err)
	t.Cleanup(func() { _ = slow.Close() })
	ok, err := slow.Subscribe("m.slow", 1, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", ok.Op, ok.Raw)
	go slow.Read(func([]byte) { time.Sleep(100 * time.Microsecond) })
	pad := strings.Repeat("x", 2000)
	items = items[:0]
	for range 100 {
		items = append(items, fmt.Sprintf(`{"topic":"m.slow","data":%q}`, pad))
	}
	batch := `{"messages":[` + strings.Join(items, ",") + `]}`
	deadline := time.Now().Add(30 * time.Second)
	for batches := 1; ; batches++ {
		status, body := post(t, srv, batch)
		require.Equal(t, http.StatusOK, status, "%s", body)
		if diff(scrape(t, srv), "topicast_connections_closed_total", "code", "4008") == 1 {
			break
		}
		if !time.Now().Before(deadline) {
			m := scrape(t, srv)
			t.Fatalf("the slow client was not closed after %d batches: conns %d, queued %v, deliveries %v", batches, srv.Node().Conns(),
				metricValue(m, "topicast_outbound_queue_bytes"), diff(m, "topicast_deliveries_total"))
		}
	}
	select {
	case <-slow.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the slow client got no close")
	}
	require.Equal(t, wire.CloseSlowConsumer, slow.CloseCode, "reason %q err %v", slow.CloseReason, slow.Err)
	final := scrape(t, srv)
	require.Equal(t, 1.0, diff(final, "topicast_connections_closed_total", "code", "4008", "reason", "queue_full")+
		diff(final, "topicast_connections_closed_total", "code", "4008", "reason", "write_timeout"))

	// Abrupt closes count as 1006, and the gauges come back.
	for _, s := range []*subscriber{a1, a2, b1} {
		require.NoError(t, s.c.Close())
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		final = scrape(t, srv)
		if d := diff(final, "topicast_connections", "transport", "ws"); d != 0 {
			return fmt.Errorf("ws connections %v above the start", d)
		}
		if d := diff(final, "topicast_subscriptions", "transport", "ws"); d != 0 {
			return fmt.Errorf("ws subscriptions %v above the start", d)
		}
		return nil
	})
	require.Equal(t, 3.0, diff(final, "topicast_connections_closed_total", "code", "1006", "reason", "network"))

	// Logs at INFO: one line per connection opened and closed, none per
	// message (over 150 messages were published).
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")[logsBefore:]
	opened, closed := 0, 0
	for _, l := range lines {
		switch {
		case strings.Contains(l, `"msg":"connection opened"`):
			opened++
		case strings.Contains(l, `"msg":"connection closed"`):
			closed++
			require.Contains(t, l, `"code":`)
			require.Contains(t, l, `"reason":`)
		default:
			t.Errorf("unexpected log line at INFO: %s", l)
		}
	}
	require.Equal(t, 4, opened)
	require.Equal(t, 4, closed)
}

// TestMetricsStatsTopic: the node publishes its stats to sys:stats once a
// second, which clients may read but not write.
func TestMetricsStatsTopic(t *testing.T) {
	srv := startServer(t, server.Config{StatsInterval: 200 * time.Millisecond, Node: cluster.Config{Topic: actors.TopicConfig{
		Namespaces: actors.Namespaces{{Pattern: "stats.*", Presence: true}}}}})
	ctx := context.Background()
	c, err := testutil.DialWS(ctx, wsURL(srv), 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ok, err := c.Subscribe(server.StatsTopic, 1, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", ok.Op, ok.Raw)
	ok, err = c.Subscribe("stats.watched", 2, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", ok.Op, ok.Raw)
	publish(t, srv, "stats.watched", `{"n":1}`)
	require.NoError(t, c.Send(`{"op":"enter","id":3,"topic":"stats.watched"}`))
	ok, err = c.ReadUntil(func(f testutil.Frame) bool { return f.ID == 3 }, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", ok.Op, ok.Raw)

	stats := make(chan metrics.Stats, 100)
	go c.Read(func(f []byte) {
		fr := testutil.Decode(t, f)
		if fr.Op != "msg" || fr.Topic != server.StatsTopic {
			return
		}
		var st metrics.Stats
		if json.Unmarshal(fr.Data, &st) == nil {
			stats <- st
		}
	})
	deadline := time.After(10 * time.Second)
	for {
		var st metrics.Stats
		select {
		case st = <-stats:
		case <-deadline:
			t.Fatal("no sys:stats message listing stats.watched in 10 s")
		}
		require.Equal(t, srv.Node().Name(), st.Node)
		require.Equal(t, 1, st.Members)
		require.GreaterOrEqual(t, st.Connections["ws"], int64(1))
		require.InDelta(t, time.Now().UnixMilli(), st.Time, 5000)
		var watched *metrics.TopicStats
		for i := range st.TopicList {
			if st.TopicList[i].Topic == "stats.watched" {
				watched = &st.TopicList[i]
			}
		}
		if watched != nil && watched.Seq == 1 && st.Deliveries > 0 {
			require.Equal(t, 1, watched.Subscribers)
			require.Equal(t, 1, watched.Members, "the presence members of the topic on this node")
			require.NotNil(t, st.LatencyP99)
			break
		}
	}

	status, body := post(t, srv, `{"topic":"sys:stats","data":{"fake":true}}`)
	require.Equal(t, http.StatusForbidden, status, "%s", body)
}

// TestMetricsBenchPlot runs the load bench against a server: /metrics counts
// exactly the deliveries the bench checked, and the bench's plot is an SVG
// with its timeline.
func TestMetricsBenchPlot(t *testing.T) {
	srv := startServer(t, server.Config{StatsInterval: -1, PublishRate: -1})
	before := scrape(t, srv)
	rep, err := loadbench.Run(context.Background(), loadbench.Config{
		URL: wsURL(srv), Conns: 40, Topics: 4, Rate: 200, Size: 64, Duration: 2 * time.Second, Drain: 5 * time.Second,
	})
	require.NoError(t, err)
	require.True(t, rep.OK(), "%+v", rep)
	require.NotEmpty(t, rep.Timeline)
	after := scrape(t, srv)
	require.Equal(t, float64(rep.Published), metricValue(after, "topicast_publishes_total")-metricValue(before, "topicast_publishes_total"))
	require.Equal(t, float64(rep.Delivered), metricValue(after, "topicast_deliveries_total")-metricValue(before, "topicast_deliveries_total"))

	path := filepath.Join(t.TempDir(), "bench.svg")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, rep.WritePlot(f))
	require.NoError(t, f.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(b, []byte("<svg")), "%.100s", b)
	require.Contains(t, string(b), "<polyline")
	require.NoError(t, xml.Unmarshal(b, new(struct{})), "well-formed XML")
}
