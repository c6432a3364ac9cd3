package loadbench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
)

const (
	// wtKeepAlivePeriod keeps QUIC's idle timeout (30 s) from closing a
	// quiet session between the protocol's heartbeats.
	wtKeepAlivePeriod = 10 * time.Second
	// wtReadBufferSize is a stream's initial read buffer; it grows for
	// long lines, up to maxMessageSize.
	wtReadBufferSize = 4096
	// maxInfo bounds how much of GET /v1/info is read.
	maxInfo = 64 << 10
)

// errLineTooLong ends a WebTransport stream whose line outgrows
// maxMessageSize: it only protects the bench from a runaway peer.
var errLineTooLong = errors.New("loadbench: webtransport line longer than 16 MiB")

// validateWT checks the WebTransport fields of a Config with its defaults
// applied; zero ones are filled from /v1/info later.
func (c Config) validateWT() error {
	var errs []error
	if c.WTURL != "" {
		if u, err := url.Parse(c.WTURL); err != nil {
			errs = append(errs, fmt.Errorf("loadbench: webtransport url: %w", err))
		} else if u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("loadbench: webtransport url %q: must be https://host:port/path", c.WTURL))
		}
	}
	if c.CertHash != "" {
		if _, err := parseCertHash(c.CertHash); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// parseCertHash reads a hex SHA-256, with or without colons.
func parseCertHash(s string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != sha256.Size {
		return sum, fmt.Errorf("loadbench: cert hash must be the hex SHA-256 of a certificate (64 hex digits), not %q", s)
	}
	copy(sum[:], b)
	return sum, nil
}

// pinCertificate accepts only a leaf certificate whose SHA-256 is want.
func pinCertificate(want [sha256.Size]byte) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the server sent no certificate")
		}
		if got := sha256.Sum256(cs.PeerCertificates[0].Raw); got != want {
			return fmt.Errorf("the server's certificate has SHA-256 %x, not the pinned %x", got, want)
		}
		return nil
	}
}

// infoEndpoint returns the URL of GET /v1/info under a publish base.
func infoEndpoint(base string) string {
	base = strings.TrimSuffix(strings.TrimSuffix(base, "/"), "/v1/publish")
	return base + "/v1/info"
}

// resolveWT fills WTURL and CertHash, when zero, from GET /v1/info.
func (c *Config) resolveWT(ctx context.Context) error {
	if c.WTURL != "" && c.CertHash != "" {
		return nil
	}
	endpoint := infoEndpoint(c.PublishURL)
	// No keep-alive: nothing of this client outlives the request.
	client := &http.Client{
		Timeout:   c.RequestTimeout,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return fmt.Errorf("loadbench: webtransport info: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("loadbench: webtransport info: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxInfo))
	if err != nil {
		return fmt.Errorf("loadbench: webtransport info: GET %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("loadbench: webtransport info: GET %s: %s: %s", endpoint, resp.Status, bytes.TrimSpace(body))
	}
	var info struct {
		WebTransport *struct {
			URL      string `json:"url"`
			CertHash string `json:"certHash"`
		} `json:"webtransport"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return fmt.Errorf("loadbench: webtransport info: GET %s: %w", endpoint, err)
	}
	wt := info.WebTransport
	if c.WTURL == "" {
		if wt == nil || wt.URL == "" {
			return fmt.Errorf("loadbench: GET %s reports no WebTransport endpoint (is the server started with --wt?)", endpoint)
		}
		c.WTURL = wt.URL
	}
	if c.CertHash == "" && wt != nil {
		c.CertHash = wt.CertHash
	}
	return c.validateWT()
}

// wtClient holds what the WebTransport subscribers of one run share.
type wtClient struct {
	tr       *webtransport.Transport
	url      string // WTURL with the token
	addr     *net.UDPAddr
	local    *net.UDPAddr // nil: the system's choice
	tlsConf  *tls.Config
	quicConf *quic.Config
	used     atomic.Bool // tr was used, so that tr.Close may be called
}

// newWTClient resolves cfg's WebTransport endpoint, asking /v1/info for
// what cfg leaves zero, and prepares the dials.
func newWTClient(ctx context.Context, cfg *Config) (*wtClient, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	if err := cfg.resolveWT(ctx); err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.WTURL)
	if err != nil {
		return nil, fmt.Errorf("loadbench: webtransport url: %w", err)
	}
	hostPort := u.Host
	if u.Port() == "" {
		hostPort = net.JoinHostPort(u.Hostname(), "443")
	}
	addr, err := net.ResolveUDPAddr("udp", hostPort)
	if err != nil {
		return nil, fmt.Errorf("loadbench: webtransport url %q: %w", cfg.WTURL, err)
	}
	c := &wtClient{
		tr:   &webtransport.Transport{},
		url:  withToken(cfg.WTURL, cfg.Token),
		addr: addr,
		tlsConf: &tls.Config{
			ServerName: u.Hostname(),
			NextProtos: []string{http3.NextProtoH3},
		},
		quicConf: &quic.Config{
			// webtransport-go v0.13.0 refuses connections without both.
			EnableDatagrams:                  true,
			EnableStreamResetPartialDelivery: true,
			KeepAlivePeriod:                  wtKeepAlivePeriod,
		},
	}
	if addr.IP.IsLoopback() {
		// The socket then never picks another interface's address.
		c.local = &net.UDPAddr{IP: addr.IP}
	}
	if cfg.CertHash != "" {
		want, err := parseCertHash(cfg.CertHash)
		if err != nil {
			return nil, err
		}
		// The pin replaces the checks of the chain and of the names;
		// VerifyConnection runs on every handshake, resumed ones included.
		c.tlsConf.InsecureSkipVerify = true
		c.tlsConf.VerifyConnection = pinCertificate(want)
	}
	return c, nil
}

// withToken adds ?token= to rawURL when token is set.
func withToken(rawURL, token string) string {
	if token == "" {
		return rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	q.Set("token", token)
	u.RawQuery = q.Encode()
	return u.String()
}

// close ends what the subscribers shared, once every one of them ended.
func (c *wtClient) close() {
	if c.used.Load() {
		// Only cancels session setups; it panics on a Transport never used.
		_ = c.tr.Close() // always nil
	}
}

// dial connects subscriber i over WebTransport and subscribes it, all
// within cfg.DialTimeout.
func (c *wtClient) dial(ctx context.Context, cfg *Config, i int, topics []string, hist *Histogram, base time.Time) (*subscriber, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	l, err := c.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s := &subscriber{topic: i % len(topics), wt: l, hist: hist, base: base}
	// This deadline covers the sub and its reply, and makes a cancelled
	// run give up at once.
	stop := context.AfterFunc(ctx, func() { l.str.SetDeadline(aLongTimeAgo) })
	err = s.subscribe(topics[s.topic])
	if !stop() && err == nil {
		// The deadline may have poisoned the stream after the reply.
		err = ctx.Err()
	}
	if err != nil {
		l.release()
		if ctx.Err() != nil && !s.subscribed && s.subErr == nil {
			err = fmt.Errorf("%w: %w", errNotSubscribed, ctx.Err())
		}
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return s, nil
}

// open sets up a QUIC connection on a UDP socket of its own, a session on
// it, and the session's stream.
func (c *wtClient) open(ctx context.Context) (*wtLink, error) {
	udp, err := net.ListenUDP("udp", c.local)
	if err != nil {
		return nil, err
	}
	l := &wtLink{udp: udp, qt: &quic.Transport{Conn: udp}}
	ok := false
	defer func() {
		if !ok {
			l.release()
		}
	}()
	l.qc, err = l.qt.DialEarly(ctx, c.addr, c.tlsConf.Clone(), c.quicConf)
	if err != nil {
		return nil, err
	}
	c.used.Store(true)
	cc, err := c.tr.NewClientConn(l.qc)
	if err != nil {
		return nil, err
	}
	rsp, sess, err := cc.Dial(ctx, c.url, nil)
	if err != nil {
		if rsp != nil {
			return nil, fmt.Errorf("the server answered %s: %w", rsp.Status, err)
		}
		return nil, err
	}
	l.sess = sess
	str, err := sess.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	// The server sees the stream at its first write: the sub.
	l.str = str
	l.lines = lineReader{src: str, max: maxMessageSize}
	ok = true
	return l, nil
}

// wtStream is the part of a *webtransport.Stream a subscriber uses.
type wtStream interface {
	io.ReadWriter
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// wtLink is one subscriber's WebTransport side: its UDP socket, QUIC
// transport and connection, session and stream. The reader goroutine owns
// lines and releases the rest when it ends.
type wtLink struct {
	udp   *net.UDPConn
	qt    *quic.Transport
	qc    *quic.Conn
	sess  *webtransport.Session
	str   wtStream
	lines lineReader
}

// release closes the session, the QUIC connection, the transport and the
// socket, whichever exist. Errors change nothing: everything goes.
func (l *wtLink) release() {
	if l.sess != nil {
		_ = l.sess.CloseWithError(0, "") // always nil
	}
	if l.qc != nil {
		_ = l.qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
	}
	if l.qt != nil {
		// Ends the transport's read loop; it does not close udp, which
		// it did not create.
		_ = l.qt.Close()
	}
	if l.udp != nil {
		_ = l.udp.Close()
	}
}

// lineReader reads NDJSON: each call returns every complete line received
// so far (at least one), however the lines were cut into reads.
type lineReader struct {
	src io.Reader
	max int // longest unfinished line
	// buf[:next] was returned by the last call; buf[next:end] holds data
	// not returned yet, without a newline.
	buf  []byte
	next int
	end  int
	err  error // what ended src, reported once the lines before it are out
}

// read returns complete lines, each with its "\n". The slice is valid until
// the next call.
func (r *lineReader) read() ([]byte, error) {
	if r.next > 0 {
		n := copy(r.buf, r.buf[r.next:r.end])
		r.next, r.end = 0, n
	}
	scan := r.end // buf[:end] holds no newline
	for {
		if r.err != nil {
			return nil, r.err
		}
		if r.end == len(r.buf) {
			if r.end >= r.max {
				return nil, errLineTooLong
			}
			nb := make([]byte, min(max(2*len(r.buf), wtReadBufferSize), r.max))
			copy(nb, r.buf[:r.end])
			r.buf = nb
		}
		n, err := r.src.Read(r.buf[r.end:])
		r.end += n
		if err != nil {
			r.err = err
		}
		if i := bytes.LastIndexByte(r.buf[scan:r.end], '\n'); i >= 0 {
			r.next = scan + i + 1
			return r.buf[:r.next], nil
		}
		scan = r.end
	}
}

// writeWT sends payload as one NDJSON line, as one Write so that lines of
// the reader and of Run never interleave.
func (s *subscriber) writeWT(op ws.OpCode, payload []byte, deadline time.Time) error {
	if op != ws.OpText {
		return fmt.Errorf("loadbench: no %v frame over webtransport", op)
	}
	line := make([]byte, 0, len(payload)+1)
	line = append(append(line, payload...), '\n')
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.wt.str.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := s.wt.str.Write(line)
	return err
}

// closeWT makes the reader end; it then closes the session (with code 0,
// graceful or not: that costs no wait) and everything under it.
func (s *subscriber) closeWT() {
	s.closing.Store(true)
	s.wt.str.SetReadDeadline(aLongTimeAgo)
}
