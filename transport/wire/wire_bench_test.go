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
