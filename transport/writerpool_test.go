package transport

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// nbConn is a NonblockingConn whose socket "fills" on every partialEvery-th
// write: that write returns a finish that waits for gate (when set).
type nbConn struct {
	fakeConn
	partialEvery int
	tries        int // owned by the session's writer
	finishGate   chan struct{}
	tryErr       error
}

func (c *nbConn) TryWriteFrames(frames [][]byte) (func() error, error) {
	c.tries++
	if c.tryErr != nil {
		return nil, c.tryErr
	}
	if c.partialEvery > 0 && c.tries%c.partialEvery == 0 {
		kept := make([][]byte, len(frames))
		copy(kept, frames) // the Outbound keeps the batch until finish returns
		return func() error {
			if c.finishGate != nil {
				<-c.finishGate
			}
			c.record(kept)
			return nil
		}, nil
	}
	c.record(frames)
	return nil, nil
}

func TestPooledWritersKeepEverySessionInOrder(t *testing.T) {
	const sessions, frames = 300, 200
	conns := make([]*nbConn, sessions)
	outs := make([]*Outbound, sessions)
	node := new(NodeState)
	for i := range conns {
		conns[i] = &nbConn{fakeConn: *newFakeConn(), partialEvery: i%7 + 1}
		outs[i] = new(Outbound)
		outs[i].Init(conns[i], OutboundConfig{MaxPendingBytes: 1 << 30, NodeState: node})
	}
	// Two publishers write to every session at once, as relays do: each
	// session must get each publisher's frames in its order, none lost.
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Go(func() {
			for f := range frames {
				for _, o := range outs {
					require.NoError(t, o.Write([]byte(fmt.Sprintf("%d-%d", p, f))))
				}
			}
		})
	}
	wg.Wait()
	for _, o := range outs {
		o.Close(DisconnectShutdown)
	}
	for i, o := range outs {
		o.Wait()
		batches, closed, _ := conns[i].snapshot()
		require.Equal(t, DisconnectShutdown, *closed)
		next := [2]int{}
		for _, b := range batches {
			for _, f := range b {
				var p, n int
				_, err := fmt.Sscanf(f, "%d-%d", &p, &n)
				require.NoError(t, err)
				require.Equal(t, next[p], n, "session %d, publisher %d", i, p)
				next[p]++
			}
		}
		require.Equal(t, [2]int{frames, frames}, next, "session %d", i)
	}
	require.Zero(t, node.PendingBytes())
}

func TestPooledWriterFinishesAFullSocketBeforeTheClose(t *testing.T) {
	c := &nbConn{fakeConn: *newFakeConn(), partialEvery: 1, finishGate: make(chan struct{})}
	var o Outbound
	o.Init(c, OutboundConfig{})
	require.NoError(t, o.Write([]byte("a")))
	for i := range 3 {
		require.NoError(t, o.Write([]byte(strconv.Itoa(i))))
	}
	o.Close(DisconnectShutdown)
	close(c.finishGate)
	o.Wait()
	batches, closed, aborted := c.snapshot()
	var got []string
	for _, b := range batches {
		got = append(got, b...)
	}
	require.Equal(t, []string{"a", "0", "1", "2"}, got)
	require.Equal(t, DisconnectShutdown, *closed)
	require.False(t, aborted)
}

func TestPooledWriterErrorAbortsTheSession(t *testing.T) {
	c := &nbConn{fakeConn: *newFakeConn(), tryErr: errors.New("broken pipe")}
	var o Outbound
	node := new(NodeState)
	o.Init(c, OutboundConfig{NodeState: node})
	require.NoError(t, o.Write([]byte("a")))
	o.Wait()
	_, _, aborted := c.snapshot()
	require.True(t, aborted)
	require.EqualError(t, context0(&o), "broken pipe")
	require.ErrorIs(t, o.Write([]byte("b")), ErrClosed)
	require.Zero(t, node.PendingBytes())
}
