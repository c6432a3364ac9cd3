package sdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/topicast/topicast/sdk/wire"
)

// transportDialer opens connections of one transport: WebSocket (ws://,
// wss://), WebTransport (https://, one bidirectional stream of NDJSON
// frames) or WebRTC (http:// or https:// ending in /v1/webrtc, data
// channels). dialerFor picks it by the URL. token, if not empty, is the
// client's token for this connection: it is sent in a hello frame first on
// the connection, and WebRTC also sends it with the offer.
type transportDialer interface {
	dial(ctx context.Context, url, token string) (transportConn, error)
}

// transportConn is one connection to a server. readFrames is called by one
// goroutine; writeFrames and sendClose may be called concurrently with it
// and with each other; abort may be called at any time, more than once.
type transportConn interface {
	// readFrames blocks for the next data from the server and returns one
	// or more frames separated by "\n" (wire.EachFrame splits them). The
	// slice is valid until the next call. A close from the server answers
	// a *CloseError.
	readFrames() ([]byte, error)
	// writeFrames sends frames, in order, as one unit, with the write
	// timeout.
	writeFrames(frames [][]byte) error
	// sendClose tells the server the client is leaving, best effort and
	// bounded in time; it does not close the connection.
	sendClose(code wire.DisconnectCode, reason string)
	// abort closes the connection at once; pending calls fail.
	abort()
}

// datagramReader is a transportConn that also receives datagrams
// (WebTransport datagrams, WebRTC's datagram channel). readDatagram is called by one goroutine, concurrently
// with the other methods.
type datagramReader interface {
	transportConn
	// readDatagram blocks for the next datagram, one msg frame without a
	// newline; the slice is the caller's. It fails once the connection is
	// aborted or closed.
	readDatagram() ([]byte, error)
}

// dialerFor returns the dialer of rawURL's scheme.
func (c *Client) dialerFor(rawURL string) (transportDialer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, rawURL, err)
	}
	switch {
	case u.Scheme == "ws" || u.Scheme == "wss":
		return c.ws, nil
	case isWebRTCURL(u):
		return c.rtc, nil
	case u.Scheme == "https":
		return c.wt, nil
	default:
		return nil, fmt.Errorf("%w %q", ErrUnsupportedURL, rawURL)
	}
}

// closeWriteTimeout bounds the write of a close frame.
const closeWriteTimeout = time.Second

// wsDialer dials WebSocket connections with github.com/gobwas/ws.
type wsDialer struct {
	d            ws.Dialer
	writeTimeout time.Duration
	maxRead      int64
}

func newWSDialer(cfg *Config) *wsDialer {
	d := ws.Dialer{Timeout: cfg.DialTimeout, TLSConfig: cfg.TLSConfig}
	if len(cfg.Header) > 0 {
		d.Header = ws.HandshakeHeaderHTTP(cfg.Header.Clone())
	}
	return &wsDialer{d: d, writeTimeout: cfg.WriteTimeout, maxRead: int64(cfg.MaxReadBytes)}
}

func (d *wsDialer) dial(ctx context.Context, rawURL, _ string) (transportConn, error) {
	nc, br, _, err := d.d.Dial(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("websocket dial %s: %w", rawURL, err)
	}
	var r io.Reader = nc
	if br != nil {
		// The server sent data right after the upgrade; read it first.
		r = io.MultiReader(br, nc)
	}
	return &wsConn{nc: nc, br: bufio.NewReaderSize(r, 4096), writeTimeout: d.writeTimeout, maxRead: d.maxRead}, nil
}

// wsConn is a client WebSocket connection. Frames are read by hand rather
// than with wsutil, so that control replies (pong, close) share the write
// lock with data writes and never interleave with them.
type wsConn struct {
	nc           net.Conn
	writeTimeout time.Duration
	maxRead      int64

	// Owned by the reader.
	br  *bufio.Reader
	msg bytes.Buffer

	// wmu serializes writes; wbuf is guarded by it.
	wmu  sync.Mutex
	wbuf []byte
}

var _ transportConn = (*wsConn)(nil)

var errWSProtocol = errors.New("topicast: websocket protocol error from the server")

// maxKeptReadBuf keeps a rare huge message from pinning its buffer.
const maxKeptReadBuf = 1 << 20

func (c *wsConn) readFrames() ([]byte, error) {
	if c.msg.Cap() > maxKeptReadBuf {
		c.msg = bytes.Buffer{}
	}
	c.msg.Reset()
	for {
		hdr, err := ws.ReadHeader(c.br)
		if err != nil {
			return nil, err
		}
		if hdr.OpCode.IsControl() {
			if hdr.Length > 125 || !hdr.Fin {
				return nil, errWSProtocol
			}
			var buf [125]byte
			payload := buf[:hdr.Length]
			if _, err := io.ReadFull(c.br, payload); err != nil {
				return nil, err
			}
			if hdr.Masked {
				ws.Cipher(payload, hdr.Mask, 0)
			}
			switch hdr.OpCode {
			case ws.OpPing:
				if err := c.writeControl(ws.OpPong, payload, c.writeTimeout); err != nil {
					return nil, err
				}
			case ws.OpClose:
				code, reason := ws.ParseCloseFrameData(payload)
				ce := &CloseError{Code: wire.DisconnectCode(code), Reason: reason}
				if code == 0 {
					ce.Code = closeNoStatus
				}
				// Echo the code, as RFC 6455 asks; the server closes the
				// connection after it.
				if code == 0 {
					_ = c.writeControl(ws.OpClose, nil, closeWriteTimeout) // best effort
				} else {
					c.sendClose(ce.Code, "")
				}
				return nil, ce
			}
			continue
		}
		if int64(c.msg.Len())+hdr.Length > c.maxRead {
			return nil, ErrMessageTooLarge
		}
		start := c.msg.Len()
		// Grow as bytes arrive, never on the length the peer announced.
		n, err := c.msg.ReadFrom(io.LimitReader(c.br, hdr.Length))
		if err != nil {
			return nil, err
		}
		if n < hdr.Length {
			return nil, io.ErrUnexpectedEOF
		}
		if hdr.Masked {
			ws.Cipher(c.msg.Bytes()[start:], hdr.Mask, 0)
		}
		if hdr.Fin {
			return c.msg.Bytes(), nil
		}
	}
}

// maxKeptWriteBuf bounds the write buffer kept between writes.
const maxKeptWriteBuf = 64 << 10

func (c *wsConn) writeFrames(frames [][]byte) error {
	n := len(frames) - 1
	for _, f := range frames {
		n += len(f)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	mask := ws.NewMask()
	b := appendClientHeader(c.wbuf[:0], ws.OpText, n, mask)
	start := len(b)
	for i, f := range frames {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, f...)
	}
	ws.Cipher(b[start:], mask, 0)
	err := c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	if err == nil {
		_, err = c.nc.Write(b)
	}
	if cap(b) <= maxKeptWriteBuf {
		c.wbuf = b[:0]
	} else {
		c.wbuf = nil
	}
	return err
}

func (c *wsConn) writeControl(op ws.OpCode, payload []byte, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	mask := ws.NewMask()
	b := appendClientHeader(make([]byte, 0, 6+len(payload)), op, len(payload), mask)
	start := len(b)
	b = append(b, payload...)
	ws.Cipher(b[start:], mask, 0)
	if err := c.nc.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(b)
	return err
}

func (c *wsConn) sendClose(code wire.DisconnectCode, reason string) {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	body := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	body = append(body, reason...)
	_ = c.writeControl(ws.OpClose, body, closeWriteTimeout) // best effort: the connection closes anyway
}

func (c *wsConn) abort() { _ = c.nc.Close() }

// appendClientHeader appends a final, masked frame header (client frames are
// always masked).
func appendClientHeader(b []byte, op ws.OpCode, n int, mask [4]byte) []byte {
	b = append(b, 0x80|byte(op))
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	return append(b, mask[:]...)
}
