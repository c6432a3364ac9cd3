package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/sdk/wire"
)

// chromiumPath is Debian's Chromium, which the README test command installs.
const chromiumPath = "/usr/bin/chromium"

// browser is one headless Chromium with a fresh profile and one tab.
type browser struct {
	ctx context.Context

	mu sync.Mutex
	t  *testing.T // nil once the test is over: logging stops
}

// newBrowser starts Chromium for t; it stops when t ends. Without Chromium the
// test skips, or fails when CI is set. extra adds flags to the default ones.
func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v: install chromium (the README test command does)", err)
		}
		t.Skipf("%v: skipping the browser tests", err)
	}
	profile := t.TempDir() // removed after Chromium has exited (cleanups run last-in first-out)
	var out lockedBuffer
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		// The flags of NOTES-webtransport.md: no --disable-quic, nothing else is
		// needed for WebTransport with serverCertificateHashes.
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1200, 900),
		chromedp.CombinedOutput(&out),
	}
	opts = append(opts, extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{t: t}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(b.logf))
	b.ctx = ctx
	start := time.Now()
	err := chromedp.Do(ctx) // starts Chromium and opens a tab
	if err == nil {
		err = chromedp.Listen(ctx, b.onEvent)
	}
	if err != nil {
		cancel()
		acancel()
		t.Fatalf("start %s: %v\n%s", chromiumPath, err, out.String())
	}
	t.Logf("chromium started in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		b.mu.Lock()
		b.t = nil
		b.mu.Unlock()
		cancel()
		acancel() // waits for Chromium to exit
		if t.Failed() {
			var lines []string
			for _, l := range strings.Split(out.String(), "\n") {
				if !strings.Contains(l, "dbus") { // harmless noise
					lines = append(lines, l)
				}
			}
			t.Logf("chromium output:\n%s", strings.Join(lines, "\n"))
		}
	})
	return b
}

func (b *browser) logf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.t != nil {
		b.t.Logf("chromedp: "+format, args...)
	}
}

// onEvent logs the page's console and uncaught exceptions.
func (b *browser) onEvent(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			if a.Value != nil {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		b.logf("console.%s: %s", ev.Type, strings.Join(parts, " "))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.logf("page exception: %s", msg)
	}
}

// open loads the test page, which talks to srv, and waits for its harness.
func (b *browser) open(t *testing.T, srv *server.Server) {
	t.Helper()
	u := pageServer(t) + "/index.html?server=" + url.QueryEscape("http://"+srv.Addr())
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	// Close what the previous page opened: Chromium may keep that page, and
	// its connections, in its back/forward cache.
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("typeof window.T === 'object' && (T.closeAll(), true)"))
	require.NoError(t, err)
	err = chromedp.Do(ctx, chromedp.Navigate(u), chromedp.Poll[chromedp.Void]("typeof window.T === 'object'"))
	require.NoError(t, err, "open %s", u)
}

// call evaluates fn(args...) in the page, awaits its promise and decodes the
// result into out (nil: ignored).
func (b *browser) call(t *testing.T, out any, fn string, args ...any) {
	t.Helper()
	parts := make([]string, len(args))
	for i, a := range args {
		j, err := json.Marshal(a)
		require.NoError(t, err)
		parts[i] = string(j)
	}
	expr := fmt.Sprintf("%s(%s)", fn, strings.Join(parts, ", "))
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	require.NoError(t, err, "%s", expr)
	if out != nil {
		require.NoError(t, json.Unmarshal(res, out), "%s answered %s", expr, res)
	}
}

// screenshot saves the page as a PNG under os.TempDir() and logs its path.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	// The page redraws every 50 ms.
	require.NoError(t, chromedp.Do(ctx, chromedp.Sleep(100*time.Millisecond)))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	dir := filepath.Join(os.TempDir(), "topicast-browser-artifacts")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, name+".png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s", path)
}

// pageServer serves testdata/ on 127.0.0.1, another origin than topicast's
// (allowed: localhost origins are, by default).
func pageServer(t *testing.T) string {
	t.Helper()
	ps := httptest.NewServer(http.FileServerFS(os.DirFS("testdata")))
	t.Cleanup(ps.Close)
	return ps.URL
}

// startTopicast runs a server in-process on free loopback ports, with
// WebTransport (and its development certificate) when wt is set. Its logs are
// shown when the test fails.
func startTopicast(t *testing.T, wt bool, cfg server.Config) *server.Server {
	t.Helper()
	cfg.HTTPAddr = "127.0.0.1:0"
	if wt {
		cfg.WTAddr = "127.0.0.1:0"
	}
	var logs lockedBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		start := time.Now()
		err := srv.Close()
		t.Logf("server closed in %v", time.Since(start).Round(time.Millisecond))
		if err != nil || t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
		require.NoError(t, err, "close the server")
	})
	return srv
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// publish publishes {"n":n} to topic through POST /v1/publish.
func publish(t *testing.T, srv *server.Server, topic string, n int) wire.PublishResult {
	t.Helper()
	var r wire.PublishResult
	post(t, srv, fmt.Sprintf(`{"topic":%q,"data":{"n":%d}}`, topic, n), &r)
	return r
}

// publishBatch publishes {"n":from}...{"n":from+count-1} to topic in one
// request, each padded to about size bytes.
func publishBatch(t *testing.T, srv *server.Server, topic string, from, count, size int) {
	t.Helper()
	pad := strings.Repeat("x", size)
	var body bytes.Buffer
	body.WriteString(`{"messages":[`)
	for i := range count {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"topic":%q,"data":{"n":%d,"pad":%q}}`, topic, from+i, pad)
	}
	body.WriteString(`]}`)
	var r struct {
		Results []wire.PublishResult `json:"results"`
	}
	post(t, srv, body.String(), &r)
	require.Len(t, r.Results, count)
}

func post(t *testing.T, srv *server.Server, body string, out any) {
	t.Helper()
	resp, err := httpClient.Post("http://"+srv.Addr()+"/v1/publish", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	require.NoError(t, json.Unmarshal(b, out), "%s", b)
}

// run is what the page records for one subscriber (harness.js summary).
type run struct {
	Transport   string              `json:"transport"`
	Seqs        []uint64            `json:"seqs"`
	Ns          []any               `json:"ns"`
	Dg          []uint64            `json:"dg"`
	StreamDg    []uint64            `json:"streamDg"`
	IDs         []string            `json:"ids"`
	Events      []json.RawMessage   `json:"events"`
	Disconnects []int               `json:"disconnects"`
	Connects    int                 `json:"connects"`
	InOrder     bool                `json:"inOrder"`
	Ready       json.RawMessage     `json:"ready"`
	Extra       map[string][]uint64 `json:"extra"`
	Datas       []string            `json:"datas"`
	Channels    map[string]int      `json:"channels"`
}

// requireSeqs checks that r got seqs 1..n, each once and in order, and that
// the first published ones carry {"n":0}, {"n":1}...: the order of publishing.
func requireSeqs(t *testing.T, r run, n, published int) {
	t.Helper()
	require.True(t, r.InOrder, "the page saw a seq out of order")
	require.Len(t, r.Seqs, n, "messages received")
	for i, seq := range r.Seqs {
		require.Equal(t, uint64(i+1), seq, "message %d", i)
	}
	for i := range published {
		require.Equal(t, float64(i), r.Ns[i], "data of seq %d", i+1)
	}
}

// requireNonDecreasing checks datagram seqs: never backwards (a repeat of the
// newest is allowed), within 1..max.
func requireNonDecreasing(t *testing.T, seqs []uint64, max uint64) {
	t.Helper()
	for i, s := range seqs {
		require.True(t, s >= 1 && s <= max, "datagram seq %d out of 1..%d", s, max)
		if i > 0 {
			require.GreaterOrEqual(t, s, seqs[i-1], "datagram seq went backwards at %d: %v", i, seqs)
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proxy is a TCP relay whose connections the test can cut, to make a client
// lose its connection without a close frame.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	down  bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close() // ends accept
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			_ = c.Close() // refused: nothing to report
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close() // the target is gone: so is this connection
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src) // ends when either side closes
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		p.wg.Go(func() { pipe(up, c) })
		p.wg.Go(func() { pipe(c, up) })
	}
}

// cut closes every connection through the proxy; new ones are accepted.
func (p *proxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	return len(p.conns) / 2
}

// setDown(true) cuts every connection and refuses new ones until
// setDown(false): an outage.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.cut()
	}
}
