package loadbench

import (
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/topicast/topicast/sdk/wire"
)

const testSent = int64(1764190000123456789)

func TestParseMsg(t *testing.T) {
	benchData := appendData(nil, testSent, 100)
	tests := []struct {
		name  string
		frame string
		seq   uint64
		sent  int64
		ok    bool
	}{
		{
			name:  "server encoding",
			frame: string(wire.AppendMsg(nil, "bench.3", "e1", 58, 1764190000123, benchData)),
			seq:   58,
			sent:  testSent,
			ok:    true,
		},
		{
			name:  "a seq inside data does not fool it",
			frame: string(wire.AppendMsg(nil, "bench.0", "e1", 7, 1, []byte(`{"t":5,"seq":99}`))),
			seq:   7,
			sent:  5,
			ok:    true,
		},
		{
			name:  "ts is not t",
			frame: string(wire.AppendMsg(nil, "bench.0", "e1", 8, 1764190000123, []byte(`{"ts":12}`))),
			seq:   8,
			ok:    true,
		},
		{
			name:  "data of another publisher",
			frame: string(wire.AppendMsg(nil, "bench.0", "e1", 9, 1, []byte(`"hello"`))),
			seq:   9,
			ok:    true,
		},
		{
			name:  "largest seq",
			frame: string(wire.AppendMsg(nil, "bench.0", "e1", 1<<64-1, 1, benchData)),
			seq:   1<<64 - 1,
			sent:  testSent,
			ok:    true,
		},
		{
			name:  "no seq",
			frame: `{"op":"msg","topic":"a","data":{"t":1}}`,
		},
		{
			name:  "seq only inside data",
			frame: `{"op":"msg","topic":"a","data":{"seq":1}}`,
		},
		{
			name:  "seq overflows",
			frame: `{"op":"msg","seq":18446744073709551616,"data":{}}`,
		},
		{
			name:  "no data",
			frame: `{"op":"msg","seq":3}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, sent, ok := parseMsg([]byte(tt.frame))
			if seq != tt.seq || sent != tt.sent || ok != tt.ok {
				t.Fatalf("parseMsg(%s) = %d, %d, %v; want %d, %d, %v", tt.frame, seq, sent, ok, tt.seq, tt.sent, tt.ok)
			}
		})
	}
}

func TestParseMsgDoesNotAllocate(t *testing.T) {
	frame := wire.AppendMsg(nil, "bench.3", "e1", 58, 1764190000123, appendData(nil, testSent, 1024))
	if n := testing.AllocsPerRun(1000, func() {
		if string(frameOp(frame)) != wire.OpMsg {
			t.Fatal("not a msg")
		}
		if _, _, ok := parseMsg(frame); !ok {
			t.Fatal("not parsed")
		}
	}); n != 0 {
		t.Fatalf("parsing a msg frame allocates %v times", n)
	}
}

func TestFrameOp(t *testing.T) {
	for frame, want := range map[string]string{
		`{"op":"msg","seq":1}`:                     "msg",
		`{"op":"ping"}`:                            "ping",
		`{"id":1,"op":"ok"}`:                       "ok",
		`{"topic":"a"}`:                            "",
		`{"op":"unterminated`:                      "",
		string(wire.AppendOK(nil, 1)):              "ok",
		string(wire.AppendReset(nil, "a", "e", 0)): "reset",
	} {
		if got := string(frameOp([]byte(frame))); got != want {
			t.Errorf("frameOp(%s) = %q, want %q", frame, got, want)
		}
	}
}

func TestAppendData(t *testing.T) {
	for _, size := range []int{1, 10, 31, 32, 33, 100, 1000, 4096, MaxSize} {
		data := appendData(nil, testSent, size)
		minLen := len(appendData(nil, testSent, 0))
		if want := max(size, minLen); len(data) != want {
			t.Errorf("size %d: data is %d bytes, want %d", size, len(data), want)
		}
		var v struct {
			T int64  `json:"t"`
			P string `json:"p"`
		}
		if err := json.Unmarshal(data, &v); err != nil || v.T != testSent || strings.Trim(v.P, "x") != "" {
			t.Errorf("size %d: %s does not decode to t and padding: %v", size, data, err)
		}
	}
}

func TestAppendPublishBody(t *testing.T) {
	body := appendPublishBody(nil, "bench.7", testSent, 200)
	items, batch, err := wire.DecodePublishBody(body, MaxSize, false)
	if err != nil || batch || len(items) != 1 {
		t.Fatalf("DecodePublishBody(%s) = %v, %v, %v", body, items, batch, err)
	}
	if items[0].Topic != "bench.7" || len(items[0].Data) != 200 {
		t.Fatalf("decoded %q with %d bytes of data, want bench.7 with 200", items[0].Topic, len(items[0].Data))
	}
	frame := wire.AppendMsg(nil, items[0].Topic, "e", 1, 0, items[0].Data)
	if _, sent, ok := parseMsg(frame); !ok || sent != testSent {
		t.Fatalf("the delivery of the published body reads t = %d, %v", sent, ok)
	}
}

func TestErrorMessage(t *testing.T) {
	frame := wire.AppendError(nil, &wire.Error{Code: wire.CodeForbidden, ID: 1, Message: `no "id":2 here`})
	if got, want := errorMessage(frame), `forbidden: no "id":2 here`; got != want {
		t.Fatalf("errorMessage = %q, want %q", got, want)
	}
	if id, _ := uintAfter(envelope(frame), keyID); id != 1 {
		t.Fatalf("id of %s = %d, want 1", frame, id)
	}
}

// TestHandleFrames feeds a subscriber the frames of a session, several to a
// WebSocket message as the server batches them.
func TestHandleFrames(t *testing.T) {
	var h Histogram
	s := &subscriber{hist: &h, base: time.Now()}
	sent := time.Now().Add(-3 * time.Millisecond).UnixNano()
	data := appendData(nil, sent, 64)
	var msg []byte
	feed := func(frames ...[]byte) {
		msg = msg[:0]
		for i, f := range frames {
			if i > 0 {
				msg = append(msg, '\n')
			}
			msg = append(msg, f...)
		}
		wire.EachFrame(msg, s.handleFrame)
	}

	// A delivery before the sub reply cannot be accounted.
	feed(wire.AppendMsg(nil, "bench.0", "e", 41, 0, data))
	feed(wire.AppendSubOK(nil, 1, "bench.0", "e", 40, wire.RecoveryNone))
	if !s.subscribed || s.check.last != 40 {
		t.Fatalf("after the sub reply: subscribed %v, head %d", s.subscribed, s.check.last)
	}
	feed(
		wire.AppendMsg(nil, "bench.0", "e", 41, 0, data),
		wire.AppendMsg(nil, "bench.0", "e", 42, 0, data),
		wire.AppendMsg(nil, "bench.0", "e", 42, 0, data),
		wire.AppendMsg(nil, "bench.0", "e", 44, 0, data),
	)
	feed(wire.AppendMsg(nil, "bench.0", "e", 43, 0, data), []byte(`{"op":"pong"}`), []byte(`{"op":"future"}`))
	feed(wire.AppendReset(nil, "bench.0", "e2", 0))
	feed(wire.AppendMsg(nil, "bench.0", "e2", 1, 0, data))
	feed(wire.AppendError(nil, &wire.Error{Code: wire.CodeForbidden, Topic: "bench.0", Message: "token"}))

	c := s.check
	if c.delivered != 5 || c.duplicates != 1 || c.outOfOrder != 1 || c.gaps() != 0 {
		t.Fatalf("delivered %d, duplicates %d, out of order %d, gaps %d; want 5, 1, 1, 0",
			c.delivered, c.duplicates, c.outOfOrder, c.gaps())
	}
	if s.delivered.Load() != 5 || s.resets != 1 || s.badFrames != 1 || s.ended != "forbidden: token" {
		t.Fatalf("delivered %d, resets %d, bad frames %d, ended %q", s.delivered.Load(), s.resets, s.badFrames, s.ended)
	}
	if h.Count() != 5 || h.Quantile(0) < 3*time.Millisecond {
		t.Fatalf("latency: %d records, min %v; want 5 of at least 3ms", h.Count(), h.Quantile(0))
	}
}

func TestHandleFrameSubError(t *testing.T) {
	s := &subscriber{}
	wire.EachFrame(wire.AppendError(nil, &wire.Error{Code: wire.CodeForbidden, ID: 1, Message: "not allowed"}), s.handleFrame)
	if s.subscribed || s.subErr == nil || s.subErr.Error() != "forbidden: not allowed" {
		t.Fatalf("subscribed %v, sub error %v", s.subscribed, s.subErr)
	}
}

// TestHandleFramePing checks that a protocol ping is answered with a
// protocol pong in a masked client frame.
func TestHandleFramePing(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	s := &subscriber{conn: client}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer client.Close()
		s.handleFrame(wire.PingFrame)
	}()
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr, err := ws.ReadHeader(server)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	f := ws.Frame{Header: hdr, Payload: make([]byte, hdr.Length)}
	_, err = io.ReadFull(server, f.Payload)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	<-done
	if !f.Header.Masked || f.Header.OpCode != ws.OpText {
		t.Fatalf("answer header %+v, want a masked text frame", f.Header)
	}
	if got := string(ws.UnmaskFrameInPlace(f).Payload); got != string(wire.PongFrame) {
		t.Fatalf("answer %q, want %q", got, wire.PongFrame)
	}
}
