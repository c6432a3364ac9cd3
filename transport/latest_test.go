package transport

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// A latest-value topic keeps at most its newest frame in the queue while the
// writer is busy, in the place of the first one, and its volume never
// closes the session; the bytes of replaced frames are released.
func TestOutboundLatestKeepsNewestInPlace(t *testing.T) {
	c := newFakeConn()
	c.gate = make(chan struct{})
	node := new(NodeState)
	var o Outbound
	o.Init(c, OutboundConfig{MaxPendingBytes: 100, NodeState: node})
	require.NoError(t, o.Write([]byte("first")))
	<-c.entered // the writer is stuck: the client does not read
	require.NoError(t, o.Write([]byte("x1")))
	for i := range 1000 { // 1000 x 6 bytes: far over the 100-byte bound
		require.NoError(t, o.WriteLatest("cpu", fmt.Appendf(nil, "cpu%03d", i)))
		require.NoError(t, o.WriteLatest("mem", fmt.Appendf(nil, "mem%03d", i)))
	}
	require.NoError(t, o.Write([]byte("x2")))
	frames, bytes := o.Pending()
	require.Equal(t, 4, frames)
	require.Equal(t, len("x1cpu999mem999x2"), bytes)
	require.Equal(t, int64(len("x1cpu999mem999x2")), node.PendingBytes()-int64(len("first")))
	require.Equal(t, uint64(2*999), node.Metrics.Conflated.Load())

	c.gate <- struct{}{}
	<-c.entered // the second batch took the queue: the next latest frame queues anew
	require.NoError(t, o.WriteLatest("cpu", []byte("cpu-new")))
	c.gate <- struct{}{}
	<-c.entered
	c.gate <- struct{}{}
	o.Close(DisconnectShutdown)
	o.Wait()
	batches, closed, _ := c.snapshot()
	require.Equal(t, [][]string{{"first"}, {"x1", "cpu999", "mem999", "x2"}, {"cpu-new"}}, batches)
	require.Equal(t, DisconnectShutdown, *closed)
	require.Zero(t, node.PendingBytes())
}

// A barrier (a reset) keeps its place: the topic's next message queues
// after it instead of replacing the one ahead of it.
func TestOutboundLatestBarrier(t *testing.T) {
	c := newFakeConn()
	c.gate = make(chan struct{})
	var o Outbound
	o.Init(c, OutboundConfig{})
	require.NoError(t, o.Write([]byte("first")))
	<-c.entered
	require.NoError(t, o.WriteLatest("t", []byte("old1")))
	require.NoError(t, o.WriteLatest("t", []byte("old2")))
	require.NoError(t, o.WriteLatestBarrier("t", []byte("reset")))
	require.NoError(t, o.WriteLatest("t", []byte("new1")))
	require.NoError(t, o.WriteLatest("t", []byte("new2")))
	c.gate <- struct{}{}
	<-c.entered
	c.gate <- struct{}{}
	o.Close(DisconnectShutdown)
	o.Wait()
	batches, _, _ := c.snapshot()
	require.Equal(t, [][]string{{"first"}, {"old2", "reset", "new2"}}, batches)
}

// Frames that are not latest-value ones still close a slow consumer, and
// the queue (latest frames included) is dropped with it.
func TestOutboundLatestDoesNotHideSlowConsumer(t *testing.T) {
	c := newFakeConn()
	c.gate = make(chan struct{})
	node := new(NodeState)
	var o Outbound
	o.Init(c, OutboundConfig{MaxPendingBytes: 100, NodeState: node})
	require.NoError(t, o.Write([]byte("first")))
	<-c.entered
	require.NoError(t, o.WriteLatest("t", make([]byte, 50)))
	require.NoError(t, o.Write(make([]byte, 40)))
	require.Equal(t, DisconnectSlow, o.Write(make([]byte, 40)))
	require.ErrorIs(t, o.WriteLatest("t", []byte("late")), ErrClosed)
	close(c.gate)
	o.Wait()
	require.Zero(t, node.PendingBytes())
}
