package nemesis

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Every node runs under its own uid, and nftables tells nodes apart by the
// uid of the socket that sends a packet (meta skuid): on loopback a
// connection's source address is 127.0.0.1 whoever opens it, so addresses
// alone cannot say which node sent a packet.
//
// The table inet nemesis has an output chain that marks each connection a
// node opens with the node's uid (ct mark), then jumps to the faults
// chain. Cutting node A from node B drops, on output:
//
//	A's packets to B's address        meta skuid A ip daddr B
//	B's packets to A's address        meta skuid B ip daddr A
//	A's packets on B's connections    meta skuid A ct mark B (A's answers go to 127.0.0.1)
//	B's packets on A's connections    meta skuid B ct mark A
//
// Clients (this process, uid 0), Redis and etcd are not touched. Healing
// flushes the faults chain.

// nodeUID is the uid (and gid) of node i.
func nodeUID(i int) int { return 2001 + i }

// nodeIP is the loopback address of node i.
func nodeIP(i int) string { return fmt.Sprintf("127.0.0.%d", 11+i) }

// netFaults writes the nftables rules of a run with n nodes.
type netFaults struct {
	n int
}

func (f *netFaults) nft(script string) error {
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %w: %s\nscript:\n%s", err, out, script)
	}
	return nil
}

// setup creates the table: connection marks, and an empty faults chain.
func (f *netFaults) setup() error {
	var b strings.Builder
	b.WriteString("table inet nemesis {\n  chain faults {\n  }\n  chain output {\n    type filter hook output priority 0; policy accept;\n")
	for i := range f.n {
		fmt.Fprintf(&b, "    ct state new meta skuid %d ct mark set %d\n", nodeUID(i), nodeUID(i))
	}
	b.WriteString("    jump faults\n  }\n}\n")
	// A table left by an earlier run in this namespace cannot exist (the
	// namespace is new), but be idempotent anyway.
	if err := f.nft("table inet nemesis\ndelete table inet nemesis\n"); err != nil {
		return err
	}
	return f.nft(b.String())
}

// cut drops all traffic between the nodes of each pair, both ways.
func (f *netFaults) cut(pairs [][2]int) error {
	var b strings.Builder
	for _, p := range pairs {
		for _, d := range [][2]int{{p[0], p[1]}, {p[1], p[0]}} {
			from, to := d[0], d[1]
			fmt.Fprintf(&b, "add rule inet nemesis faults meta skuid %d ip daddr %s drop\n", nodeUID(from), nodeIP(to))
			fmt.Fprintf(&b, "add rule inet nemesis faults meta skuid %d ct mark %d drop\n", nodeUID(from), nodeUID(to))
		}
	}
	return f.nft(b.String())
}

// loss drops pct percent (1 to 99) of the packets between nodes, at
// random.
func (f *netFaults) loss(pct int) error {
	pct = min(max(pct, 1), 99)
	var uids, ips []string
	for i := range f.n {
		uids = append(uids, fmt.Sprint(nodeUID(i)))
		ips = append(ips, nodeIP(i))
	}
	u, a := strings.Join(uids, ", "), strings.Join(ips, ", ")
	return f.nft(fmt.Sprintf(
		"add rule inet nemesis faults meta skuid { %s } ip daddr { %s } numgen random mod 100 < %d drop\n"+
			"add rule inet nemesis faults meta skuid { %s } ct mark { %s } numgen random mod 100 < %d drop\n", u, a, pct, u, u, pct))
}

// heal removes every fault rule.
func (f *netFaults) heal() error { return f.nft("flush chain inet nemesis faults\n") }

// teardown removes the table.
func (f *netFaults) teardown() error { return f.nft("delete table inet nemesis\n") }

// isolatePairs cuts node v from every other node.
func isolatePairs(n, v int) [][2]int {
	var out [][2]int
	for o := range n {
		if o != v {
			out = append(out, [2]int{v, o})
		}
	}
	return out
}

// splitPairs cuts every node of a from every node of b.
func splitPairs(a, b []int) [][2]int {
	var out [][2]int
	for _, x := range a {
		for _, y := range b {
			out = append(out, [2]int{x, y})
		}
	}
	return out
}

// helperMain runs the test binary as a helper process of
// TestNetworkFaults: "peer" listens on $TOPICAST_NEMESIS_HELPER_ADDR:9100
// and echoes lines, and executes commands read from stdin, answering
// "ok" or "fail <why>" on stdout for each:
//
//	rt IP     a round trip on a kept connection to IP:9100 (dialled if none)
//	dial IP   a round trip on a new connection, closed after
func helperMain(mode string) int {
	if mode != "peer" {
		fmt.Fprintln(os.Stderr, "unknown helper", mode)
		return 2
	}
	ln, err := net.Listen("tcp", os.Getenv("TOPICAST_NEMESIS_HELPER_ADDR")+":9100")
	if err != nil {
		fmt.Println("fail", err)
		return 1
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := fmt.Fprintln(c, sc.Text()); err != nil {
						return
					}
				}
			}()
		}
	}()
	fmt.Println("ready")
	kept := make(map[string]net.Conn)
	roundTrip := func(c net.Conn) error {
		if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
			return err
		}
		if _, err := io.WriteString(c, "x\n"); err != nil {
			return err
		}
		b := make([]byte, 2)
		_, err := io.ReadFull(c, b)
		return err
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, ip, _ := strings.Cut(sc.Text(), " ")
		var err error
		switch cmd {
		case "rt":
			c := kept[ip]
			if c == nil {
				if c, err = net.DialTimeout("tcp", ip+":9100", time.Second); err != nil {
					break
				}
				kept[ip] = c
			}
			if err = roundTrip(c); err != nil {
				c.Close()
				delete(kept, ip)
			}
		case "dial":
			var c net.Conn
			if c, err = net.DialTimeout("tcp", ip+":9100", time.Second); err == nil {
				err = roundTrip(c)
				c.Close()
			}
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			fmt.Println("fail", err)
		} else {
			fmt.Println("ok")
		}
	}
	return 0
}

// peer is a helper process of TestNetworkFaults under a node's uid.
type peer struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	mu  sync.Mutex
}

// helperCopy copies the test binary where other uids may run it (go test
// builds it in a directory only root may enter).
func helperCopy(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := publicTempDir(t, "topicast-nemesis-helper-")
	dst := filepath.Join(dir, "helper")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// publicTempDir makes a directory every uid may enter, removed when the
// test ends.
func publicTempDir(t *testing.T, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startPeer(t *testing.T, exe string, i int) *peer {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = []string{envHelper + "=peer", "TOPICAST_NEMESIS_HELPER_ADDR=" + nodeIP(i)}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig:  syscall.SIGKILL,
		Credential: &syscall.Credential{Uid: uint32(nodeUID(i)), Gid: uint32(nodeUID(i))},
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &peer{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Process.Kill() // the helper has no state to lose
		_ = cmd.Wait()
	})
	if line := p.line(); line != "ready" {
		t.Fatalf("peer %d: %s", i, line)
	}
	return p
}

func (p *peer) line() string {
	if !p.out.Scan() {
		return "fail: helper output ended"
	}
	return p.out.Text()
}

// do runs one helper command and reports whether it succeeded.
func (p *peer) do(t *testing.T, cmd string) bool {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		t.Fatal(err)
	}
	line := p.line()
	return line == "ok"
}

// TestNetworkFaults checks the rules the nemesis relies on: with nodes as
// processes of different uids in this namespace, a cut between two of them
// stops their established connections and new ones, both ways, and
// nothing else; healing restores it.
func TestNetworkFaults(t *testing.T) {
	requireNetns(t)
	f := &netFaults{n: 3}
	if err := f.setup(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.teardown(); err != nil {
			t.Error(err)
		}
	})
	exe := helperCopy(t)
	a, b, c := startPeer(t, exe, 0), startPeer(t, exe, 1), startPeer(t, exe, 2)
	ipA, ipB, ipC := nodeIP(0), nodeIP(1), nodeIP(2)
	expect := func(p *peer, cmd string, want bool, what string) {
		t.Helper()
		if got := p.do(t, cmd); got != want {
			t.Errorf("%s: %q succeeded=%v, want %v", what, cmd, got, want)
		}
	}
	// Connections both ways, kept open across the cut.
	expect(a, "rt "+ipB, true, "before")
	expect(b, "rt "+ipA, true, "before")
	expect(a, "rt "+ipC, true, "before")
	if err := f.cut([][2]int{{0, 1}}); err != nil {
		t.Fatal(err)
	}
	expect(a, "rt "+ipB, false, "A to B on an established connection")
	expect(b, "rt "+ipA, false, "B to A on an established connection")
	expect(a, "dial "+ipB, false, "A to B, new connection")
	expect(b, "dial "+ipA, false, "B to A, new connection")
	expect(a, "rt "+ipC, true, "A to C, not cut")
	expect(c, "dial "+ipB, true, "C to B, not cut")
	expect(c, "dial "+ipA, true, "C to A, not cut")
	// This process (uid 0) is a client: it still reaches both.
	for _, ip := range []string{ipA, ipB} {
		conn, err := net.DialTimeout("tcp", ip+":9100", time.Second)
		if err != nil {
			t.Errorf("client to %s during the cut: %v", ip, err)
			continue
		}
		conn.Close()
	}
	if err := f.heal(); err != nil {
		t.Fatal(err)
	}
	expect(a, "rt "+ipB, true, "after healing")
	expect(b, "rt "+ipA, true, "after healing")
	expect(a, "dial "+ipB, true, "after healing")
	// Loss: the rules load, and nearly all of it cuts.
	if err := f.loss(99); err != nil {
		t.Fatal(err)
	}
	expect(a, "dial "+ipB, false, "99% loss")
	expect(c, "dial "+ipA, false, "99% loss")
	if err := f.heal(); err != nil {
		t.Fatal(err)
	}
	expect(a, "dial "+ipB, true, "after the loss")
}
