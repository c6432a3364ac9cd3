package test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	quicproxy "github.com/quic-go/quic-go/integrationtests/tools/proxy"
	"github.com/quic-go/webtransport-go"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// startWT runs a server with WebTransport on a free UDP port and returns
// it with its WebTransport URL and certificate hash, as /v1/info reports
// them.
func startWT(t *testing.T, cfg server.Config) (srv *server.Server, wtURL, certHash string) {
	t.Helper()
	cfg.WTAddr = "127.0.0.1:0"
	srv = startServer(t, cfg)
	info, ok := srv.Info().(server.Info)
	require.True(t, ok)
	require.NotNil(t, info.WebTransport)
	require.Equal(t, srv.WebTransportURL(), info.WebTransport.URL)
	return srv, info.WebTransport.URL, info.WebTransport.CertHash
}

// wtRaw is a raw WebTransport protocol client: it writes lines and reads
// frames, with no help from the SDK.
type wtRaw struct {
	sess *webtransport.Session
	str  *webtransport.Stream
	br   *bufio.Reader
}

// dialWTRaw opens a session and its stream, pinning certHash. The server
// sees the stream only once something is written on it: first is written
// at once if not empty.
func dialWTRaw(t *testing.T, wtURL, certHash, first string) *wtRaw {
	t.Helper()
	want, err := hex.DecodeString(certHash)
	require.NoError(t, err)
	tr := &webtransport.Transport{
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, // pinned below instead
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return errors.New("no certificate")
				}
				if sum := sha256.Sum256(raw[0]); string(sum[:]) != string(want) {
					return errors.New("certificate hash mismatch")
				}
				return nil
			},
			NextProtos: []string{http3.NextProtoH3},
		},
		QUICConfig: &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, sess, err := tr.Dial(ctx, wtURL, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sess.CloseWithError(0, "") }) // always nil
	str, err := sess.OpenStreamSync(ctx)
	require.NoError(t, err)
	c := &wtRaw{sess: sess, str: str, br: bufio.NewReaderSize(str, 128<<10)}
	if first != "" {
		c.send(t, first)
	}
	return c
}

// send writes line and its newline.
func (c *wtRaw) send(t *testing.T, line string) {
	t.Helper()
	_, err := c.str.Write([]byte(line + "\n"))
	require.NoError(t, err)
}

// readFrame reads the next non-empty line, answering pings.
func (c *wtRaw) readFrame() ([]byte, error) {
	if err := c.str.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return nil, err
	}
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		line = line[:len(line)-1]
		switch {
		case len(line) == 0:
		case string(line) == string(wire.PingFrame):
			if _, err := c.str.Write(append(wire.PongFrame, '\n')); err != nil {
				return nil, err
			}
		default:
			return line, nil
		}
	}
}

// readUntil reads frames until match accepts one, and returns it.
func (c *wtRaw) readUntil(t *testing.T, match func(testutil.Frame) bool) testutil.Frame {
	t.Helper()
	for {
		f, err := c.readFrame()
		require.NoError(t, err)
		if fr := testutil.Decode(t, f); match(fr) {
			return fr
		}
	}
}

// closeCode reads until the session ends and returns its error code.
func (c *wtRaw) closeCode(t *testing.T) wire.DisconnectCode {
	t.Helper()
	for {
		_, err := c.readFrame()
		if err == nil {
			continue
		}
		var se *webtransport.SessionError
		require.ErrorAs(t, err, &se)
		require.True(t, se.Remote)
		return wire.DisconnectCode(se.ErrorCode)
	}
}

// lossyRelay forwards UDP between clients and a server on loopback (with
// quic-go's test proxy), dropping packets at random and delaying them.
type lossyRelay struct {
	proxy *quicproxy.Proxy
	// lossPPM is the share of packets dropped in each direction, in
	// millionths.
	lossPPM atomic.Int64
	// cutUp drops every packet from clients to the server, cutDown every
	// packet from the server to clients.
	cutUp, cutDown atomic.Bool

	dropped, forwarded atomic.Int64
}

// newLossyRelay relays to the server of wtURL, dropping loss (0 to 1) of
// the packets both ways and delaying each by delay one way.
func newLossyRelay(t *testing.T, wtURL string, loss float64, delay time.Duration) *lossyRelay {
	t.Helper()
	u, err := url.Parse(wtURL)
	require.NoError(t, err)
	return newLossyUDPRelay(t, u.Host, loss, delay)
}

// newLossyUDPRelay relays to the UDP address addr (host:port) as
// newLossyRelay does.
func newLossyUDPRelay(t *testing.T, addr string, loss float64, delay time.Duration) *lossyRelay {
	t.Helper()
	serverAddr, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	r := &lossyRelay{}
	r.lossPPM.Store(int64(loss * 1e6))
	r.proxy = &quicproxy.Proxy{
		Conn:       conn,
		ServerAddr: serverAddr,
		DropPacket: func(dir quicproxy.Direction, _, _ net.Addr, _ []byte) bool {
			drop := rand.Int64N(1e6) < r.lossPPM.Load() ||
				(dir == quicproxy.DirectionIncoming && r.cutUp.Load()) ||
				(dir == quicproxy.DirectionOutgoing && r.cutDown.Load())
			if drop {
				r.dropped.Add(1)
			} else {
				r.forwarded.Add(1)
			}
			return drop
		},
	}
	if delay > 0 {
		r.proxy.DelayPacket = func(quicproxy.Direction, net.Addr, net.Addr, []byte) time.Duration { return delay }
	}
	require.NoError(t, r.proxy.Start())
	t.Cleanup(func() {
		require.NoError(t, r.proxy.Close())
		require.NoError(t, conn.Close())
	})
	return r
}

// url returns the WebTransport URL of the server through the relay.
func (r *lossyRelay) url() string {
	return fmt.Sprintf("https://%s/wt", r.proxy.LocalAddr())
}
