package transport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk/wire"
)

// TestNodeStatesShareNothing writes to sessions of two nodes: each node's
// backlog, counters and pooled writers see its own sessions only.
func TestNodeStatesShareNothing(t *testing.T) {
	var a, b NodeState
	stuck := newFakeConn() // a's session: its write waits for the gate
	stuck.gate = make(chan struct{})
	var onA Outbound
	onA.Init(stuck, OutboundConfig{NodeState: &a})
	pooled := &nbConn{fakeConn: *newFakeConn()} // b's session, pooled
	var onB Outbound
	onB.Init(pooled, OutboundConfig{NodeState: &b})

	msg := wire.AppendMsg(nil, "t", "e", 1, time.Now().UnixMilli(), []byte(`{}`))
	require.NoError(t, onA.Write(msg))
	<-stuck.entered
	require.NoError(t, onA.Write(msg)) // queued behind the write under way
	require.NoError(t, onB.Write(msg))
	require.Eventually(t, func() bool { return b.Metrics.Deliveries.Load() == 1 }, 5*time.Second, time.Millisecond)

	require.Equal(t, int64(2*len(msg)), a.PendingBytes(), "a's backlog: the batch being written and the one queued")
	require.Zero(t, b.PendingBytes())
	require.Zero(t, a.Metrics.Deliveries.Load())
	a.writers.mu.Lock()
	require.Zero(t, a.writers.max, "a's pool wrote b's session")
	a.writers.mu.Unlock()

	stuck.gate <- struct{}{}
	stuck.gate <- struct{}{}
	require.Eventually(t, func() bool { return a.Metrics.Deliveries.Load() == 2 }, 5*time.Second, time.Millisecond)
	require.Zero(t, a.PendingBytes())
	require.Equal(t, uint64(1), b.Metrics.Deliveries.Load())
	close(stuck.gate)
	for _, o := range []*Outbound{&onA, &onB} {
		o.Close(DisconnectNormal)
		o.Wait()
	}
}

// TestOutboundWithoutNodeState gives each session that names no node a
// NodeState of its own.
func TestOutboundWithoutNodeState(t *testing.T) {
	var o1, o2 Outbound
	o1.Init(newFakeConn(), OutboundConfig{})
	o2.Init(newFakeConn(), OutboundConfig{})
	require.NotNil(t, o1.node)
	require.NotSame(t, o1.node, o2.node)
	for _, o := range []*Outbound{&o1, &o2} {
		o.Close(DisconnectNormal)
		o.Wait()
	}
}
