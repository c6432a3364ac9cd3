package websocket

import (
	"fmt"
	"io"
	"testing"
	"time"
)

// BenchmarkWriteFrames measures coalescing queued frames into one WebSocket
// message (without the system call: the connection discards).
func BenchmarkWriteFrames(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("frames=%d/size=100b", n), func(b *testing.B) {
			s := &session{conn: discardNetConn{}, timeout: time.Second}
			frames := make([][]byte, n)
			for i := range frames {
				frames[i] = make([]byte, 100)
			}
			b.ReportAllocs()
			b.SetBytes(int64(100 * n))
			for b.Loop() {
				if err := s.WriteFrames(frames); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type discardNetConn struct{ writerConn }

func (discardNetConn) Write(b []byte) (int, error) { return io.Discard.Write(b) }
