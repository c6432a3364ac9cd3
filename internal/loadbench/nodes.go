package loadbench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// nodeSampleTimeout bounds one sample of every node.
	nodeSampleTimeout = 5 * time.Second
	// clockTicks is USER_HZ, the unit of the CPU times of /proc/<pid>/stat:
	// 100 on every Linux this runs on.
	clockTicks = 100
	// Metrics read from a node's GET /metrics (Prometheus' process
	// collector, which topicast registers).
	metricCPU = "process_cpu_seconds_total"
	metricRSS = "process_resident_memory_bytes"
)

// NodeReport is what one node (one of Config.URLs) did during a run. Its
// CPU and RSS come from the node's GET /metrics, or from /proc/<pid> with
// Config.NodePIDs, sampled before the connect phase, once everyone is
// connected, and when the drain ended. URLs that name the same node report
// it once each.
type NodeReport struct {
	URL string `json:"url"`
	// Conns and Delivered are the subscribers connected to the node and
	// their deliveries.
	Conns     int   `json:"conns"`
	Delivered int64 `json:"delivered"`
	// ConnectCPUSeconds is the node's CPU time during the connect phase.
	ConnectCPUSeconds float64 `json:"connect_cpu_seconds"`
	// CPUSeconds is the node's CPU time from the start of publishing to
	// the end of the drain, and CPUPerDeliveryUs that over Delivered, in
	// microseconds: what the node spent per delivery to its subscribers,
	// publishes, cluster traffic and idle work included.
	CPUSeconds       float64 `json:"cpu_seconds"`
	CPUPerDeliveryUs float64 `json:"cpu_per_delivery_us"`
	// RSS of the node's process before the connect phase, once everyone
	// was connected, and at the end, in bytes.
	RSSBefore    int64 `json:"rss_before_bytes"`
	RSSConnected int64 `json:"rss_connected_bytes"`
	RSSEnd       int64 `json:"rss_end_bytes"`
	// RSSPerConn is (RSSConnected - RSSBefore) / Conns: the memory a
	// connection costs the node, in bytes.
	RSSPerConn float64 `json:"rss_per_conn_bytes"`
	// Error says why a sample failed; the figures it needed are zero.
	Error string `json:"error,omitempty"`
}

func (n *NodeReport) writeText(w io.Writer) {
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	fmt.Fprintf(w, "node          %s  conns %d  delivered %d  cpu %.2fs connecting, %.2fs publishing (%.2f µs/delivery)  rss %.0f→%.0f→%.0f MiB (%.1f KiB/conn)\n",
		n.URL, n.Conns, n.Delivered, n.ConnectCPUSeconds, n.CPUSeconds, n.CPUPerDeliveryUs,
		mb(n.RSSBefore), mb(n.RSSConnected), mb(n.RSSEnd), n.RSSPerConn/1024)
	if n.Error != "" {
		fmt.Fprintf(w, "node error    %s: %s\n", n.URL, n.Error)
	}
}

// nodeSample is one node's CPU time and RSS at one moment.
type nodeSample struct {
	cpu float64 // seconds
	rss int64   // bytes
	err error
}

// nodeSampler reads the nodes' CPU and RSS.
type nodeSampler struct {
	client *http.Client
	bases  []string // HTTP base of each node
	pids   []int    // nil, or the pid of each node
	apiKey string
}

func newNodeSampler(cfg *Config) *nodeSampler {
	return &nodeSampler{
		client: &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}, Timeout: nodeSampleTimeout},
		bases:  cfg.nodeBases,
		pids:   cfg.NodePIDs,
		apiKey: cfg.APIKey,
	}
}

// sample reads every node at once.
func (s *nodeSampler) sample(ctx context.Context) []nodeSample {
	out := make([]nodeSample, len(s.bases))
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			if len(s.pids) > 0 {
				out[i] = readProc(s.pids[i])
				return
			}
			out[i] = s.readMetrics(ctx, s.bases[i])
		})
	}
	wg.Wait()
	return out
}

func (s *nodeSampler) close() { s.client.CloseIdleConnections() }

// readMetrics reads the process collector's CPU and RSS from GET /metrics.
func (s *nodeSampler) readMetrics(ctx context.Context, base string) nodeSample {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/metrics", nil)
	if err != nil {
		return nodeSample{err: err}
	}
	if s.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.apiKey)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nodeSample{err: fmt.Errorf("metrics: %w", err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nodeSample{err: fmt.Errorf("metrics: %s", resp.Status)}
	}
	return parseProcessMetrics(resp.Body)
}

// parseProcessMetrics finds the process collector's CPU and RSS in the
// Prometheus text format.
func parseProcessMetrics(r io.Reader) nodeSample {
	var out nodeSample
	var haveCPU, haveRSS bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || (name != metricCPU && name != metricRSS) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		if name == metricCPU {
			out.cpu, haveCPU = v, true
		} else {
			out.rss, haveRSS = int64(v), true
		}
	}
	switch {
	case sc.Err() != nil:
		out.err = fmt.Errorf("metrics: %w", sc.Err())
	case !haveCPU || !haveRSS:
		out.err = errors.New("metrics: no " + metricCPU + " or " + metricRSS + " (give the node pids instead)")
	}
	return out
}

// readProc reads a local process's CPU time from /proc/<pid>/stat and its
// RSS from /proc/<pid>/status.
func readProc(pid int) nodeSample {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nodeSample{err: err}
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'. utime and stime are fields 14 and 15.
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return nodeSample{err: fmt.Errorf("/proc/%d/stat: too short", pid)}
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return nodeSample{err: fmt.Errorf("/proc/%d/stat: %w", pid, err)}
	}
	out := nodeSample{cpu: float64(utime+stime) / clockTicks}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nodeSample{err: err}
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return nodeSample{err: fmt.Errorf("/proc/%d/status: %w", pid, err)}
			}
			out.rss = kb << 10
			return out
		}
	}
	return nodeSample{err: fmt.Errorf("/proc/%d/status: no VmRSS", pid)}
}

// nodeReports combines the nodes' counts with their samples: before the
// connect phase, connected, end (nil when the phase did not happen).
func nodeReports(urls []string, counts []nodeTally, samples [3][]nodeSample) []NodeReport {
	out := make([]NodeReport, len(urls))
	for i, u := range urls {
		n := &out[i]
		n.URL = u
		if i < len(counts) {
			n.Conns, n.Delivered = counts[i].Conns, counts[i].Delivered
		}
		var s [3]*nodeSample
		for k := range samples {
			if i < len(samples[k]) {
				s[k] = &samples[k][i]
				if err := s[k].err; err != nil && n.Error == "" {
					n.Error = err.Error()
				}
			}
		}
		ok := func(k int) bool { return s[k] != nil && s[k].err == nil }
		if ok(0) {
			n.RSSBefore = s[0].rss
		}
		if ok(1) {
			n.RSSConnected = s[1].rss
		}
		if ok(2) {
			n.RSSEnd = s[2].rss
		}
		if ok(0) && ok(1) {
			n.ConnectCPUSeconds = s[1].cpu - s[0].cpu
			if n.Conns > 0 {
				n.RSSPerConn = float64(s[1].rss-s[0].rss) / float64(n.Conns)
			}
		}
		if ok(1) && ok(2) {
			n.CPUSeconds = s[2].cpu - s[1].cpu
			if n.Delivered > 0 {
				n.CPUPerDeliveryUs = n.CPUSeconds * 1e6 / float64(n.Delivered)
			}
		}
	}
	return out
}
