package sdk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/topicast/topicast/sdk/wire"
)

const (
	// wtKeepAlivePeriod keeps QUIC's idle timeout (30 s) from closing a
	// quiet session between the protocol's heartbeats.
	wtKeepAlivePeriod = 10 * time.Second
	// wtReadBufSize is a session's initial read buffer; it grows for long
	// lines, up to Config.MaxReadBytes.
	wtReadBufSize = 16 << 10
)

// wtDialer dials WebTransport sessions with github.com/quic-go/webtransport-go.
// Each session has its own QUIC connection, which its wtConn owns and
// closes. (tr.Close is never called: it would only cancel dials, which
// their ctx bounds already, and it panics on a Transport never used.)
type wtDialer struct {
	tr           *webtransport.Transport
	tlsConf      *tls.Config
	quicConf     *quic.Config
	header       http.Header
	dialTimeout  time.Duration
	writeTimeout time.Duration
	maxRead      int
}

func newWTDialer(cfg *Config) *wtDialer {
	tlsConf := new(tls.Config)
	if cfg.TLSConfig != nil {
		tlsConf = cfg.TLSConfig.Clone()
	}
	if cfg.CertHash != "" {
		want, _ := parseCertHash(cfg.CertHash) // validated with the Config
		// The pin replaces the checks of the chain and of the names, as
		// serverCertificateHashes does in browsers; VerifyConnection runs
		// on every handshake, resumed ones included.
		tlsConf.InsecureSkipVerify = true
		tlsConf.VerifyPeerCertificate = nil
		tlsConf.VerifyConnection = pinCertificate(want)
	}
	tlsConf.NextProtos = []string{http3.NextProtoH3}
	return &wtDialer{
		tr:      &webtransport.Transport{},
		tlsConf: tlsConf,
		quicConf: &quic.Config{
			// webtransport-go v0.13.0 refuses connections without both.
			EnableDatagrams:                  true,
			EnableStreamResetPartialDelivery: true,
			KeepAlivePeriod:                  wtKeepAlivePeriod,
		},
		header:       cfg.Header.Clone(),
		dialTimeout:  cfg.DialTimeout,
		writeTimeout: cfg.WriteTimeout,
		maxRead:      cfg.MaxReadBytes,
	}
}

func (d *wtDialer) dial(ctx context.Context, rawURL, _ string) (transportConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, rawURL, err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.dialTimeout)
	defer cancel()
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	tlsConf := d.tlsConf.Clone()
	if tlsConf.ServerName == "" {
		tlsConf.ServerName = u.Hostname()
	}
	qc, err := quic.DialAddrEarly(ctx, addr, tlsConf, d.quicConf)
	if err != nil {
		return nil, fmt.Errorf("webtransport dial %s: %w", rawURL, err)
	}
	c, err := d.open(ctx, qc, rawURL)
	if err != nil {
		_ = qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "") // the dial error is the one to report
		return nil, fmt.Errorf("webtransport dial %s: %w", rawURL, err)
	}
	return c, nil
}

// open starts a session on qc and opens the client's stream.
func (d *wtDialer) open(ctx context.Context, qc *quic.Conn, rawURL string) (*wtConn, error) {
	cc, err := d.tr.NewClientConn(qc)
	if err != nil {
		return nil, err
	}
	rsp, sess, err := cc.Dial(ctx, rawURL, d.header)
	if err != nil {
		if rsp != nil {
			return nil, fmt.Errorf("the server answered %s: %w", rsp.Status, err)
		}
		return nil, err
	}
	str, err := sess.OpenStreamSync(ctx)
	if err != nil {
		_ = sess.CloseWithError(0, "") // always nil
		return nil, err
	}
	// The server sees the stream only after its first write, and closes a
	// session without one after a while: an empty line, which receivers
	// ignore, makes it known at once.
	err = str.SetWriteDeadline(time.Now().Add(d.writeTimeout))
	if err == nil {
		_, err = str.Write([]byte{'\n'})
	}
	if err != nil {
		_ = sess.CloseWithError(0, "") // always nil
		return nil, err
	}
	c := &wtConn{
		qc:           qc,
		sess:         sess,
		str:          str,
		writeTimeout: d.writeTimeout,
		maxRead:      d.maxRead,
		buf:          make([]byte, min(wtReadBufSize, d.maxRead+1)),
	}
	c.dgCtx, c.dgCancel = context.WithCancel(context.Background())
	return c, nil
}

// wtConn is a client WebTransport session: NDJSON frames on one
// bidirectional stream, msg frames of datagram subscriptions in datagrams.
type wtConn struct {
	qc           *quic.Conn
	sess         *webtransport.Session
	str          *webtransport.Stream
	writeTimeout time.Duration
	maxRead      int
	// dgCtx ends readDatagram; abort cancels it.
	dgCtx     context.Context
	dgCancel  context.CancelFunc
	abortOnce sync.Once

	// Owned by the reader. buf[:next] was returned by the last readFrames;
	// buf[next:end] is data not returned yet, without a newline.
	buf  []byte
	next int
	end  int
	rerr error

	// wmu serializes writes; wbuf is guarded by it.
	wmu  sync.Mutex
	wbuf []byte
}

var (
	_ transportConn  = (*wtConn)(nil)
	_ datagramReader = (*wtConn)(nil)
)

// readFrames returns every complete line received, up to the last newline.
func (c *wtConn) readFrames() ([]byte, error) {
	if c.next > 0 {
		// Forget the lines returned last time.
		n := copy(c.buf, c.buf[c.next:c.end])
		c.next, c.end = 0, n
		if len(c.buf) > maxKeptReadBuf && n < wtReadBufSize {
			c.buf = append(make([]byte, 0, wtReadBufSize), c.buf[:n]...)[:wtReadBufSize]
		}
	}
	scan := c.end // buf[:end] holds no newline
	for {
		if c.rerr != nil {
			return nil, c.rerr
		}
		if c.end == len(c.buf) {
			// One unfinished line fills the buffer.
			if c.end > c.maxRead {
				return nil, ErrMessageTooLarge
			}
			nb := make([]byte, min(2*len(c.buf), c.maxRead+1))
			copy(nb, c.buf[:c.end])
			c.buf = nb
		}
		n, err := c.str.Read(c.buf[c.end:])
		c.end += n
		if err != nil {
			// Hand out what came before the error first.
			c.rerr = c.closeCause(err)
		}
		if i := bytes.LastIndexByte(c.buf[scan:c.end], '\n'); i >= 0 {
			c.next = scan + i + 1
			return c.buf[:c.next], nil
		}
		if c.end > c.maxRead {
			return nil, ErrMessageTooLarge
		}
		scan = c.end
	}
}

// closeCause turns the error that ended the stream into a *CloseError when
// the server closed the session with a protocol code.
func (c *wtConn) closeCause(err error) error {
	var se *webtransport.SessionError
	if !errors.As(err, &se) || !se.Remote {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("topicast: the server finished its webtransport stream: %w", io.ErrUnexpectedEOF)
		}
		return err
	}
	if se.ErrorCode == 0 || se.ErrorCode > math.MaxUint16 {
		// No protocol code: the server aborted the session.
		return fmt.Errorf("topicast: the server closed the webtransport session with code %d %q: %w",
			uint32(se.ErrorCode), se.Message, net.ErrClosed)
	}
	return &CloseError{Code: wire.DisconnectCode(se.ErrorCode), Reason: se.Message}
}

func (c *wtConn) writeFrames(frames [][]byte) error {
	n := len(frames)
	for _, f := range frames {
		n += len(f)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.wbuf[:0]
	if cap(b) < n {
		b = make([]byte, 0, n)
	}
	for _, f := range frames {
		b = append(b, f...)
		b = append(b, '\n')
	}
	err := c.str.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	if err == nil {
		_, err = c.str.Write(b)
	}
	if cap(b) <= maxKeptWriteBuf {
		c.wbuf = b[:0]
	} else {
		c.wbuf = nil
	}
	return err
}

// readDatagram returns the next datagram of the session.
func (c *wtConn) readDatagram() ([]byte, error) {
	return c.sess.ReceiveDatagram(c.dgCtx)
}

// sendClose closes the session with code: unlike a WebSocket close, a
// WebTransport session close ends the session at once, and its reader
// returns.
func (c *wtConn) sendClose(code wire.DisconnectCode, reason string) {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	_ = c.sess.CloseWithError(webtransport.SessionErrorCode(code), reason) // always nil
}

// abort closes the QUIC connection, which ends the session and its stream.
func (c *wtConn) abort() {
	c.abortOnce.Do(func() {
		c.dgCancel()
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "") // nothing to do if it fails
	})
}

// parseCertHash reads a hex SHA-256, with or without colons.
func parseCertHash(s string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != sha256.Size {
		return sum, fmt.Errorf("topicast: CertHash must be the hex SHA-256 of a certificate (64 hex digits), got %q", s)
	}
	copy(sum[:], b)
	return sum, nil
}

// pinCertificate accepts only a leaf certificate whose SHA-256 is want.
func pinCertificate(want [sha256.Size]byte) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("topicast: the server sent no certificate")
		}
		if got := sha256.Sum256(cs.PeerCertificates[0].Raw); got != want {
			return fmt.Errorf("topicast: the server's certificate has SHA-256 %x, not the pinned %x", got, want)
		}
		return nil
	}
}
