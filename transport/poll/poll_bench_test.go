package poll

import (
	"strconv"
	"testing"

	"github.com/topicast/topicast/sdk/wire"
)

// BenchmarkCollect measures what a waiting poll does with each live frame:
// pick the msg frames of its topics and move its cursor past them.
func BenchmarkCollect(b *testing.B) {
	const topics = 8
	p := &poll{}
	for i := range topics {
		p.topics = append(p.topics, "topic."+strconv.Itoa(i))
		if err := p.cur.Set(p.topics[i], wire.Position{Epoch: "k3x7q2ma", Seq: 41}); err != nil {
			b.Fatal(err)
		}
	}
	frames := make([][]byte, 64)
	n := 0
	for i := range frames {
		frames[i] = wire.AppendMsg(nil, p.topics[i%topics], "k3x7q2ma", uint64(42+i), 1764190000123, []byte(`{"score":1234,"who":"someone"}`))
		n += len(frames[i])
	}
	broken := make([]bool, topics)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		p.messages = p.messages[:0]
		p.collect(frames, broken)
	}
}
