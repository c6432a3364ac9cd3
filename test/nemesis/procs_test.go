package nemesis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// logBuf keeps a process's output (stdout and stderr) in memory, across
// restarts, up to maxLog bytes.
type logBuf struct {
	mu    sync.Mutex
	b     []byte
	full  bool
	start time.Time
}

const maxLog = 64 << 20

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.b)+len(p) > maxLog {
		if !l.full {
			l.b = append(l.b, "\n=== nemesis: log truncated here\n"...)
			l.full = true
		}
		return len(p), nil
	}
	l.b = append(l.b, p...)
	return len(p), nil
}

// mark writes a line of the harness's own into the log.
func (l *logBuf) mark(format string, args ...any) {
	fmt.Fprintf(l, "=== nemesis %s (%s UTC): %s\n", fmtDur(time.Since(l.start)), time.Now().UTC().Format("15:04:05.000"),
		fmt.Sprintf(format, args...))
}

func (l *logBuf) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b...)
}

// tail returns the last n lines of the log.
func (l *logBuf) tail(n int) string {
	b := l.bytes()
	i := len(b)
	for ; n > 0 && i > 0; n-- {
		i = bytes.LastIndexByte(b[:i-1], '\n') + 1
		if i == 0 {
			break
		}
	}
	return string(b[i:])
}

// proc is a process the harness starts, stops and restarts with the same
// arguments. Its methods are goroutine-safe.
type proc struct {
	name string
	path string
	args []string
	uid  int // 0: run as this process's user
	dir  string
	log  *logBuf

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	paused bool
}

// start starts the process (it must not be running).
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited: // it ended by itself
		default:
			return fmt.Errorf("%s is running", p.name)
		}
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + p.dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if p.uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.uid)}
	}
	p.log.mark("start %s %s", p.path, strings.Join(p.args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.paused = cmd, exited, false
	go func() {
		err := cmd.Wait()
		p.log.mark("exited: %v", err)
		close(exited)
	}()
	return nil
}

// running reports whether the process was started and has not exited.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the running process.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	p.log.mark("signal %v", sig)
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return p.cmd.Process.Signal(sig)
}

// wait waits up to d for the process to exit, and forgets it if it did.
func (p *proc) wait(d time.Duration) bool {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return true
	}
	select {
	case <-exited:
	case <-time.After(d):
		return false
	}
	p.mu.Lock()
	p.cmd, p.exited, p.paused = nil, nil, false
	p.mu.Unlock()
	return true
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return // not running
	}
	p.wait(time.Minute)
}

// term sends SIGTERM and waits up to d for a clean exit, then kills.
func (p *proc) term(d time.Duration) error {
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if p.wait(d) {
		return nil
	}
	p.kill()
	return fmt.Errorf("%s did not exit within %v of SIGTERM", p.name, d)
}

// stop ends the process for good (continuing it first if paused).
func (p *proc) stop() {
	p.mu.Lock()
	paused := p.paused && p.cmd != nil
	p.mu.Unlock()
	if paused {
		_ = p.signal(syscall.SIGCONT) // killed next anyway
	}
	p.kill()
}

// node is one topicast process.
type node struct {
	*proc
	idx         int
	ip          string
	httpAddr    string
	clusterAddr string
	// state: nodeUp, nodeDown (killed or stopped) or nodePaused, as the
	// nemesis set it; publishers and subscribers avoid down nodes.
	stateMu sync.Mutex
	state   int
}

const (
	nodeUp = iota
	nodeDown
	nodePaused
)

func (n *node) setState(s int) {
	n.stateMu.Lock()
	n.state = s
	n.stateMu.Unlock()
}

func (n *node) getState() int {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	return n.state
}

func (n *node) wsURL() string { return "ws://" + n.httpAddr + "/ws" }

// ready reports whether the node answers /readyz with 200.
func (n *node) ready(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitReady waits up to d for /readyz.
func (n *node) waitReady(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if n.ready(ctx) {
			return nil
		}
		if !n.running() {
			return fmt.Errorf("%s exited before it was ready", n.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v", n.name, d)
}

// waitTCP waits up to d until addr accepts connections.
func waitTCP(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s does not answer after %v", addr, d)
}

// Addresses of the services.
const (
	redisAddr = "127.0.0.2:6379"
	etcdAddr  = "127.0.0.3:2379"
	etcdPeer  = "127.0.0.3:2380"
)

// newRedis prepares a redis-server with an append-only file synced on
// every write, in dir.
func newRedis(dir string, start time.Time) (*proc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is not installed (apt-get install redis-server); scripts/test.sh installs it")
	}
	d := filepath.Join(dir, "redis")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(redisAddr)
	return &proc{name: "redis", path: bin, dir: d, log: &logBuf{start: start}, args: []string{
		"--bind", host, "--port", port, "--protected-mode", "no", "--dir", d,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "",
	}}, nil
}

// newEtcd prepares a one-member etcd with its data in dir.
func newEtcd(dir string, start time.Time) (*proc, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, errors.New("etcd is not installed (apt-get install etcd-server); scripts/test.sh installs it")
	}
	d := filepath.Join(dir, "etcd")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	client, peer := "http://"+etcdAddr, "http://"+etcdPeer
	return &proc{name: "etcd", path: bin, dir: dir, log: &logBuf{start: start}, args: []string{
		"--data-dir", d, "--name", "nemesis",
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "nemesis=" + peer, "--log-level", "error",
	}}, nil
}
