package loadbench

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Server frames are read with byte searches instead of encoding/json: at a
// million deliveries a second, a full Unmarshal per delivery would make the
// bench measure its own parser. The searches rely on the server's encoding
// (wire.AppendMsg): "op" first, then topic, epoch, seq and ts, and "data"
// last. Topic and epoch are names without quotes, so a key pattern cannot
// match inside them; inside data it can, so keys of the envelope are looked
// up before "data" only.

var (
	keyOp   = []byte(`"op":"`)
	keyID   = []byte(`"id":`)
	keySeq  = []byte(`"seq":`)
	keyData = []byte(`"data":`)
	keyT    = []byte(`"t":`)
)

// frameOp returns the value of the frame's "op", or nil.
func frameOp(frame []byte) []byte {
	i := bytes.Index(frame, keyOp)
	if i < 0 {
		return nil
	}
	rest := frame[i+len(keyOp):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// envelope returns the part of a frame before its "data", where the keys of
// the frame itself are.
func envelope(frame []byte) []byte {
	if i := bytes.Index(frame, keyData); i >= 0 {
		return frame[:i]
	}
	return frame
}

// uintAfter parses the unsigned integer that follows key in b.
func uintAfter(b, key []byte) (uint64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n == 0 || n > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b[:n] {
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseMsg reads a msg frame: its seq, and the scheduled send time (Unix
// nanoseconds) that the bench put in data as "t". ok is false when the frame
// has no seq; sentNanos is 0 when data carries no "t" (a message the bench
// did not publish).
func parseMsg(frame []byte) (seq uint64, sentNanos int64, ok bool) {
	i := bytes.Index(frame, keyData)
	if i < 0 {
		return 0, 0, false
	}
	seq, ok = uintAfter(frame[:i], keySeq)
	if !ok {
		return 0, 0, false
	}
	if t, tok := uintAfter(frame[i+len(keyData):], keyT); tok && t <= 1<<63-1 {
		sentNanos = int64(t)
	}
	return seq, sentNanos, true
}

// errorMessage returns "code: message" of an error frame, for the report.
// Error frames are rare, so they get a real decoder.
func errorMessage(frame []byte) string {
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(frame, &e) != nil {
		return string(frame)
	}
	return e.Code + ": " + e.Message
}

// padding is appended in chunks: a byte at a time would cost more than the
// publish itself at 64 KiB.
const padding = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

// appendData appends the data of one bench message: {"t":<sentNanos>,"p":"xx…"}
// padded with x so that it is size bytes long, or as short as the timestamp
// allows.
func appendData(dst []byte, sentNanos int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"t":`...)
	dst = strconv.AppendInt(dst, sentNanos, 10)
	dst = append(dst, `,"p":"`...)
	for pad := size - (len(dst) - start) - len(`"}`); pad > 0; {
		n := min(pad, len(padding))
		dst = append(dst, padding[:n]...)
		pad -= n
	}
	return append(dst, `"}`...)
}
