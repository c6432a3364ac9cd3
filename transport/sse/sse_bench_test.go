package sse

import (
	"strconv"
	"testing"

	"github.com/topicast/topicast/sdk/wire"
)

// BenchmarkAppendEvent measures the writer's work per frame: turning live
// msg frames into events with their cursor ids, and turning the answers to
// a stream's subs into its ready event.
func BenchmarkAppendEvent(b *testing.B) {
	const topics = 8
	newSession := func() *session {
		s := &session{maxHeld: 1 << 20, pos: make([]topicState, topics)}
		for i := range topics {
			s.topics = append(s.topics, "topic."+strconv.Itoa(i))
		}
		return s
	}
	oks := make([][]byte, topics)
	for i := range oks {
		oks[i] = wire.AppendSubOK(nil, uint64(i+1), "topic."+strconv.Itoa(i), "k3x7q2ma", 41, wire.NotRecovered)
	}
	b.Run("msg", func(b *testing.B) {
		s := newSession()
		var buf []byte
		for _, f := range oks {
			buf = s.appendEvent(buf[:0], f)
		}
		frames := make([][]byte, 64)
		n := 0
		for i := range frames {
			frames[i] = wire.AppendMsg(nil, s.topics[i%topics], "k3x7q2ma", uint64(42+i), 1764190000123, []byte(`{"score":1234,"who":"someone"}`))
			n += len(frames[i])
		}
		b.SetBytes(int64(n))
		b.ReportAllocs()
		for b.Loop() {
			buf = buf[:0]
			for _, f := range frames {
				buf = s.appendEvent(buf, f)
			}
		}
	})
	b.Run("ready", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			s := newSession()
			buf = buf[:0]
			for _, f := range oks {
				buf = s.appendEvent(buf, f)
			}
			if !s.ready {
				b.Fatal("not ready")
			}
		}
	})
}
