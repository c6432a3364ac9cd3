package wire

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFrameRoundTrip encodes every kind of server frame and checks that
// Kind and the parsers read back what went in: it fails when an encoder
// changes a frame's shape without its parser.
func TestFrameRoundTrip(t *testing.T) {
	t.Run("msg", func(t *testing.T) {
		for _, tc := range []struct {
			seq  uint64
			ts   int64
			data string
		}{
			{1, 1764190000123, `{"a":[1,"}"]}`},
			{0, 0, `null`},
			{math.MaxUint64, math.MaxInt64, `"x\"y"`},
			{42, math.MinInt64, `7`},
			{42, -5, `{}`},
		} {
			f := AppendMsg(nil, "scores:a/b", "k3x7q2ma", tc.seq, tc.ts, []byte(tc.data))
			require.Equal(t, FrameMsg, Kind(f))
			require.True(t, IsMsg(f))
			h, ok := ParseHead(f)
			require.True(t, ok, "%s", f)
			require.Equal(t, Head{Kind: FrameMsg, Topic: []byte("scores:a/b"), Epoch: []byte("k3x7q2ma"),
				Seq: tc.seq, TS: tc.ts, Data: []byte(tc.data)}, h)
			require.Equal(t, f, AppendMsg(nil, string(h.Topic), string(h.Epoch), h.Seq, h.TS, h.Data))
			_, ok = ParseOK(f)
			require.False(t, ok)
		}
	})
	t.Run("delta msg", func(t *testing.T) {
		delta := []byte("2E\n1a@0,3:\"é\\;2Xb1Ow;")
		require.True(t, ValidDelta(delta))
		f := AppendDeltaMsg(nil, "t", "e", 5, 7, delta)
		require.Equal(t, FrameMsg, Kind(f))
		h, ok := ParseHead(f)
		require.True(t, ok, "%s", f)
		require.True(t, h.Delta)
		require.Equal(t, uint64(5), h.Seq)
		var got string
		require.NoError(t, json.Unmarshal(h.Data, &got))
		require.Equal(t, string(delta), got)
		require.False(t, ValidDelta([]byte{'a', 0xc3}), "a character cut in two")
	})
	t.Run("reset", func(t *testing.T) {
		f := AppendReset(nil, "t", "e2", 9)
		require.Equal(t, FrameReset, Kind(f))
		require.False(t, IsMsg(f))
		h, ok := ParseHead(f)
		require.True(t, ok)
		require.Equal(t, Head{Kind: FrameReset, Topic: []byte("t"), Epoch: []byte("e2"), Seq: 9}, h)
	})
	t.Run("ok", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			frame []byte
			want  Reply
		}{
			{"sub", AppendSubOK(nil, 3, "t", "e", 57, RecoveryNone),
				Reply{ID: 3, Topic: []byte("t"), Epoch: []byte("e"), Seq: 57}},
			{"recovered", AppendSubOK(nil, 1, "t", "e", 0, Recovered),
				Reply{ID: 1, Topic: []byte("t"), Epoch: []byte("e"), Recovery: Recovered}},
			{"not recovered", AppendSubOK(nil, 1, "t", "e", 5, NotRecovered),
				Reply{ID: 1, Topic: []byte("t"), Epoch: []byte("e"), Seq: 5, Recovery: NotRecovered}},
			{"pub", AppendPubOK(nil, 8, "t", "e", 6), Reply{ID: 8, Topic: []byte("t"), Epoch: []byte("e"), Seq: 6}},
			{"plain", AppendOK(nil, 2), Reply{ID: 2}},
			{"no id", AppendOK(nil, 0), Reply{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				require.Equal(t, FrameOK, Kind(tc.frame))
				rep, ok := ParseOK(tc.frame)
				require.True(t, ok, "%s", tc.frame)
				require.Equal(t, tc.want, rep)
				_, ok = ParseHead(tc.frame)
				require.False(t, ok)
			})
		}
	})
	t.Run("error", func(t *testing.T) {
		for _, e := range []*Error{
			{Code: CodeBadRequest, Message: "bad topic \"x\"\n", ID: 4},
			{Code: CodeForbidden, Message: "", Topic: "sys:a"},
			{Code: CodeRateLimited, Message: "slow down \u2028 é"},
		} {
			f := AppendError(nil, e)
			require.Equal(t, FrameError, Kind(f))
			got, ok := ParseError(f)
			require.True(t, ok, "%s", f)
			require.Equal(t, e, got)
		}
	})
	t.Run("ping pong", func(t *testing.T) {
		require.Equal(t, FramePing, Kind(PingFrame))
		require.Equal(t, FramePong, Kind(PongFrame))
	})
	t.Run("other", func(t *testing.T) {
		for _, f := range []string{``, `{`, `{"op":"`, `{"op":"okay"}`, `{"op":"ok"`, `{"op":"error"}`,
			`{"op":"ping"} `, `{"op":"sub","id":1,"topic":"t"}`, `: keepalive`, `{"topic":"t","op":"msg"}`} {
			require.Equal(t, FrameOther, Kind([]byte(f)), f)
			require.False(t, IsMsg([]byte(f)), f)
		}
	})
}

func TestParseRefuses(t *testing.T) {
	for _, f := range []string{
		`{"op":"msg","topic":"t","epoch":"e","seq":01,"ts":1,"data":1}`,
		`{"op":"msg","topic":"t","epoch":"e","seq":1,"ts":-0,"data":1}`,
		`{"op":"msg","topic":"t","epoch":"e","seq":1,"ts":1,"data":}`,
		`{"op":"msg","topic":"t","epoch":"e","seq":18446744073709551616,"ts":1,"data":1}`,
		`{"op":"msg","topic":"t","epoch":"e","seq":1,"ts":9223372036854775808,"data":1}`,
		`{"op":"msg","topic":"t","seq":1,"epoch":"e","ts":1,"data":1}`,
		`{"op":"reset","topic":"t","epoch":"e","seq":1}x`,
		`{"op":"reset","topic":"t","epoch":"e"}`,
	} {
		_, ok := ParseHead([]byte(f))
		require.False(t, ok, f)
	}
	for _, f := range []string{`{"op":"ok","id":0}`, `{"op":"ok","topic":"t"}`, `{"op":"ok","id":1,"topic":"t","epoch":"e","seq":1,"recovered":1}`} {
		_, ok := ParseOK([]byte(f))
		require.False(t, ok, f)
	}
	for _, f := range []string{`{"op":"error","code":"x"}`, `{"op":"error","code":"x","message":"a}`, `{"op":"error","topic":t,"code":"x","message":""}`} {
		_, ok := ParseError([]byte(f))
		require.False(t, ok, f)
	}
	e, ok := ParseError([]byte(`{"op":"error","code":"what","message":"m"}`))
	require.True(t, ok)
	require.Equal(t, CodeInternal, e.Code)
}

func TestParseDoesNotAllocate(t *testing.T) {
	msg := AppendMsg(nil, "scores", "k3x7q2ma", 42, 1764190000123, []byte(`{"a":1}`))
	ok := AppendSubOK(nil, 1, "scores", "k3x7q2ma", 42, Recovered)
	var c Cursor
	require.True(t, c.Advance(msg))
	allocs := testing.AllocsPerRun(1000, func() {
		if Kind(msg) != FrameMsg || Kind(ok) != FrameOK {
			t.Fatal("kind")
		}
		if _, good := ParseHead(msg); !good {
			t.Fatal("head")
		}
		if _, good := ParseOK(ok); !good {
			t.Fatal("ok")
		}
		if !c.Advance(msg) {
			t.Fatal("advance")
		}
	})
	require.Zero(t, allocs)
}

func TestSubCommand(t *testing.T) {
	for _, since := range []*Position{nil, {Epoch: "k3x7q2ma", Seq: 41}} {
		cmd, err := SubCommand(3, "scores", since)
		require.NoError(t, err)
		want, err := DecodeCommand(AppendSub(nil, 3, "scores", since), 0)
		require.NoError(t, err)
		require.Equal(t, want, cmd)
		if since != nil {
			require.NotSame(t, since, cmd.Since)
		}
	}
	_, err := SubCommand(2, "bad topic", nil)
	require.Equal(t, CodeBadRequest, AsError(err).Code)
	require.Equal(t, uint64(2), AsError(err).ID)
}

// The fuzz targets below check that the frame parsers never panic and
// accept only what the encoders make: what they read encodes back to the
// same frame (msg, reset, ok) or to a frame that parses the same (error,
// whose strings may be spelt in more than one way).

func FuzzParseHead(f *testing.F) {
	f.Add(AppendMsg(nil, "scores", "k3x7q2ma", 42, 1764190000123, []byte(`{"a":1}`)))
	f.Add(AppendMsg(nil, "t", "e", 0, -1, []byte(`"}"`)))
	f.Add(AppendReset(nil, "t", "e2", 9))
	f.Add([]byte(`{"op":"msg","topic":"t","epoch":"e","seq":1,"ts":1,"data":}`))
	f.Add(AppendDeltaMsg(nil, "t", "e", 2, 1, []byte("9\n5@0,;")))
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, ok := ParseHead(frame)
		if !ok {
			return
		}
		var again []byte
		switch h.Kind {
		case FrameMsg:
			again = AppendMsg(nil, string(h.Topic), string(h.Epoch), h.Seq, h.TS, h.Data)
			if h.Delta {
				again = bytes.Replace(again, []byte(dataSep), []byte(deltaSep+dataSep), 1)
			}
		case FrameReset:
			again = AppendReset(nil, string(h.Topic), string(h.Epoch), h.Seq)
		default:
			t.Fatalf("kind %v", h.Kind)
		}
		if string(again) != string(frame) {
			t.Fatalf("parsed %q as %+v, which encodes to %q", frame, h, again)
		}
		if Kind(frame) != h.Kind {
			t.Fatalf("Kind(%q) = %v, ParseHead says %v", frame, Kind(frame), h.Kind)
		}
	})
}

func FuzzParseOK(f *testing.F) {
	f.Add(AppendSubOK(nil, 3, "t", "e", 57, Recovered))
	f.Add(AppendSubOK(nil, 1, "t", "e", 5, NotRecovered))
	f.Add(AppendPubOK(nil, 8, "t", "e", 6))
	f.Add(AppendOK(nil, 2))
	f.Add(AppendOK(nil, 0))
	f.Fuzz(func(t *testing.T, frame []byte) {
		rep, ok := ParseOK(frame)
		if !ok {
			return
		}
		var again []byte
		if rep.Topic == nil {
			again = AppendOK(nil, rep.ID)
		} else {
			again = AppendSubOK(nil, rep.ID, string(rep.Topic), string(rep.Epoch), rep.Seq, rep.Recovery)
		}
		if string(again) != string(frame) {
			t.Fatalf("parsed %q as %+v, which encodes to %q", frame, rep, again)
		}
		if Kind(frame) != FrameOK {
			t.Fatalf("Kind(%q) = %v", frame, Kind(frame))
		}
	})
}

func FuzzParseError(f *testing.F) {
	f.Add(AppendError(nil, &Error{Code: CodeBadRequest, Message: "bad \"x\"\n", ID: 4}))
	f.Add(AppendError(nil, &Error{Code: CodeForbidden, Topic: "sys:a"}))
	f.Add([]byte(`{"op":"error","code":"what","message":"\u0041\ud800"}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		e, ok := ParseError(frame)
		if !ok {
			return
		}
		again := AppendError(nil, e)
		e2, ok := ParseError(again)
		if !ok || *e2 != *e {
			t.Fatalf("parsed %q as %+v; its encoding %q parses as %+v", frame, e, again, e2)
		}
		if Kind(frame) != FrameError {
			t.Fatalf("Kind(%q) = %v", frame, Kind(frame))
		}
	})
}

func TestCloseFrame(t *testing.T) {
	for _, c := range []DisconnectCode{CloseNormal, CloseGoingAway, CloseTooLarge, CloseUnauthorized,
		CloseSlowConsumer, CloseProtocolError, CloseRateLimited} {
		f := AppendCloseFrame(nil, c, "why \"not\"")
		code, reason, ok := ParseCloseFrame(f)
		if !ok || code != c || reason != `why "not"` {
			t.Fatalf("%s: %q parsed as %v %q %v", c, f, code, reason, ok)
		}
		if e, ok := ParseError(f); !ok || e.ID != 0 || e.Topic != "" {
			t.Fatalf("%q is not an error frame without id and topic: %+v", f, e)
		}
	}
	for _, f := range []string{
		`{"op":"error","id":1,"code":"unauthorized","message":"x"}`,
		`{"op":"error","topic":"a","code":"unauthorized","message":"x"}`,
		`{"op":"error","code":"bad_request","message":"x"}`,
		`{"op":"error","code":"going_away","message":"x"} `,
	} {
		if c, _, ok := ParseCloseFrame([]byte(f)); ok {
			t.Fatalf("%s parsed as close %v", f, c)
		}
	}
	if _, ok := ParseDisconnectCode("code_4000"); ok {
		t.Fatal("code_4000 is no protocol close code")
	}
}

func FuzzParseCloseFrame(f *testing.F) {
	f.Add(AppendCloseFrame(nil, CloseSlowConsumer, "slow consumer: outbound queue full"))
	f.Add([]byte(`{"op":"error","code":"going_away","message":"\u0041"}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		code, reason, ok := ParseCloseFrame(frame)
		if !ok {
			return
		}
		again := AppendCloseFrame(nil, code, reason)
		c2, r2, ok := ParseCloseFrame(again)
		if !ok || c2 != code || r2 != reason {
			t.Fatalf("parsed %q as %v %q; its encoding %q parses as %v %q", frame, code, reason, again, c2, r2)
		}
	})
}
