package loadbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"text/tabwriter"
)

// Report is the outcome of a run. Counts are totals over all subscribers;
// latencies are in milliseconds, from the time a message was due to be
// published to its delivery.
type Report struct {
	// Procs is the number of load-generator processes whose subscribers
	// the report sums up.
	Procs int `json:"procs"`
	// Conns is the number of subscribers that connected and subscribed.
	Conns int `json:"conns"`
	// ConnectErrors is the number of subscribers that did not.
	ConnectErrors int `json:"connect_errors"`
	// ConnectSeconds is the time to connect and subscribe everyone, in
	// every process, from the start of the first process's connect phase.
	ConnectSeconds float64 `json:"connect_seconds"`
	// Disconnects is the number of subscribers that stopped receiving
	// before the end: closed by the server (4008 slow consumer, ...), a
	// read error, or an error frame ending the subscription.
	Disconnects int `json:"disconnects"`
	// Topics is the number of topics published to.
	Topics int `json:"topics"`

	// Published is the number of publishes answered with a seq.
	Published int64 `json:"published"`
	// PublishErrors is the number of publishes that failed. The server may
	// still have delivered some of them (a timeout after the publish), so
	// Lost can be negative when this is not zero.
	PublishErrors int64 `json:"publish_errors"`
	// Unsent is the number of messages due within the publish phase that
	// were never sent because the publishers fell behind by more than the
	// drain time.
	Unsent int64 `json:"unsent"`
	// PublishedPerSec is Published over the publish phase.
	PublishedPerSec float64 `json:"published_per_sec"`

	// Expected is Published times the subscribers of each message's topic.
	Expected int64 `json:"expected"`
	// Delivered is the number of deliveries, duplicates excluded.
	Delivered int64 `json:"delivered"`
	// Lost is Expected - Delivered.
	Lost int64 `json:"lost"`
	// Gaps is the number of seqs, between a subscriber's head at sub time
	// and the last seq published to its topic, that it never received.
	Gaps int64 `json:"gaps"`
	// Duplicates is the number of deliveries of a seq already delivered.
	Duplicates int64 `json:"duplicates"`
	// OutOfOrder is the number of deliveries that came after a higher seq.
	OutOfOrder int64 `json:"out_of_order"`
	// Resets is the number of reset frames (a topic lost continuity).
	Resets int64 `json:"resets"`
	// BadFrames is the number of msg frames the bench could not account:
	// without a seq, or before the sub reply.
	BadFrames int64 `json:"bad_frames"`

	// DeliveriesPerSec is Delivered over Seconds.
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	// Seconds is the publish phase plus the time from its end to the last
	// delivery.
	Seconds float64 `json:"seconds"`

	// P50 to Max are delivery latency percentiles in milliseconds, each
	// within 1% of the exact value (Max is exact).
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`

	// Nodes has the subscribers, deliveries, CPU and memory of each node,
	// in the order of Config.URLs.
	Nodes []NodeReport `json:"nodes,omitempty"`

	// Errors are the first distinct failure messages, with their counts.
	Errors []ErrorCount `json:"errors,omitempty"`

	// Latency holds every delivery latency, for plots (Buckets).
	Latency *Histogram `json:"-"`
	// Timeline has the publish and delivery rates over the run, about one
	// point a second from the start of the publish phase to the end of the
	// drain, for plots.
	Timeline []TimelinePoint `json:"timeline,omitempty"`
}

// ErrorCount is one distinct failure message and how often it happened.
type ErrorCount struct {
	Message string `json:"message"`
	Count   int64  `json:"count"`
}

// OK reports whether the run kept every invariant: nothing lost, no gap,
// duplicate or reorder, no failed connection or publish.
func (r *Report) OK() bool {
	return r.Lost == 0 && r.Gaps == 0 && r.Duplicates == 0 && r.OutOfOrder == 0 &&
		r.ConnectErrors == 0 && r.Disconnects == 0 && r.PublishErrors == 0 &&
		r.Unsent == 0 && r.Resets == 0 && r.BadFrames == 0
}

// WriteText writes the report as a small table for people. Write errors are
// left to w, which is a terminal or a file the caller checks.
func (r *Report) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	d := strconv.FormatInt
	fmt.Fprintf(tw, "conns\t%d\t%d connect errors, %d disconnects, %.1fs to connect, %d procs\n",
		r.Conns, r.ConnectErrors, r.Disconnects, r.ConnectSeconds, r.Procs)
	fmt.Fprintf(tw, "topics\t%d\t\n", r.Topics)
	fmt.Fprintf(tw, "published\t%s\t%.0f/s, %d errors, %d unsent\n", d(r.Published, 10), r.PublishedPerSec, r.PublishErrors, r.Unsent)
	fmt.Fprintf(tw, "expected\t%s\t\n", d(r.Expected, 10))
	fmt.Fprintf(tw, "delivered\t%s\t%.0f/s over %.1fs\n", d(r.Delivered, 10), r.DeliveriesPerSec, r.Seconds)
	fmt.Fprintf(tw, "lost\t%s\t\n", d(r.Lost, 10))
	fmt.Fprintf(tw, "gaps\t%s\t\n", d(r.Gaps, 10))
	fmt.Fprintf(tw, "duplicates\t%s\t\n", d(r.Duplicates, 10))
	fmt.Fprintf(tw, "out of order\t%s\t\n", d(r.OutOfOrder, 10))
	if r.Resets > 0 || r.BadFrames > 0 {
		fmt.Fprintf(tw, "resets\t%d\t%d bad frames\n", r.Resets, r.BadFrames)
	}
	verdict := "OK"
	if !r.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(tw, "invariants\t%s\t\n", verdict)
	tw.Flush()
	fmt.Fprintf(w, "latency ms    p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n", r.P50, r.P90, r.P99, r.P999, r.Max)
	for _, n := range r.Nodes {
		n.writeText(w)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error         %d× %s\n", e.Count, e.Message)
	}
}

// maxErrorKinds bounds the distinct messages an errorLog keeps: with
// thousands of connections failing the same way, a few examples say it all.
const maxErrorKinds = 10

// errorLog keeps the first distinct failure messages with their counts, and
// logs each one the first time it is seen. It is goroutine-safe.
type errorLog struct {
	log *slog.Logger

	mu sync.Mutex
	// Guarded by mu.
	counts map[string]int64
	order  []string
	other  int64
}

func newErrorLog(log *slog.Logger) *errorLog {
	return &errorLog{log: log, counts: make(map[string]int64)}
}

// add records err, whose message starts with what failed.
func (l *errorLog) add(err error) { l.addCount(err.Error(), 1) }

// addCount records n failures with message msg.
func (l *errorLog) addCount(msg string, n int64) {
	l.mu.Lock()
	had, seen := l.counts[msg]
	first := false
	switch {
	case seen:
		l.counts[msg] = had + n
	case len(l.order) < maxErrorKinds:
		l.counts[msg] = n
		l.order = append(l.order, msg)
		first = true
	default:
		l.other += n
	}
	l.mu.Unlock()
	if first {
		l.log.LogAttrs(context.Background(), slog.LevelWarn, "bench failure", slog.String("err", msg))
	}
}

func (l *errorLog) list() []ErrorCount {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]ErrorCount, 0, len(l.order)+1)
	for _, m := range l.order {
		out = append(out, ErrorCount{Message: m, Count: l.counts[m]})
	}
	if l.other > 0 {
		out = append(out, ErrorCount{Message: "other errors", Count: l.other})
	}
	return out
}
