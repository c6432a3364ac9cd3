package tlsreload

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/testutil"
)

// files is a certificate and key on disk, as serve is given them.
type files struct {
	dir, cert, key string
}

func writePair(t *testing.T, leaf *testutil.Leaf) files {
	t.Helper()
	dir := t.TempDir()
	f := files{dir: dir, cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	f.write(t, leaf)
	return f
}

// write replaces both files, each atomically (the key first, so that a
// same-key renewal never shows a mismatched pair).
func (f files) write(t *testing.T, leaf *testutil.Leaf) {
	t.Helper()
	testutil.WriteFileAtomic(t, f.key, leaf.KeyPEM)
	testutil.WriteFileAtomic(t, f.cert, leaf.CertPEM)
}

// logBuffer collects a Reloader's logs and copies them to t.Log.
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(string(bytes.TrimSpace(p)))
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newReloader(t *testing.T, f files, interval time.Duration) (*Reloader, *logBuffer) {
	t.Helper()
	logs := &logBuffer{t: t}
	r, err := New(Config{CertFile: f.cert, KeyFile: f.key, Interval: interval, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	return r, logs
}

func serial(r *Reloader) string { return r.Certificate().Leaf.SerialNumber.String() }

// TestNewRefusesBadPairs checks that each pair a server cannot serve stops
// New with an error naming the file at fault.
func TestNewRefusesBadPairs(t *testing.T) {
	ca := testutil.NewCA(t)
	good, other := ca.Issue(t, testutil.LeafOptions{}), ca.Issue(t, testutil.LeafOptions{})
	expired := ca.Issue(t, testutil.LeafOptions{NotAfter: time.Now().Add(-time.Minute)})
	for _, c := range []struct {
		name string
		// prepare returns the files given to New and what the error must say.
		prepare func(f files) (cert, key string, want []string)
	}{
		{"missing certificate", func(f files) (string, string, []string) {
			missing := filepath.Join(f.dir, "missing.pem")
			return missing, f.key, []string{"certificate file", missing, "no such file"}
		}},
		{"missing key", func(f files) (string, string, []string) {
			missing := filepath.Join(f.dir, "missing-key.pem")
			return f.cert, missing, []string{"key file", missing, "no such file"}
		}},
		{"key is a directory", func(f files) (string, string, []string) {
			return f.cert, f.dir, []string{"key file", f.dir}
		}},
		{"key of another certificate", func(f files) (string, string, []string) {
			require.NoError(t, os.WriteFile(f.key, other.KeyPEM, 0o600))
			return f.cert, f.key, []string{f.cert, f.key, "private key does not match public key"}
		}},
		{"not PEM", func(f files) (string, string, []string) {
			require.NoError(t, os.WriteFile(f.cert, []byte("not a certificate"), 0o600))
			return f.cert, f.key, []string{f.cert, "PEM"}
		}},
		{"expired", func(f files) (string, string, []string) {
			f.write(t, expired)
			return f.cert, f.key, []string{f.cert, "expired on"}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := writePair(t, good)
			cert, key, want := c.prepare(f)
			_, err := New(Config{CertFile: cert, KeyFile: key})
			require.Error(t, err)
			for _, w := range want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestReloadIfChanged checks the file-change path step by step: an
// unchanged pair is not read again, a renewed certificate is served, and a
// certificate written before its key fails once (the old one stays), then
// loads when the key arrives.
func TestReloadIfChanged(t *testing.T) {
	ca := testutil.NewCA(t)
	first := ca.Issue(t, testutil.LeafOptions{})
	f := writePair(t, first)
	r, _ := newReloader(t, f, -1)
	require.Equal(t, first.Cert.SerialNumber.String(), serial(r))
	require.False(t, r.reloadIfChanged(), "nothing changed")

	renewed := ca.Issue(t, testutil.LeafOptions{Key: first.Key})
	testutil.WriteFileAtomic(t, f.cert, renewed.CertPEM)
	require.True(t, r.reloadIfChanged())
	require.Equal(t, renewed.Cert.SerialNumber.String(), serial(r))
	require.Equal(t, Stats{Reloads: 1, NotAfter: renewed.Cert.NotAfter}, r.Stats())
	require.False(t, r.reloadIfChanged())

	rekeyed := ca.Issue(t, testutil.LeafOptions{})
	testutil.WriteFileAtomic(t, f.cert, rekeyed.CertPEM)
	require.True(t, r.reloadIfChanged())
	require.Equal(t, renewed.Cert.SerialNumber.String(), serial(r), "a mismatched pair is not served")
	require.Equal(t, uint64(1), r.Stats().Failures)
	require.False(t, r.reloadIfChanged(), "a failed pair is tried again only once it changes")
	testutil.WriteFileAtomic(t, f.key, rekeyed.KeyPEM)
	require.True(t, r.reloadIfChanged())
	require.Equal(t, rekeyed.Cert.SerialNumber.String(), serial(r))
	require.Equal(t, Stats{Reloads: 2, Failures: 1, NotAfter: rekeyed.Cert.NotAfter}, r.Stats())
}

// TestRunReloadsOnFileChange checks that Run notices renewed files by
// itself and returns when its context ends.
func TestRunReloadsOnFileChange(t *testing.T) {
	ca := testutil.NewCA(t)
	first := ca.Issue(t, testutil.LeafOptions{})
	f := writePair(t, first)
	r, logs := newReloader(t, f, 5*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	next := ca.Issue(t, testutil.LeafOptions{})
	f.write(t, next)
	require.Eventually(t, func() bool { return serial(r) == next.Cert.SerialNumber.String() }, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Contains(t, logs.String(), "tls: certificate reloaded")
	require.Contains(t, logs.String(), "trigger=file_change")
}

// TestBadReloadKeepsOld checks Reload (serve's SIGHUP) with files that
// cannot be served: each keeps the certificate in force, returns the
// reason, logs it and counts it.
func TestBadReloadKeepsOld(t *testing.T) {
	ca := testutil.NewCA(t)
	good := ca.Issue(t, testutil.LeafOptions{})
	f := writePair(t, good)
	r, logs := newReloader(t, f, -1)
	for i, c := range []struct {
		name string
		cert []byte
		want string
	}{
		{"garbage", []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"), "x509"},
		{"another key's certificate", ca.Issue(t, testutil.LeafOptions{}).CertPEM, "private key does not match public key"},
		{"expired", ca.Issue(t, testutil.LeafOptions{Key: good.Key, NotAfter: time.Now().Add(-time.Minute)}).CertPEM, "expired on"},
	} {
		testutil.WriteFileAtomic(t, f.cert, c.cert)
		err := r.Reload()
		require.ErrorContains(t, err, c.want, c.name)
		require.Equal(t, good.Cert.SerialNumber.String(), serial(r), c.name)
		require.Equal(t, uint64(i+1), r.Stats().Failures, c.name)
		require.Contains(t, logs.String(), c.want, "the log says why")
	}
	require.Contains(t, logs.String(), "still serving the previous one")
	require.Contains(t, logs.String(), "trigger=reload")
	require.NoError(t, os.Remove(f.cert))
	require.ErrorContains(t, r.Reload(), f.cert)
	require.Equal(t, good.Cert.NotAfter, r.Stats().NotAfter)
	require.Zero(t, r.Stats().Reloads)
}

// TestReloadKeepsConnections checks what serving means: after a reload a
// new handshake gets the new certificate, and a connection made before it
// goes on working.
func TestReloadKeepsConnections(t *testing.T) {
	ca := testutil.NewCA(t)
	first := ca.Issue(t, testutil.LeafOptions{})
	f := writePair(t, first)
	r, _ := newReloader(t, f, -1)
	addr := echoServer(t, r.Config())

	dial := func() (*tls.Conn, *bufio.Reader) {
		t.Helper()
		c, err := tls.Dial("tcp", addr, ca.ClientConfig())
		require.NoError(t, err, "the chain verifies against the CA")
		t.Cleanup(func() { _ = c.Close() })
		return c, bufio.NewReader(c)
	}
	echo := func(c *tls.Conn, br *bufio.Reader, line string) {
		t.Helper()
		_, err := c.Write([]byte(line + "\n"))
		require.NoError(t, err)
		got, err := br.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, line+"\n", got)
	}
	peerSerial := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.String() }

	old, oldR := dial()
	echo(old, oldR, "before")
	require.Equal(t, first.Cert.SerialNumber.String(), peerSerial(old))

	next := ca.Issue(t, testutil.LeafOptions{})
	f.write(t, next)
	require.NoError(t, r.Reload())
	c, cr := dial()
	echo(c, cr, "new")
	require.Equal(t, next.Cert.SerialNumber.String(), peerSerial(c))
	echo(old, oldR, "after")
}

// echoServer serves TLS with conf on a loopback port, echoing lines, until
// the test ends; it returns the address.
func echoServer(t *testing.T, conf *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("accept: %v", err)
				}
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			})
		}
	})
	// Registered first, so it runs after the clients' cleanups have closed
	// their ends, which ends the echo goroutines.
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}
