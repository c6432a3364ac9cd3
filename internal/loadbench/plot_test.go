package loadbench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireSVG checks that b is well-formed XML with an svg root, and returns
// how many elements of each name it holds.
func requireSVG(t *testing.T, b []byte) map[string]int {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	counts := make(map[string]int)
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "%s", b)
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			counts[se.Name.Local]++
		}
	}
	require.Equal(t, "svg", root)
	return counts
}

func TestWritePlot(t *testing.T) {
	h := new(Histogram)
	for i := range 10000 {
		h.Record(time.Duration(200+i%3000) * time.Microsecond)
	}
	h.Record(40 * time.Millisecond)
	r := &Report{Conns: 100, Topics: 2, Published: 500, Expected: 10001, Delivered: 10001, Seconds: 5,
		PublishedPerSec: 100, DeliveriesPerSec: 2000, Latency: h,
		P50: durationMs(h.Quantile(.5)), P99: durationMs(h.Quantile(.99)), P999: durationMs(h.Quantile(.999)), Max: durationMs(h.Max())}
	for i := 1; i <= 5; i++ {
		r.Timeline = append(r.Timeline, TimelinePoint{Seconds: float64(i), PublishedPerSec: 100, DeliveriesPerSec: 2000 + float64(i)})
	}
	var buf bytes.Buffer
	require.NoError(t, r.WritePlot(&buf))
	counts := requireSVG(t, buf.Bytes())
	require.Equal(t, 2, counts["polyline"], "deliveries and publishes over time")
	require.Greater(t, counts["rect"], 20, "histogram bars")
	s := buf.String()
	for _, want := range []string{"p50 ", "p99 ", "max 40", "invariants OK", "100 conns, 2 topics"} {
		require.Contains(t, s, want)
	}

	// A failed run without deliveries still plots, and says so.
	empty := &Report{Conns: 1, Lost: 3, Latency: new(Histogram)}
	buf.Reset()
	require.NoError(t, empty.WritePlot(&buf))
	requireSVG(t, buf.Bytes())
	require.Contains(t, buf.String(), "no deliveries")
	require.Contains(t, buf.String(), "no timeline")
	require.Contains(t, buf.String(), "invariants FAILED")
}

func TestPlotScales(t *testing.T) {
	require.Equal(t, 1.0, niceCeil(0))
	require.Equal(t, 5.0, niceCeil(3.2))
	require.Equal(t, 50000.0, niceCeil(25001))
	require.Equal(t, 30000.0, niceMax(26250))
	require.Equal(t, 6.0, niceMax(6))
	require.Equal(t, 0.2, niceLogFloor(0.29))
	require.Equal(t, []float64{0, 10000, 20000, 30000}, linearTicks(30000))
	require.Equal(t, []float64{0.1, 0.2, 0.5, 1, 2, 5, 10}, logTicks(0.1, 10))
	require.Equal(t, "12.5k", compact(12500))
	require.Equal(t, "3.2M", compact(3.2e6))
	require.Equal(t, "950", compact(950))
	require.Equal(t, time.Second, timelineEvery(time.Minute))
	require.Equal(t, 100*time.Millisecond, timelineEvery(time.Second))
	require.False(t, strings.Contains(trimFloat(0.5), "0.50"))
}
