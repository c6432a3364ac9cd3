package test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// tlsFiles are the --tls-cert and --tls-key of a test, in its own directory.
type tlsFiles struct{ cert, key string }

func newTLSFiles(t *testing.T) tlsFiles {
	dir := t.TempDir()
	return tlsFiles{cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
}

// write installs leaf as a certificate manager does: each file replaced
// whole, the key first.
func (f tlsFiles) write(t *testing.T, leaf *testutil.Leaf) {
	t.Helper()
	testutil.WriteFileAtomic(t, f.key, leaf.KeyPEM)
	testutil.WriteFileAtomic(t, f.cert, leaf.CertPEM)
}

// tlsProbe makes fresh connections to a TLS server that must verify
// against ca: each request goes on a new connection, so it sees the
// certificate served now.
type tlsProbe struct {
	t    *testing.T
	ca   *testutil.CA
	addr string // host:port of --http
}

// get sends GET path over a new HTTPS connection offering h2 and
// http/1.1, as a browser does, and returns the response and its body.
func (p tlsProbe) get(path string) (*http.Response, string) {
	p.t.Helper()
	tr := &http.Transport{TLSClientConfig: p.ca.ClientConfig(), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + p.addr + path)
	require.NoError(p.t, err, "the chain verifies against the test CA")
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(p.t, err)
	return resp, string(b)
}

// serial returns the serial of the certificate a new HTTPS connection gets,
// checking that it negotiated HTTP/2 with a verified chain.
func (p tlsProbe) serial() string {
	p.t.Helper()
	resp, body := p.get("/healthz")
	require.Equal(p.t, http.StatusOK, resp.StatusCode, body)
	require.Equal(p.t, "HTTP/2.0", resp.Proto)
	require.Equal(p.t, "h2", resp.TLS.NegotiatedProtocol, "ALPN")
	require.NotEmpty(p.t, resp.TLS.VerifiedChains)
	return resp.TLS.PeerCertificates[0].SerialNumber.String()
}

// wtSerial returns the serial of the certificate a new WebTransport
// session gets, verified against the CA (no hash pinning).
func (p tlsProbe) wtSerial(wtURL string) string {
	p.t.Helper()
	var serial string
	conf := p.ca.ClientConfig()
	conf.NextProtos = []string{http3.NextProtoH3}
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		serial = cs.PeerCertificates[0].SerialNumber.String()
		return nil
	}
	tr := &webtransport.Transport{
		TLSClientConfig: conf,
		QUICConfig:      &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, sess, err := tr.Dial(ctx, wtURL, nil)
	require.NoError(p.t, err)
	require.NoError(p.t, sess.CloseWithError(0, ""))
	require.NoError(p.t, tr.Close())
	return serial
}

// publishTLS publishes one message over HTTPS and returns its seq.
func (p tlsProbe) publish(topic, data string) uint64 {
	p.t.Helper()
	tr := &http.Transport{TLSClientConfig: p.ca.ClientConfig(), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Post("https://"+p.addr+"/v1/publish",
		"application/json", strings.NewReader(fmt.Sprintf(`{"topic":%q,"data":%s}`, topic, data)))
	require.NoError(p.t, err)
	defer resp.Body.Close()
	require.Equal(p.t, http.StatusOK, resp.StatusCode)
	var r wire.PublishResult
	require.NoError(p.t, json.NewDecoder(resp.Body).Decode(&r))
	return r.Seq
}

// wtURL returns the WebTransport URL that p logged at start.
func (p *process) wtURL(t *testing.T) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.logs {
		if u, ok := r["wt"].(string); ok && r["msg"] == "listening" {
			return u
		}
	}
	t.Fatal("no WebTransport URL in the logs")
	return ""
}

// TestTLSServeAndReload runs the binary with a certificate issued by a CA
// made here and checks, with clients that verify the chain:
//   - HTTPS on --http negotiates h2 (GET /healthz, /v1/info); WSS upgrades
//     over http/1.1 and receives a message published over HTTPS; an SSE
//     stream over h2 receives it too; WebTransport serves the same
//     certificate;
//   - after a new leaf is installed and SIGHUP sent, new HTTPS and
//     WebTransport connections get the new certificate while the WSS and
//     SSE connections made before go on receiving;
//   - a bad certificate then installed and signalled is refused (logged,
//     counted in /metrics) and the previous one is still served;
//   - SIGTERM ends the process cleanly.
func TestTLSServeAndReload(t *testing.T) {
	ca := testutil.NewCA(t)
	files := newTLSFiles(t)
	first := ca.Issue(t, testutil.LeafOptions{})
	files.write(t, first)
	bin := buildTopicast(t)
	p := startProcess(t, bin, "--http", "127.0.0.1:0", "--wt", "127.0.0.1:0", "--webrtc-udp", "127.0.0.1:0",
		"--tls-cert", files.cert, "--tls-key", files.key)
	probe := tlsProbe{t: t, ca: ca, addr: p.addr}
	require.Equal(t, 1, p.countLogs("listening", "http", "https://"+p.addr, "ws", "wss://"+p.addr+"/ws"))

	require.Equal(t, first.Cert.SerialNumber.String(), probe.serial())
	resp, body := probe.get("/v1/info")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, "HTTP/2.0", resp.Proto)
	var info struct {
		WebTransport struct {
			URL      string `json:"url"`
			CertHash string `json:"certHash"`
		} `json:"webtransport"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &info))
	require.Empty(t, info.WebTransport.CertHash, "a CA-issued certificate needs no pinning")
	wtURL := p.wtURL(t)
	require.Equal(t, wtURL, info.WebTransport.URL)
	require.Equal(t, first.Cert.SerialNumber.String(), probe.wtSerial(wtURL))

	// A WSS subscriber, offering http/1.1 only as browsers do for
	// WebSocket.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wsConf := ca.ClientConfig()
	wsConf.NextProtos = []string{"http/1.1"}
	ws, err := testutil.DialWSS(ctx, "wss://"+p.addr+"/ws", wsConf)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.Close() })
	wsState := ws.Conn.(*tls.Conn).ConnectionState()
	require.Equal(t, "http/1.1", wsState.NegotiatedProtocol)
	require.NotEmpty(t, wsState.VerifiedChains)
	ok, err := ws.Subscribe("tls.news", 1, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", ok.Op, ok.Raw)
	wsMsgs := make(chan uint64, 16)
	go ws.Read(func(f []byte) {
		if topic, seq, ok := testutil.MsgSeq(f); ok && topic == "tls.news" {
			wsMsgs <- seq
		}
	})
	sse := openSSETLS(t, ca, p.addr, "topic=tls.news")
	require.Equal(t, "HTTP/2.0", sse.resp.Proto, "SSE over h2")
	ev, err := sse.next()
	require.NoError(t, err)
	require.Equal(t, "ready", ev.name)

	// receive checks that both subscribers made before any reload get seq.
	receive := func(seq uint64) {
		t.Helper()
		require.Equal(t, seq, probe.publish("tls.news", fmt.Sprintf(`{"n":%d}`, seq)))
		select {
		case got := <-wsMsgs:
			require.Equal(t, seq, got, "WSS")
		case <-time.After(10 * time.Second):
			t.Fatalf("WSS: no message %d (close %d %q, err %v)", seq, ws.CloseCode, ws.CloseReason, ws.Err)
		}
		ev, err := sse.next()
		require.NoError(t, err)
		var m msgFrame
		require.NoError(t, json.Unmarshal([]byte(ev.data), &m), ev.data)
		require.Equal(t, seq, m.Seq, "SSE")
	}
	receive(1)

	// Renewal: a new key and certificate, then SIGHUP.
	next := ca.Issue(t, testutil.LeafOptions{})
	files.write(t, next)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	testutil.Eventually(t, 10*time.Second, func() error {
		if p.countLogs("tls: certificate reloaded", "trigger", "reload") == 0 {
			return fmt.Errorf("no reload logged after SIGHUP")
		}
		return nil
	})
	require.Equal(t, next.Cert.SerialNumber.String(), probe.serial())
	require.Equal(t, next.Cert.SerialNumber.String(), probe.wtSerial(wtURL))
	receive(2)

	// A bad certificate: refused, the renewed one still served.
	testutil.WriteFileAtomic(t, files.cert, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	testutil.Eventually(t, 10*time.Second, func() error {
		if p.countLogs("tls: certificate not reloaded, still serving the previous one", "trigger", "reload") == 0 {
			return fmt.Errorf("no refusal logged after SIGHUP")
		}
		return nil
	})
	require.Equal(t, next.Cert.SerialNumber.String(), probe.serial())
	require.Equal(t, next.Cert.SerialNumber.String(), probe.wtSerial(wtURL))
	receive(3)
	_, metrics := probe.get("/metrics")
	require.Regexp(t, `topicast_tls_reloads_total\{result="error"\} [1-9]`, metrics)
	require.Regexp(t, `topicast_tls_reloads_total\{result="ok"\} [1-9]`, metrics)
	require.Contains(t, metrics, fmt.Sprintf("topicast_tls_certificate_expiry_timestamp_seconds %g", float64(next.Cert.NotAfter.Unix())))

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("topicast still running 30 s after SIGTERM")
	}
	require.NoError(t, p.err, "exit status")
}

// openSSETLS opens an SSE stream over HTTPS (h2 offered).
func openSSETLS(t *testing.T, ca *testutil.CA, addr, query string) *sseStream {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: ca.ClientConfig(), ForceAttemptHTTP2: true}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/v1/sse?"+query, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s := &sseStream{resp: resp, br: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(func() {
		s.close()
		tr.CloseIdleConnections()
	})
	return s
}

// TestTLSBadFilesStopServe checks that serve refuses to start with a pair
// it cannot serve: it exits non-zero, and its message names the file and
// the reason.
func TestTLSBadFilesStopServe(t *testing.T) {
	ca := testutil.NewCA(t)
	a, b := ca.Issue(t, testutil.LeafOptions{}), ca.Issue(t, testutil.LeafOptions{})
	bin := buildTopicast(t)
	for _, c := range []struct {
		name    string
		prepare func(f tlsFiles) tlsFiles
		want    func(f tlsFiles) []string
	}{
		{"key of another certificate", func(f tlsFiles) tlsFiles {
			testutil.WriteFileAtomic(t, f.cert, a.CertPEM)
			testutil.WriteFileAtomic(t, f.key, b.KeyPEM)
			return f
		}, func(f tlsFiles) []string {
			return []string{"--tls-cert/--tls-key", f.cert, f.key, "private key does not match public key"}
		}},
		{"missing key file", func(f tlsFiles) tlsFiles {
			testutil.WriteFileAtomic(t, f.cert, a.CertPEM)
			return f
		}, func(f tlsFiles) []string {
			return []string{"key file", f.key, "no such file or directory"}
		}},
		{"unreadable certificate file", func(f tlsFiles) tlsFiles {
			testutil.WriteFileAtomic(t, f.key, a.KeyPEM)
			require.NoError(t, os.Mkdir(f.cert, 0o700)) // reading a directory fails, even as root
			return f
		}, func(f tlsFiles) []string {
			return []string{"certificate file", f.cert, "is a directory"}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := c.prepare(newTLSFiles(t))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "serve", "--http", "127.0.0.1:0", "--wt", "off", "--webrtc", "off",
				"--tls-cert", f.cert, "--tls-key", f.key).CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "serve must exit with an error; output:\n%s", out)
			require.Equal(t, 1, exit.ExitCode(), "%s", out)
			require.NotContains(t, string(out), "listening")
			for _, w := range c.want(f) {
				require.Contains(t, string(out), w)
			}
			t.Logf("serve said: %s", strings.TrimSpace(string(out)))
		})
	}
}
