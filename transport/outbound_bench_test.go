package transport

import (
	"fmt"
	"testing"
)

// discardConn writes nothing; it measures the queue and writer alone.
type discardConn struct{}

func (discardConn) WriteFrames([][]byte) error { return nil }
func (discardConn) WriteClose(Disconnect)      {}
func (discardConn) Abort()                     {}

// BenchmarkOutboundWrite measures queueing one shared frame and the writer
// that drains the queue, per frame.
func BenchmarkOutboundWrite(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("size=%db", size), func(b *testing.B) {
			var o Outbound
			o.Init(discardConn{}, OutboundConfig{MaxPendingBytes: 1 << 30})
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
