package wire

import (
	"fmt"
	"strings"
	"testing"
)

func BenchmarkAppendMsg(b *testing.B) {
	for _, size := range []int{100, 1000} {
		data := []byte(`{"p":"` + strings.Repeat("x", size-8) + `"}`)
		b.Run(fmt.Sprintf("size=%db", size), func(b *testing.B) {
			buf := make([]byte, 0, 2*size)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				buf = AppendMsg(buf[:0], "scores", "abcdefgh", 123456, 1764190000123, data)
			}
		})
	}
}

func BenchmarkDecodeCommand(b *testing.B) {
	for name, frame := range map[string]string{
		"sub":      `{"op":"sub","id":1,"topic":"scores","since":{"epoch":"abcdefgh","seq":41}}`,
		"pub=100b": `{"op":"pub","id":3,"topic":"chat","data":{"p":"` + strings.Repeat("x", 92) + `"}}`,
		"pong":     `{"op":"pong"}`,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeCommand([]byte(frame), 65536); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodePublishBody measures POST /v1/publish's body: the single
// message takes the fast path, the batch encoding/json (and the single
// message through encoding/json, for comparison).
func BenchmarkDecodePublishBody(b *testing.B) {
	data := `{"ts":1764763200000,"payload":"` + strings.Repeat("x", 60) + `"}`
	for name, body := range map[string]string{
		"single/size=100b":  `{"topic":"room.42","data":` + data + `}`,
		"batch=2/size=100b": `{"messages":[{"topic":"room.42","data":` + data + `},{"topic":"room.43","data":` + data + `}]}`,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := DecodePublishBody([]byte(body), 65536, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("single/size=100b/encoding-json", func(b *testing.B) {
		body := []byte(`{"topic":"room.42","data":` + data + `}`)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := decodePublishBodyJSON(body, 65536, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCursorAdvance measures what SSE and polling do per delivered
// msg frame: move a cursor of 8 topics past it.
func BenchmarkCursorAdvance(b *testing.B) {
	var c Cursor
	frames := make([][]byte, 8)
	for i := range frames {
		frames[i] = AppendMsg(nil, "topic."+string(rune('a'+i)), "k3x7q2ma", 1764190000, 1764190000123, []byte(`{"score":1234,"who":"someone"}`))
		c.Advance(frames[i])
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range frames {
			if !c.Advance(f) {
				b.Fatal("not advanced")
			}
		}
	}
}
