package loadbench

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func TestHistogramJSONMerge(t *testing.T) {
	var a, b, direct Histogram
	for i := range 1000 {
		a.Record(time.Duration(i) * time.Microsecond)
		b.Record(time.Duration(i) * 3 * time.Millisecond)
		direct.Record(time.Duration(i) * time.Microsecond)
		direct.Record(time.Duration(i) * 3 * time.Millisecond)
	}
	var merged Histogram
	for _, h := range []*Histogram{&a, &b} {
		data, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		// Over the wire, as a worker's result carries it.
		if err := json.Unmarshal(data, &merged); err != nil {
			t.Fatal(err)
		}
	}
	if merged.Count() != 2000 || merged.Max() != direct.Max() {
		t.Fatalf("merged: count %d max %v, want 2000 and %v", merged.Count(), merged.Max(), direct.Max())
	}
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		if got, want := merged.Quantile(q), direct.Quantile(q); got != want {
			t.Errorf("Quantile(%v) = %v merged, %v recorded in one", q, got, want)
		}
	}
	var empty Histogram
	data, err := json.Marshal(&empty)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"max_ns":0,"buckets":[]}` {
		t.Errorf("empty histogram = %s", data)
	}
	if err := json.Unmarshal([]byte(`{"max_ns":1,"buckets":[[999999,1]]}`), &empty); err == nil {
		t.Error("a bucket out of range was accepted")
	}
}

func TestTallyAdd(t *testing.T) {
	h1, h2 := new(Histogram), new(Histogram)
	h1.Record(time.Millisecond)
	h2.Record(2 * time.Millisecond)
	h2.Record(3 * time.Millisecond)
	sum := &tally{Conns: 10, ConnectErrors: 1, Expected: 100, Delivered: 99, Gaps: 1, LastDelivery: 50,
		Nodes: []nodeTally{{5, 50}, {5, 49}}, Latency: h1}
	worker := &tally{Conns: 20, Disconnects: 2, Expected: 200, Delivered: 200, Duplicates: 3, OutOfOrder: 4,
		Resets: 5, BadFrames: 6, LastDelivery: 70, Nodes: []nodeTally{{10, 100}, {10, 100}},
		Errors: []ErrorCount{{"x", 2}}, Latency: h2}
	// Through JSON, as it comes from a worker.
	data, err := json.Marshal(worker)
	if err != nil {
		t.Fatal(err)
	}
	var got tally
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	sum.add(&got)
	want := tally{Conns: 30, ConnectErrors: 1, Disconnects: 2, Expected: 300, Delivered: 299, Gaps: 1,
		Duplicates: 3, OutOfOrder: 4, Resets: 5, BadFrames: 6, LastDelivery: 70}
	if sum.Conns != want.Conns || sum.ConnectErrors != want.ConnectErrors || sum.Disconnects != want.Disconnects ||
		sum.Expected != want.Expected || sum.Delivered != want.Delivered || sum.Gaps != want.Gaps ||
		sum.Duplicates != want.Duplicates || sum.OutOfOrder != want.OutOfOrder || sum.Resets != want.Resets ||
		sum.BadFrames != want.BadFrames || sum.LastDelivery != want.LastDelivery {
		t.Fatalf("sum = %+v, want %+v", sum, want)
	}
	if sum.Nodes[0] != (nodeTally{15, 150}) || sum.Nodes[1] != (nodeTally{15, 149}) {
		t.Errorf("nodes = %+v", sum.Nodes)
	}
	if sum.Latency.Count() != 3 || sum.Latency.Max() != 3*time.Millisecond {
		t.Errorf("latency: count %d max %v", sum.Latency.Count(), sum.Latency.Max())
	}
}

func TestMergeRemotes(t *testing.T) {
	cfg := Config{Topics: 2, Conns: 30, Procs: 3}.withDefaults()
	r := newRun(&cfg, Share{0, 10})
	r.pub.published[0].Store(4)
	r.pub.published[1].Store(6)
	ready := make(chan struct{})
	close(ready)
	r.remotes = []*remote{
		{num: 1, share: Share{10, 10}, ready: ready, result: &tally{Conns: 10, Expected: 50, Delivered: 50,
			Nodes: []nodeTally{{10, 50}}, Errors: []ErrorCount{{"connect: refused", 2}}, Latency: new(Histogram)}},
		// Died after connecting 8 of its 10: they count as disconnected,
		// what they were due as lost.
		{num: 2, share: Share{20, 10}, ready: ready, readyMsg: workerReady{Conns: 8, ConnectErrors: 2, SubsPerTopic: []int64{4, 4}}},
	}
	t0 := &tally{Nodes: make([]nodeTally, 1), Latency: new(Histogram)}
	r.mergeRemotes(t0)
	if t0.Conns != 18 || t0.Disconnects != 8 || t0.ConnectErrors != 2 || t0.Expected != 50+4*4+6*4 || t0.Delivered != 50 {
		t.Fatalf("merged = %+v", t0)
	}
	errs := r.errs.list()
	if len(errs) != 2 || errs[0] != (ErrorCount{"worker 1: connect: refused", 2}) ||
		!strings.HasPrefix(errs[1].Message, "worker 2: ended without a result") {
		t.Fatalf("errors = %+v", errs)
	}
}

func TestSplitConnsAndShares(t *testing.T) {
	for _, c := range []struct{ conns, procs int }{{200, 2}, {100000, 6}, {7, 3}, {5, 1}} {
		shares := splitConns(c.conns, c.procs)
		next := 0
		for _, s := range shares {
			if s.Offset != next || s.Conns < c.conns/c.procs || s.Conns > c.conns/c.procs+1 {
				t.Fatalf("splitConns(%d, %d) = %v", c.conns, c.procs, shares)
			}
			next += s.Conns
			p, err := ParseShare(s.String())
			if err != nil || p != s {
				t.Fatalf("ParseShare(%q) = %v, %v", s.String(), p, err)
			}
		}
		if next != c.conns {
			t.Fatalf("splitConns(%d, %d) = %v", c.conns, c.procs, shares)
		}
	}
	for _, bad := range []string{"", "1", "a:b", "-1:5", "0:0"} {
		if _, err := ParseShare(bad); err == nil {
			t.Errorf("ParseShare(%q) accepted", bad)
		}
	}
}

func TestConfigSeveralURLs(t *testing.T) {
	c := Config{URLs: []string{"ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws", "ws://127.0.0.1:3/ws"}, Token: "k"}.withDefaults()
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.URL != c.URLs[0] || c.PublishURL != "http://127.0.0.1:1" || len(c.publishURLs) != 3 || c.publishURLs[2] != "http://127.0.0.1:3" {
		t.Fatalf("urls: %q, %q, %q", c.URL, c.PublishURL, c.publishURLs)
	}
	if got := c.subscribeURL(4); got != "ws://127.0.0.1:2/ws?token=k" {
		t.Errorf("subscribeURL(4) = %q", got)
	}
	p := newPublisher(&c, []string{"t"}, newErrorLog(c.Logger))
	if len(p.endpoints) != 3 || p.endpoints[1] != "http://127.0.0.1:2/v1/publish" {
		t.Errorf("publisher endpoints %q", p.endpoints)
	}
	// An explicit publish URL takes every publish.
	c = Config{URLs: c.URLs, PublishURL: "http://127.0.0.1:9"}.withDefaults()
	if len(c.publishURLs) != 1 || c.publishURLs[0] != "http://127.0.0.1:9" || len(c.nodeBases) != 3 {
		t.Errorf("with -publish-url: %q, nodes %q", c.publishURLs, c.nodeBases)
	}
	// The single URL still works alone.
	c = Config{URL: "ws://127.0.0.1:5/ws"}.withDefaults()
	if len(c.URLs) != 1 || c.URLs[0] != "ws://127.0.0.1:5/ws" || c.PublishURL != "http://127.0.0.1:5" {
		t.Errorf("single url: %q %q", c.URLs, c.PublishURL)
	}
	for name, bad := range map[string]Config{
		"wt with several":  {URLs: []string{"ws://a/ws", "ws://b/ws"}, Transport: TransportWebTransport, WTURL: "https://a/wt"},
		"bad second":       {URLs: []string{"ws://a/ws", "http://b/ws"}},
		"pids":             {URLs: []string{"ws://a/ws", "ws://b/ws"}, NodePIDs: []int{1}},
		"procs no starter": {Procs: 2},
		"too many a proc":  {Conns: 40000, Procs: 2, StartWorker: startNothing},
	} {
		if err := bad.withDefaults().validate(); err == nil {
			t.Errorf("%s: validates", name)
		} else if name == "too many a proc" && !strings.Contains(err.Error(), "use -procs 3") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := (Config{Conns: 40000, Procs: 3, StartWorker: startNothing}).withDefaults().validate(); err != nil {
		t.Errorf("40000 over 3 procs: %v", err)
	}
}

func TestSourceAddrOverProcesses(t *testing.T) {
	// Subscriber indices are global, so two processes never put more than
	// SourceAddrs connections on one address.
	c := Config{URLs: []string{"ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws"}, SourceAddrs: 5000}.withDefaults()
	per := map[string]int{}
	for _, s := range splitConns(30000, 4) {
		for i := s.Offset; i < s.Offset+s.Conns; i++ {
			per[c.sourceAddr(i).IP.String()]++
		}
	}
	if len(per) != 6 {
		t.Fatalf("addresses %v", per)
	}
	for a, n := range per {
		if n != 5000 {
			t.Errorf("%s holds %d connections", a, n)
		}
	}
}

func startNothing(context.Context, Share) (*Worker, error) { return nil, os.ErrInvalid }

func TestParseProcessMetrics(t *testing.T) {
	s := parseProcessMetrics(strings.NewReader(`# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
process_resident_memory_bytes 1.2345e+08
process_resident_memory_bytes_other 7
`))
	if s.err != nil || s.cpu != 12.5 || s.rss != 123450000 {
		t.Fatalf("sample = %+v", s)
	}
	if s := parseProcessMetrics(strings.NewReader("go_goroutines 5\n")); s.err == nil {
		t.Fatal("no process metrics, no error")
	}
	p := readProc(os.Getpid())
	if p.err != nil || p.rss <= 0 || p.cpu < 0 {
		t.Fatalf("readProc(self) = %+v", p)
	}
}

func TestNodeReports(t *testing.T) {
	samples := [3][]nodeSample{
		{{cpu: 1, rss: 100 << 20}},
		{{cpu: 3, rss: 150 << 20}},
		{{cpu: 7, rss: 151 << 20}},
	}
	got := nodeReports([]string{"ws://a/ws"}, []nodeTally{{Conns: 1000, Delivered: 2_000_000}}, samples)
	n := got[0]
	if n.ConnectCPUSeconds != 2 || n.CPUSeconds != 4 || n.CPUPerDeliveryUs != 2 || n.RSSPerConn != float64(50<<20)/1000 ||
		n.RSSEnd != 151<<20 || n.Error != "" {
		t.Fatalf("node = %+v", n)
	}
	samples[2] = []nodeSample{{err: os.ErrNotExist}}
	if n := nodeReports([]string{"ws://a/ws"}, nil, samples)[0]; n.CPUSeconds != 0 || n.Error == "" || n.RSSPerConn != 0 {
		t.Fatalf("node with a failed end sample = %+v", n)
	}
}
