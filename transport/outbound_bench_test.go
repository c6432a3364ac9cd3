package transport

import (
	"fmt"
	"runtime"
	"testing"
)

// discardConn writes nothing; it measures the queue and writer alone.
type discardConn struct{}

func (discardConn) WriteFrames([][]byte) error { return nil }
func (discardConn) WriteClose(Disconnect)      {}
func (discardConn) Abort()                     {}

// discardNonblockingConn is a discardConn the pooled writers serve.
type discardNonblockingConn struct{ discardConn }

func (discardNonblockingConn) TryWriteFrames([][]byte) (func() error, error) { return nil, nil }

// BenchmarkOutboundWrite measures queueing one shared frame and the writer
// that drains the queue, per frame: writer=own is a goroutine per session
// while it has something to write, writer=pooled the node's pool.
func BenchmarkOutboundWrite(b *testing.B) {
	conns := []struct {
		name string
		conn Conn
	}{{"own", discardConn{}}, {"pooled", discardNonblockingConn{}}}
	for _, c := range conns {
		for _, size := range []int{100, 1000} {
			b.Run(fmt.Sprintf("writer=%s/size=%db", c.name, size), func(b *testing.B) {
				var o Outbound
				o.Init(c.conn, OutboundConfig{MaxPendingBytes: 1 << 30})
				frame := make([]byte, size)
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					if err := o.Write(frame); err != nil {
						b.Fatal(err)
					}
				}
				o.Close(DisconnectNormal)
				o.Wait()
			})
		}
	}
}

// BenchmarkFanOutToSessions measures one frame written to many sessions,
// as a relay does, until every session's writer has taken it: per publish.
func BenchmarkFanOutToSessions(b *testing.B) {
	for _, subs := range []int{1000, 10000} {
		for _, c := range []struct {
			name string
			conn Conn
		}{{"own", discardConn{}}, {"pooled", discardNonblockingConn{}}} {
			b.Run(fmt.Sprintf("subs=%d/writer=%s", subs, c.name), func(b *testing.B) {
				outs := make([]Outbound, subs)
				node := new(NodeState)
				for i := range outs {
					outs[i].Init(c.conn, OutboundConfig{MaxPendingBytes: 1 << 30, NodeState: node})
				}
				frame := make([]byte, 100)
				b.ReportAllocs()
				for b.Loop() {
					for i := range outs {
						if err := outs[i].Write(frame); err != nil {
							b.Fatal(err)
						}
					}
					for node.PendingBytes() > 0 {
						runtime.Gosched() // the cost of a publish includes the writers'
					}
				}
				for i := range outs {
					outs[i].Close(DisconnectNormal)
				}
				for i := range outs {
					outs[i].Wait()
				}
			})
		}
	}
}
