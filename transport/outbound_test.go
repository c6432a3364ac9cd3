package transport

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/topicast/topicast/sdk/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConn records what the Outbound writes. gate, when set, blocks each
// WriteFrames until a value arrives.
type fakeConn struct {
	mu      sync.Mutex
	batches [][]string
	closed  *Disconnect
	aborted bool
	gate    chan struct{}
	err     error
	entered chan struct{}
}

func newFakeConn() *fakeConn { return &fakeConn{entered: make(chan struct{}, 100)} }

func (c *fakeConn) WriteFrames(frames [][]byte) error {
	c.entered <- struct{}{}
	if c.gate != nil {
		<-c.gate
	}
	c.record(frames)
	return c.err
}

func (c *fakeConn) record(frames [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := make([]string, len(frames))
	for i, f := range frames {
		b[i] = string(f)
	}
	c.batches = append(c.batches, b)
}

func (c *fakeConn) WriteClose(d Disconnect) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = &d
}

func (c *fakeConn) Abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aborted = true
}

func (c *fakeConn) snapshot() ([][]string, *Disconnect, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]string(nil), c.batches...), c.closed, c.aborted
}

func TestOutboundCoalescesWhatQueuesDuringAWrite(t *testing.T) {
	c := newFakeConn()
	c.gate = make(chan struct{})
	var o Outbound
	o.Init(c, OutboundConfig{})
	require.NoError(t, o.Write([]byte("a")))
	<-c.entered // the writer is inside the first write
	for _, f := range []string{"b", "c", "d"} {
		require.NoError(t, o.Write([]byte(f)))
	}
	require.NoError(t, o.WriteMany([][]byte{[]byte("e"), []byte("f")}))
	c.gate <- struct{}{}
	<-c.entered
	c.gate <- struct{}{}
	o.Close(DisconnectShutdown)
	o.Wait()
	batches, closed, _ := c.snapshot()
	require.Equal(t, [][]string{{"a"}, {"b", "c", "d", "e", "f"}}, batches)
	require.Equal(t, DisconnectShutdown, *closed)
	require.ErrorIs(t, context0(&o), DisconnectShutdown)
}

func context0(o *Outbound) error {
	<-o.Context().Done()
	return context.Cause(o.Context())
}

func TestOutboundCloseFlushesQueueFirst(t *testing.T) {
	c := newFakeConn()
	c.gate = make(chan struct{})
	var o Outbound
	o.Init(c, OutboundConfig{})
	require.NoError(t, o.Write([]byte("1")))
	<-c.entered
	require.NoError(t, o.Write([]byte("2")))
	o.Close(DisconnectShutdown)
	require.ErrorIs(t, o.Write([]byte("3")), ErrClosed)
	close(c.gate)
	o.Wait()
	batches, closed, _ := c.snapshot()
	require.Equal(t, [][]string{{"1"}, {"2"}}, batches)
	require.Equal(t, wire.CloseGoingAway, closed.Code)
}

func TestOutboundOverflowClosesSlowConsumer(t *testing.T) {
	c := newFakeConn()
	c.gate = make(chan struct{})
	var closedWith error
	var o Outbound
	o.Init(c, OutboundConfig{MaxPendingBytes: 100, OnClose: func(err error) { closedWith = err }})
	require.NoError(t, o.Write(make([]byte, 10)))
	<-c.entered // stuck in a write, like a client that does not read
	var err error
	for i := 0; i < 20 && err == nil; i++ {
		err = o.Write(make([]byte, 10))
	}
	require.Equal(t, DisconnectSlow, err)
	require.ErrorIs(t, o.Write([]byte("x")), ErrClosed)
	close(c.gate)
	o.Wait()
	batches, closed, _ := c.snapshot()
	require.Len(t, batches, 1, "the queue of a slow consumer is dropped, not written")
	require.Equal(t, wire.CloseSlowConsumer, closed.Code)
	require.Equal(t, DisconnectSlow, closedWith)
}

func TestOutboundWriteTimeoutIsSlowConsumer(t *testing.T) {
	c := newFakeConn()
	c.err = os.ErrDeadlineExceeded
	var o Outbound
	o.Init(c, OutboundConfig{})
	require.NoError(t, o.Write([]byte("x")))
	o.Wait()
	_, closed, aborted := c.snapshot()
	require.Nil(t, closed)
	require.True(t, aborted)
	require.Equal(t, DisconnectWriteSlow, context0(&o))
}

func TestOutboundFailAbortsAndKeepsCause(t *testing.T) {
	c := newFakeConn()
	var o Outbound
	o.Init(c, OutboundConfig{})
	boom := errors.New("read: connection reset")
	o.Fail(boom)
	o.Wait()
	_, _, aborted := c.snapshot()
	require.True(t, aborted)
	require.ErrorIs(t, context0(&o), boom)
}

func TestOutboundWriteDoesNotAllocate(t *testing.T) {
	c := newFakeConn()
	c.gate = make(chan struct{})
	var o Outbound
	o.Init(c, OutboundConfig{MaxPendingBytes: 1 << 30})
	frame := []byte(`{"op":"msg"}`)
	require.NoError(t, o.Write(frame))
	<-c.entered
	for range 1000 {
		require.NoError(t, o.Write(frame))
	}
	c.gate <- struct{}{} // first write done
	<-c.entered          // second write takes the 1000 queued frames
	c.gate <- struct{}{}
	// The queue's backing array is reused: a steady-state Write allocates
	// nothing while the writer is busy.
	for {
		if n, _ := o.Pending(); n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, o.Write(frame))
	<-c.entered
	allocs := testing.AllocsPerRun(500, func() { _ = o.Write(frame) })
	require.Zero(t, allocs)
	close(c.gate)
	o.Close(DisconnectNormal)
	o.Wait()
}

func TestKeepalivePingsQuietAndClosesSilentSessions(t *testing.T) {
	k := NewKeepalive(KeepaliveConfig{PingAfter: 30 * time.Millisecond, SilenceLimit: 200 * time.Millisecond, SweepEvery: 10 * time.Millisecond})
	defer k.Close()
	c := newFakeConn()
	var o Outbound
	o.Init(c, OutboundConfig{Keepalive: k})
	require.Equal(t, 1, k.Len())
	select {
	case <-o.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("silent session not closed")
	}
	o.Wait()
	batches, closed, _ := c.snapshot()
	require.NotEmpty(t, batches)
	require.Equal(t, []string{string(wire.PingFrame)}, batches[0])
	require.Equal(t, DisconnectSilent, *closed)
	require.Equal(t, 0, k.Len())
}

func TestKeepalivePingsBusySessionsWhoseClientIsQuiet(t *testing.T) {
	k := NewKeepalive(KeepaliveConfig{PingAfter: 30 * time.Millisecond, SilenceLimit: time.Hour, SweepEvery: 10 * time.Millisecond})
	defer k.Close()
	c := newFakeConn()
	var o Outbound
	o.Init(c, OutboundConfig{Keepalive: k})
	stop := time.After(300 * time.Millisecond)
	for pinged := false; !pinged; {
		select {
		case <-stop:
			t.Fatal("a busy session whose client sends nothing was never pinged")
		case <-time.After(2 * time.Millisecond):
		}
		require.NoError(t, o.Write([]byte(`{"op":"msg"}`)))
		batches, _, _ := c.snapshot()
		for _, b := range batches {
			for _, f := range b {
				pinged = pinged || f == string(wire.PingFrame)
			}
		}
	}
	o.Close(DisconnectNormal)
	o.Wait()
}

func TestOutboundOneBatchLargerThanTheBoundIsNotSlow(t *testing.T) {
	c := newFakeConn()
	var o Outbound
	o.Init(c, OutboundConfig{MaxPendingBytes: 100})
	big := [][]byte{make([]byte, 80), make([]byte, 80)}
	require.NoError(t, o.WriteMany(big), "a batch over the bound on an empty queue is delivered")
	o.Close(DisconnectNormal)
	o.Wait()
	batches, closed, _ := c.snapshot()
	require.Len(t, batches, 1)
	require.Equal(t, wire.CloseNormal, closed.Code)
}
