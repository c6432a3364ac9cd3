package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the topicast binary built once by TestMain (without -race: the
// nodes are real processes, and protoactor races at topology changes).
var binary string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "topicast-clustertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "topicast")
	cmd := exec.Command("go", "build", "-o", binary, "github.com/topicast/topicast/cmd/topicast")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build topicast:", err)
		return 1
	}
	return m.Run()
}

// need skips the test when a program is missing, or fails it under CI.
func need(t *testing.T, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		msg := fmt.Sprintf("%s is not installed (apt-get install %s); scripts/test.sh installs it", program,
			map[string]string{"etcd": "etcd-server", "redis-server": "redis-server"}[program])
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// freePort returns a TCP port on loopback that is free, and whose next
// port is free too when pair is set (a cluster port and its health port).
// It picks below the kernel's ephemeral range: a port from that range (what
// ":0" hands out) can be taken, between this check and the node's bind, as
// the source port of any outgoing connection, and the tests open hundreds.
func freePort(t *testing.T, pair bool) int {
	t.Helper()
	low := ephemeralLow()
	for range 500 {
		port := 10000 + rand.IntN(low-10001)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		if pair {
			ln2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
			if err != nil {
				ln.Close()
				continue
			}
			ln2.Close()
		}
		ln.Close()
		return port
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 10002 {
				return n
			}
		}
	}
	return 32768
}

// logSink keeps a process's output for the test log, trimmed.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < 4000 {
		l.lines = append(l.lines, line)
	}
}

// contains reports whether a line holds s.
func (l *logSink) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

func (l *logSink) dump(t *testing.T, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		t.Logf("[%s] %s", name, line)
	}
}

// startProcess runs a program until the test ends; its output goes to log.
func startProcess(t *testing.T, log *logSink, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			log.add(sc.Text())
		}
	}()
	return cmd
}

func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill() // the test is over with it either way
	_ = cmd.Wait()
}

// startRedis runs a throwaway redis-server and returns its URL.
func startRedis(t *testing.T) string { return startRedisServer(t).url() }

// redisServer is a redis-server that a test may stop and start again on
// the same port.
type redisServer struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
	log  *logSink
}

func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	r := &redisServer{t: t, port: freePort(t, false), dir: t.TempDir(), log: &logSink{}}
	r.start()
	t.Cleanup(func() { stopProcess(r.cmd) })
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = startProcess(r.t, r.log, need(r.t, "redis-server"), "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	waitTCP(r.t, fmt.Sprintf("127.0.0.1:%d", r.port), 10*time.Second)
}

// stop kills redis-server (with it goes everything it held: no AOF here).
func (r *redisServer) stop() {
	stopProcess(r.cmd)
	r.cmd = nil
}

// startEtcd runs a throwaway one-member etcd and returns its client URL.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin := need(t, "etcd")
	client, peer := freePort(t, false), freePort(t, false)
	url := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	log := &logSink{}
	cmd := startProcess(t, log, bin, "--data-dir", t.TempDir(), "--name", "test",
		"--listen-client-urls", url, "--advertise-client-urls", url,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test="+peerURL, "--log-level", "error")
	t.Cleanup(func() { stopProcess(cmd) })
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", client), 20*time.Second)
	return url
}

func waitTCP(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s does not answer after %v", addr, d)
}

// node is one topicast process.
type node struct {
	name        string
	http        string // host:port
	clusterAddr string
	args        []string
	cmd         *exec.Cmd
	log         *logSink
}

func (n *node) wsURL() string { return "ws://" + n.http + "/ws" }

// cluster is a set of topicast processes.
type cluster struct {
	t     *testing.T
	nodes []*node
}

type clusterOpts struct {
	nodes  int
	static bool   // --peers with every node's address
	etcd   string // --etcd URL
	redis  string // --redis URL
	extra  []string
}

// newCluster prepares n nodes (and starts those marked to start).
func newCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t}
	var peers []string
	for i := range o.nodes {
		n := &node{
			name:        fmt.Sprintf("n%d", i+1),
			http:        fmt.Sprintf("127.0.0.1:%d", freePort(t, false)),
			clusterAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t, true)),
		}
		peers = append(peers, n.clusterAddr)
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		n.args = []string{"serve", "--node", n.name, "--http", n.http, "--cluster-addr", n.clusterAddr, "--wt", "off", "--webrtc", "off",
			"--log-level", "info", "--history-size", "2000"}
		if o.static {
			n.args = append(n.args, "--peers", strings.Join(peers, ","))
		}
		if o.etcd != "" {
			n.args = append(n.args, "--etcd", o.etcd)
		}
		if o.redis != "" {
			n.args = append(n.args, "--redis", o.redis)
		}
		n.args = append(n.args, o.extra...)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			stopProcess(n.cmd)
		}
		// TOPICAST_TEST_DUMP=1 shows the nodes' logs of passing tests too.
		if t.Failed() || os.Getenv("TOPICAST_TEST_DUMP") != "" {
			for _, n := range c.nodes {
				n.log.dump(t, n.name)
			}
		}
	})
	return c
}

// start starts the nodes (all when none is given) and waits for /readyz.
func (c *cluster) start(nodes ...*node) {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	for _, n := range nodes {
		if n.log == nil {
			n.log = &logSink{}
		}
		n.cmd = startProcess(c.t, n.log, binary, n.args...)
	}
	for _, n := range nodes {
		c.waitReady(n, 30*time.Second)
	}
}

func (c *cluster) waitReady(n *node, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := httpClient.Get("http://" + n.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.log.dump(c.t, n.name)
	c.t.Fatalf("node %s not ready after %v", n.name, d)
}

// kill sends SIGKILL to a node and reaps it.
func (c *cluster) kill(n *node) {
	_ = n.cmd.Process.Signal(syscall.SIGKILL) // already dead is fine
	_ = n.cmd.Wait()
	n.cmd = nil
}

func (c *cluster) clusterAddrs(nodes ...*node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.clusterAddr)
	}
	return out
}

var httpClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}

type publishResult struct {
	Topic string `json:"topic"`
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// publish posts one message with an idempotency key.
func publish(ctx context.Context, httpAddr, topic, key string, data []byte) (publishResult, error) {
	body, err := json.Marshal(map[string]any{"topic": topic, "data": json.RawMessage(data), "key": key})
	if err != nil {
		return publishResult{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+httpAddr+"/v1/publish", bytes.NewReader(body))
	if err != nil {
		return publishResult{}, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return publishResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return publishResult{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return publishResult{}, fmt.Errorf("publish %s on %s: %d %s", topic, httpAddr, resp.StatusCode, b)
	}
	var r publishResult
	return r, json.Unmarshal(b, &r)
}

// publishRetry publishes on the nodes in turn from first until one answers
// (the key makes the retries idempotent), within ctx.
func publishRetry(ctx context.Context, addrs func() []string, first int, topic, key string, data []byte) (publishResult, int, error) {
	var last error
	for attempt := 0; ; attempt++ {
		as := addrs()
		r, err := publish(ctx, as[(first+attempt)%len(as)], topic, key, data)
		if err == nil {
			return r, attempt, nil
		}
		last = err
		if ctx.Err() != nil {
			return r, attempt, errors.Join(ctx.Err(), last)
		}
		time.Sleep(time.Duration(min(attempt+1, 10)) * 20 * time.Millisecond)
	}
}

// history reads a topic's head.
func history(httpAddr, topic string) (epoch string, head uint64, err error) {
	resp, err := httpClient.Get("http://" + httpAddr + "/v1/history?topic=" + topic + "&since=0&limit=1")
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	var h struct {
		Epoch string `json:"epoch"`
		Head  uint64 `json:"head"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", 0, fmt.Errorf("history %s: %d %s", topic, resp.StatusCode, b)
	}
	err = json.NewDecoder(resp.Body).Decode(&h)
	return h.Epoch, h.Head, err
}

// msgData is what test publishers send.
type msgData struct {
	P  int   `json:"p"`  // publisher
	N  int   `json:"n"`  // its counter
	TS int64 `json:"ts"` // send time, Unix ns
}

func decodeMsg(frame []byte) (topic, epoch string, seq uint64, d msgData, err error) {
	var f struct {
		Op    string  `json:"op"`
		Topic string  `json:"topic"`
		Epoch string  `json:"epoch"`
		Seq   uint64  `json:"seq"`
		Data  msgData `json:"data"`
	}
	if err = json.Unmarshal(frame, &f); err != nil {
		return
	}
	if f.Op != "msg" {
		err = fmt.Errorf("not a msg: %s", frame)
	}
	return f.Topic, f.Epoch, f.Seq, f.Data, err
}
