package testutil

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/topicast/topicast/sdk/wire"
)

// WSClient is a raw protocol client for end-to-end tests: it writes frames
// and hands every frame it reads to a callback, answering pings itself.
type WSClient struct {
	Conn net.Conn
	r    io.Reader
	// pending holds frames read by ReadUntil after the one it returned.
	pending [][]byte
	wmu     sync.Mutex
	done    chan struct{}
	// CloseCode is the server's close code, set when the reader ends.
	CloseCode   wire.DisconnectCode
	CloseReason string
	Err         error
}

// DialWS connects to url. With a non-zero rcvbuf the socket's receive buffer
// is set to it (a small one makes a slow reader fill up sooner; keep it at
// 128 KiB or more on loopback).
func DialWS(ctx context.Context, url string, rcvbuf int) (*WSClient, error) {
	d := ws.Dialer{Timeout: 10 * time.Second}
	if rcvbuf > 0 {
		// Set before connect, so the advertised window fits it: shrinking the
		// buffer of an open loopback connection below its MSS (64 KiB) stalls
		// it for good.
		nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}}
		d.NetDial = nd.DialContext
	}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	return &WSClient{Conn: conn, r: bufio.NewReaderSize(r, 32<<10), done: make(chan struct{})}, nil
}

// DialWSS connects to a wss:// url with conf (its RootCAs verify the
// server). Its Conn is the *tls.Conn, for the connection's state.
func DialWSS(ctx context.Context, url string, conf *tls.Config) (*WSClient, error) {
	d := ws.Dialer{Timeout: 10 * time.Second, TLSConfig: conf}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	return &WSClient{Conn: conn, r: bufio.NewReaderSize(r, 32<<10), done: make(chan struct{})}, nil
}

// Send writes one text message.
func (c *WSClient) Send(frame string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return wsutil.WriteClientText(c.Conn, []byte(frame))
}

// Read reads messages until the connection ends, calling fn with each frame
// (never a ping, which it answers). It records the close code.
func (c *WSClient) Read(fn func(frame []byte)) {
	defer close(c.done)
	for _, f := range c.pending {
		fn(f)
	}
	c.pending = nil
	rw := struct {
		io.Reader
		io.Writer
	}{c.r, lockedWriter{c}}
	for {
		msg, _, err := wsutil.ReadServerData(rw)
		if err != nil {
			var closed wsutil.ClosedError
			if errors.As(err, &closed) {
				c.CloseCode, c.CloseReason = wire.DisconnectCode(closed.Code), closed.Reason
			} else {
				c.Err = err
			}
			return
		}
		wire.EachFrame(msg, func(f []byte) {
			if bytes.Equal(f, wire.PingFrame) {
				_ = c.Send(string(wire.PongFrame)) // a dead connection ends the loop anyway
				return
			}
			fn(f)
		})
	}
}

// Done is closed when Read returns.
func (c *WSClient) Done() <-chan struct{} { return c.done }

// Close closes the connection abruptly.
func (c *WSClient) Close() error { return c.Conn.Close() }

type lockedWriter struct{ c *WSClient }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	return w.c.Conn.Write(b)
}

// Subscribe sends a sub and returns the ok frame, reading synchronously; it
// must be called before Read.
func (c *WSClient) Subscribe(topic string, id int, since *wire.Position) (Frame, error) {
	if err := c.Send(string(wire.AppendSub(nil, uint64(id), topic, since))); err != nil {
		return Frame{}, err
	}
	return c.ReadUntil(func(f Frame) bool { return f.ID == uint64(id) && (f.Op == "ok" || f.Op == "error") }, nil)
}

// ReadUntil reads frames synchronously until match returns true, and returns
// that frame; frames before it go to other (if not nil).
func (c *WSClient) ReadUntil(match func(Frame) bool, other func([]byte)) (Frame, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return Frame{}, err
	}
	defer c.Conn.SetReadDeadline(time.Time{})
	rw := struct {
		io.Reader
		io.Writer
	}{c.r, lockedWriter{c}}
	for {
		var msg []byte
		if len(c.pending) > 0 {
			msg = bytes.Join(c.pending, []byte("\n"))
			c.pending = nil
		} else {
			var err error
			if msg, _, err = wsutil.ReadServerData(rw); err != nil {
				return Frame{}, err
			}
		}
		var found *Frame
		wire.EachFrame(msg, func(f []byte) {
			if found != nil {
				c.pending = append(c.pending, bytes.Clone(f))
				return
			}
			var fr Frame
			if err := jsonUnmarshal(f, &fr); err == nil && match(fr) {
				fr.Raw = string(f)
				found = &fr
				return
			}
			if other != nil {
				other(f)
			}
		})
		if found != nil {
			return *found, nil
		}
	}
}

// MsgSeq extracts topic and seq from a msg frame without a full decode.
func MsgSeq(frame []byte) (topic string, seq uint64, ok bool) {
	h, ok := wire.ParseHead(frame)
	if !ok || h.Kind != wire.FrameMsg {
		return "", 0, false
	}
	return string(h.Topic), h.Seq, true
}

// SkipIfShort skips tests that need many connections or seconds under -short.
func SkipIfShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped with -short")
	}
}
