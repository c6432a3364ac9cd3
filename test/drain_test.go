package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// buildTopicast builds cmd/topicast into a temporary directory.
func buildTopicast(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "topicast")
	start := time.Now()
	out, err := exec.Command("go", "build", "-o", bin, "github.com/topicast/topicast/cmd/topicast").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// process is a topicast serve process whose logs (JSON) are kept.
type process struct {
	cmd  *exec.Cmd
	addr string // HTTP host:port
	done chan struct{}
	err  error // Wait's result, once done is closed

	mu   sync.Mutex
	logs []map[string]any
	raw  strings.Builder
}

// startProcess runs bin serve with args and waits for its "listening" line.
func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--log-format", "json"}, args...)...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &process{cmd: cmd, done: make(chan struct{})}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			var rec map[string]any
			p.mu.Lock()
			p.raw.WriteString(line + "\n")
			if json.Unmarshal([]byte(line), &rec) == nil {
				p.logs = append(p.logs, rec)
				if rec["msg"] == "listening" {
					if u, ok := rec["http"].(string); ok {
						listening <- strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
					}
				}
			}
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("topicast logs:\n%s", p.logText())
		}
	})
	select {
	case p.addr = <-listening:
	case <-p.done:
		t.Fatalf("topicast exited before listening: %v\n%s", p.err, p.logText())
	case <-time.After(30 * time.Second):
		t.Fatalf("topicast did not log its address in 30 s:\n%s", p.logText())
	}
	return p
}

func (p *process) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw.String()
}

// countLogs counts the log records with msg whose fields include kv.
func (p *process) countLogs(msg string, kv ...string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
next:
	for _, r := range p.logs {
		if r["msg"] != msg {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if fmt.Sprint(r[kv[i]]) != kv[i+1] {
				continue next
			}
		}
		n++
	}
	return n
}

// drainClient is a subscriber that records what it got before the close.
type drainClient struct {
	c     *testutil.WSClient
	topic string
	mu    sync.Mutex
	seqs  []uint64
}

// TestDrain runs the real binary, connects 200 WebSocket clients, publishes
// and sends SIGTERM at once: every client gets every message whose publish
// was answered, then close code 1001, and the process exits 0 within its
// drain timeout.
func TestDrain(t *testing.T) {
	testutil.SkipIfShort(t)
	bin := buildTopicast(t)
	const drainTimeout = 10 * time.Second
	p := startProcess(t, bin, "--http", "127.0.0.1:0", "--wt", "off", "--webrtc", "off", "--publish-rate", "0",
		"--drain-timeout", drainTimeout.String())

	const conns, topics, batches, perBatch = 200, 4, 20, 25
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	clients := make([]*drainClient, conns)
	for i := range clients {
		c, err := testutil.DialWS(ctx, "ws://"+p.addr+"/ws", 0)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		dc := &drainClient{c: c, topic: fmt.Sprintf("drain.%d", i%topics)}
		ok, err := c.Subscribe(dc.topic, 1, nil)
		require.NoError(t, err)
		require.Equal(t, "ok", ok.Op, ok.Raw)
		require.Zero(t, ok.Seq)
		clients[i] = dc
		go c.Read(func(f []byte) {
			if topic, seq, ok := testutil.MsgSeq(f); ok && topic == dc.topic {
				dc.mu.Lock()
				dc.seqs = append(dc.seqs, seq)
				dc.mu.Unlock()
			}
		})
	}

	// Publish, and send SIGTERM as soon as the last publish is answered:
	// deliveries are still on their way and in the clients' queues.
	pad := strings.Repeat("p", 512)
	heads := make(map[string]uint64)
	for b := range batches {
		var items []string
		for i := range perBatch {
			topic := fmt.Sprintf("drain.%d", (b*perBatch+i)%topics)
			items = append(items, fmt.Sprintf(`{"topic":%q,"data":{"b":%d,"i":%d,"pad":%q}}`, topic, b, i, pad))
		}
		resp, err := httpClient.Post("http://"+p.addr+"/v1/publish", "application/json",
			strings.NewReader(`{"messages":[`+strings.Join(items, ",")+`]}`))
		require.NoError(t, err)
		var r struct {
			Results []wire.PublishResult `json:"results"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		for _, res := range r.Results {
			heads[res.Topic] = max(heads[res.Topic], res.Seq)
		}
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	sent := time.Now()

	select {
	case <-p.done:
	case <-time.After(drainTimeout + 5*time.Second):
		t.Fatalf("topicast still running %v after SIGTERM", time.Since(sent))
	}
	took := time.Since(sent)
	t.Logf("topicast exited %v after SIGTERM", took.Round(time.Millisecond))
	require.NoError(t, p.err, "exit status")
	require.Less(t, took, drainTimeout, "exit within the drain timeout")

	for i, dc := range clients {
		select {
		case <-dc.c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("client %d: connection still open after the server exited", i)
		}
		require.Equal(t, wire.CloseGoingAway, dc.c.CloseCode, "client %d: close code (reason %q, err %v)", i, dc.c.CloseReason, dc.c.Err)
		dc.mu.Lock()
		seqs := dc.seqs
		dc.mu.Unlock()
		want := heads[dc.topic]
		require.Len(t, seqs, int(want), "client %d (%s): messages before the close", i, dc.topic)
		for j, s := range seqs {
			if s != uint64(j+1) {
				require.Failf(t, "out of order", "client %d: message %d has seq %d", i, j, s)
			}
		}
	}
	require.Equal(t, conns, p.countLogs("connection closed", "code", "1001", "reason", "shutdown"), "one INFO line per client closed by the drain")
	require.Equal(t, conns, p.countLogs("connection opened", "transport", "ws"))
	require.Positive(t, p.countLogs("stopped"))
}
