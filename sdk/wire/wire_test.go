package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecodeCommand(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  *Command
		code  ErrorCode
		id    uint64
	}{
		{"sub", `{"op":"sub","id":1,"topic":"scores"}`, &Command{Op: OpSub, ID: 1, Topic: "scores"}, 0, 0},
		{"sub since", `{"op":"sub","id":1,"topic":"s","since":{"epoch":"e","seq":41}}`,
			&Command{Op: OpSub, ID: 1, Topic: "s", Since: &Position{Epoch: "e", Seq: 41}}, 0, 0},
		{"sub datagram", `{"op":"sub","id":1,"topic":"pos","delivery":"datagram"}`, &Command{Op: OpSub, ID: 1, Topic: "pos", Datagram: true}, 0, 0},
		{"sub latest", `{"op":"sub","id":1,"topic":"cpu","mode":"latest"}`, &Command{Op: OpSub, ID: 1, Topic: "cpu", Latest: true}, 0, 0},
		{"sub delta", `{"op":"sub","id":1,"topic":"board","delta":"fossil"}`, &Command{Op: OpSub, ID: 1, Topic: "board", Delta: true}, 0, 0},
		{"unknown fields ignored", `{"op":"ping","x":{"y":[1]}}`, &Command{Op: OpPing}, 0, 0},
		{"pub compacts", `{"op":"pub","id":3,"topic":"chat","data":{ "b" : 1, "a" : [ 1 ] }}`,
			&Command{Op: OpPub, ID: 3, Topic: "chat", Data: []byte(`{"b":1,"a":[1]}`)}, 0, 0},
		{"hello", `{"op":"hello","id":1,"token":"t"}`, &Command{Op: OpHello, ID: 1, Token: "t"}, 0, 0},
		{"max seq", `{"op":"sub","topic":"s","since":{"epoch":"e","seq":18446744073709551615}}`,
			&Command{Op: OpSub, Topic: "s", Since: &Position{Epoch: "e", Seq: 1<<64 - 1}}, 0, 0},
		{"unknown op keeps id", `{"op":"fly","id":9}`, nil, CodeBadRequest, 9},
		{"missing op", `{"id":2}`, nil, CodeBadRequest, 2},
		{"zero id", `{"op":"ping","id":0}`, nil, CodeBadRequest, 0},
		{"negative id", `{"op":"ping","id":-1}`, nil, CodeBadRequest, 0},
		{"string id", `{"op":"ping","id":"1"}`, nil, CodeBadRequest, 0},
		{"bad topic", `{"op":"sub","id":4,"topic":"a b"}`, nil, CodeBadRequest, 4},
		{"long topic", `{"op":"sub","id":4,"topic":"` + strings.Repeat("a", 201) + `"}`, nil, CodeBadRequest, 4},
		{"since without seq", `{"op":"sub","id":4,"topic":"a","since":{"epoch":"e"}}`, nil, CodeBadRequest, 4},
		{"seq overflow", `{"op":"sub","id":4,"topic":"a","since":{"epoch":"e","seq":18446744073709551616}}`, nil, CodeBadRequest, 4},
		{"bad delivery", `{"op":"sub","id":4,"topic":"a","delivery":"pigeon"}`, nil, CodeBadRequest, 4},
		{"bad mode", `{"op":"sub","id":4,"topic":"a","mode":"all"}`, nil, CodeBadRequest, 4},
		{"bad delta", `{"op":"sub","id":4,"topic":"a","delta":"xdelta"}`, nil, CodeBadRequest, 4},
		{"delta with latest", `{"op":"sub","id":4,"topic":"a","delta":"fossil","mode":"latest"}`, nil, CodeBadRequest, 4},
		{"delta with datagram", `{"op":"sub","id":4,"topic":"a","delta":"fossil","delivery":"datagram"}`, nil, CodeBadRequest, 4},
		{"mode not a string", `{"op":"sub","id":4,"topic":"a","mode":1}`, nil, CodeBadRequest, 0},
		{"pub without data", `{"op":"pub","id":5,"topic":"a"}`, nil, CodeBadRequest, 5},
		{"pub too large", `{"op":"pub","id":5,"topic":"a","data":"` + strings.Repeat("x", 100) + `"}`, nil, CodeTooLarge, 5},
		{"refresh without token", `{"op":"refresh","id":6}`, nil, CodeBadRequest, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeCommand([]byte(tt.frame), 64)
			if tt.want != nil {
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tt.code, e.Code)
			require.Equal(t, tt.id, e.ID)
			require.False(t, errors.Is(err, ErrMalformed))
		})
	}
}

func TestDecodeCommandMalformed(t *testing.T) {
	for _, frame := range []string{`{"op":`, `not json`, `[1,2]`, `"op"`, ``} {
		_, err := DecodeCommand([]byte(frame), 0)
		require.ErrorIs(t, err, ErrMalformed, frame)
	}
}

func TestEncodersProduceValidJSON(t *testing.T) {
	frames := [][]byte{
		AppendMsg(nil, "scores", "e1", 58, 1764190000123, []byte(`{"a":1}`)),
		AppendSubOK(nil, 1, "scores", "e", 57, Recovered),
		AppendSubOK(nil, 1, "scores", "e", 57, NotRecovered),
		AppendSubOK(nil, 0, "scores", "e", 0, RecoveryNone),
		AppendPubOK(nil, 3, "chat", "e", 12),
		AppendOK(nil, 2),
		AppendOK(nil, 0),
		AppendReset(nil, "scores", "e2", 0),
		AppendError(nil, &Error{Code: CodeForbidden, Message: "no \"way\"\n\x01\u2028", ID: 1}),
		AppendError(nil, &Error{Code: CodeForbidden, Message: "ended", Topic: "scores"}),
		PingFrame, PongFrame,
	}
	for _, f := range frames {
		require.True(t, json.Valid(f), "%s", f)
		require.NotContains(t, string(f), "\n")
	}
	require.Equal(t, `{"op":"msg","topic":"scores","epoch":"e1","seq":58,"ts":1764190000123,"data":{"a":1}}`, string(frames[0]))
	require.Equal(t, `{"op":"ok","id":1,"topic":"scores","epoch":"e","seq":57,"recovered":true}`, string(frames[1]))
	require.Equal(t, `{"op":"ok","id":2}`, string(frames[5]))
	require.Equal(t, `{"op":"ok"}`, string(frames[6]))
	require.Equal(t, `{"op":"error","topic":"scores","code":"forbidden","message":"ended"}`, string(frames[9]))
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quo\"te", "back\\slash", "\x00\x1f\x7f", "héllo ✓", "bad \xff utf8", "\u2028\u2029", "<script>"} {
		var back string
		require.NoError(t, json.Unmarshal(AppendString(nil, s), &back), "%q", s)
		want := strings.ToValidUTF8(s, "\ufffd")
		require.Equal(t, want, back)
	}
}

func TestAppendMsgAllocatesOnlyTheFrame(t *testing.T) {
	data := []byte(`{"x":"` + strings.Repeat("y", 100) + `"}`)
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendMsg(buf[:0], "scores", "abcdefgh", 123456, 1764190000123, data)
	})
	require.Zero(t, allocs)
}

func TestValidateTopic(t *testing.T) {
	for _, ok := range []string{"a", "scores", "game.1", "sys:stats", "a/b-c_d:e.f", strings.Repeat("z", 200)} {
		require.NoError(t, ValidateTopic(ok), ok)
	}
	for _, bad := range []string{"", "a b", "é", "a\n", "a*", strings.Repeat("z", 201), "a?b"} {
		require.Error(t, ValidateTopic(bad), bad)
	}
}

func TestDecodePublishBody(t *testing.T) {
	items, batch, err := DecodePublishBody([]byte(`{"topic":"a","data":{ "x": 1 },"key":"k"}`), 64, false)
	require.NoError(t, err)
	require.False(t, batch)
	require.Equal(t, []PublishItem{{Topic: "a", Data: []byte(`{"x":1}`), Key: "k"}}, items)

	items, batch, err = DecodePublishBody([]byte(`{"messages":[{"topic":"a","data":1},{"topic":"b","data":"s"}]}`), 64, false)
	require.NoError(t, err)
	require.True(t, batch)
	require.Len(t, items, 2)

	bad := []struct {
		body string
		code ErrorCode
	}{
		{`not json`, CodeBadRequest},
		{`{"data":1}`, CodeBadRequest},
		{`{"topic":"a"}`, CodeBadRequest},
		{`{"topic":"a b","data":1}`, CodeBadRequest},
		{`{"topic":"sys:x","data":1}`, CodeForbidden},
		{`{"topic":"a","data":"` + strings.Repeat("x", 70) + `"}`, CodeTooLarge},
		{`{"messages":[]}`, CodeBadRequest},
		{`{"messages":[{"topic":"a","data":1},{"topic":"sys:b","data":1}]}`, CodeForbidden},
		{`{"messages":[{"topic":"a","data":1},{"topic":"b","data":"` + strings.Repeat("x", 70) + `"}]}`, CodeTooLarge},
		{`{"messages":[{"topic":"a","data":1}],"topic":"a","data":1}`, CodeBadRequest},
		{`{"topic":"a","data":1,"key":"` + strings.Repeat("k", 201) + `"}`, CodeBadRequest},
	}
	for _, b := range bad {
		_, _, err := DecodePublishBody([]byte(b.body), 64, false)
		var e *Error
		require.ErrorAs(t, err, &e, b.body)
		require.Equal(t, b.code, e.Code, b.body)
	}
	_, _, err = DecodePublishBody([]byte(`{"topic":"sys:x","data":1}`), 64, true)
	require.NoError(t, err, "the server itself may publish to sys: topics")
}

func TestEachFrame(t *testing.T) {
	var got []string
	EachFrame([]byte("a\n\nb\r\n  \nc"), func(f []byte) { got = append(got, string(f)) })
	require.Equal(t, []string{"a", "b", "c"}, got)
}

func TestCodes(t *testing.T) {
	for c := CodeBadRequest; c <= CodeInternal; c++ {
		require.Equal(t, c, ParseErrorCode(c.String()))
	}
	require.Equal(t, 413, CodeTooLarge.HTTPStatus())
	require.False(t, CloseUnauthorized.Reconnect())
	require.True(t, CloseSlowConsumer.Reconnect())
}

func TestPeekID(t *testing.T) {
	for frame, want := range map[string]uint64{
		`{"op":"sub","id":17,"topic":"a"}`: 17,
		`{"id": 3,"op":"ping"}`:            3,
		`{"op":"ping"}`:                    0,
		`{"op":"ping","id":"x"}`:           0,
		`{"op":"ping","id":-1}`:            0,
		`not json`:                         0,
	} {
		require.Equal(t, want, PeekID([]byte(frame)), frame)
	}
}

func TestDecodeFastPublishTakesTheCommonBodies(t *testing.T) {
	for body, want := range map[string]PublishItem{
		`{"topic":"a","data":1}`: {Topic: "a", Data: []byte(`1`)},
		` { "data" : [1, {"a":"}]"}] , "key":"k1", "topic" : "g.1" } `: {Topic: "g.1", Data: []byte(`[1,{"a":"}]"}]`), Key: "k1"},
		`{"topic":"a","data":"x\"y"}`:                                  {Topic: "a", Data: []byte(`"x\"y"`)},
		`{"topic":"a","data":null}`:                                    {Topic: "a", Data: []byte(`null`)},
	} {
		items, batch, ok := decodeFastPublish([]byte(body), 256, false)
		if !ok || batch || len(items) != 1 {
			t.Errorf("%s: not taken by the fast path as one message", body)
			continue
		}
		got := items[0]
		if got.Topic != want.Topic || got.Key != want.Key || string(got.Data) != string(want.Data) {
			t.Errorf("%s: got %+v, want %+v", body, got, want)
		}
	}
	items, batch, ok := decodeFastPublish([]byte(` {"messages": [{"topic":"a","data":1},{"data":[2],"topic":"a","key":"k"},{"topic":"b","data":"3"}]}`), 256, false)
	if !ok || !batch || len(items) != 3 || items[1].Key != "k" || string(items[2].Data) != `"3"` || items[2].Topic != "b" {
		t.Errorf("a batch: %+v, batch %v, ok %v", items, batch, ok)
	}
	// Everything else goes to encoding/json, which owns the answer.
	for _, body := range []string{
		`{"topic":"a","data":1,"topic":"b"}`, `{"Topic":"a","data":1}`, `{"topic":"a","data":1}x`,
		`{"topic":"a","data":tru}`, `{"topic":"sys:x","data":1}`, `{"topic":"a\u0062","data":1}`,
		`{"topic":"a","data":1,"extra":2}`, `{"topic":"a"}`, `{"messages":[]}`, `{"messages":[{"topic":"a","data":1}],"x":1}`,
		`{"messages":[{"topic":"a","data":1},{"topic":"a","data":1,"topic":"b"}]}`, `{"messages":[{"topic":"a","data":1}]`,
		`{"topic":"a","data":[1,2}`, `{"data":"000000\`, `{"topic":"a","data":"` + strings.Repeat("x", 300) + `"}`, `[]`, ``,
	} {
		if _, _, ok := decodeFastPublish([]byte(body), 256, false); ok {
			t.Errorf("%s: taken by the fast path", body)
		}
	}
}

func TestAppendPublishResultIsWhatEncodingJSONWrites(t *testing.T) {
	for _, r := range []PublishResult{
		{Topic: "a", Epoch: "e1", Seq: 1},
		{Topic: "room.42/x:y-z_", Epoch: "Zx8-Q_1", Seq: 18446744073709551615},
		{Topic: "", Epoch: "", Seq: 0},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendPublishResult(nil, r); string(got) != string(want) {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// AppendSubCommand writes the frame DecodeCommand reads back as the same
// sub, every option included.
func TestAppendSubCommandRoundTrip(t *testing.T) {
	for _, cmd := range []*Command{
		{Op: OpSub, ID: 1, Topic: "a"},
		{Op: OpSub, ID: 2, Topic: "b.c", Since: &Position{Epoch: "e\"1", Seq: 41}},
		{Op: OpSub, ID: 3, Topic: "d", Datagram: true, Latest: true},
		{Op: OpSub, ID: 4, Topic: "e", Delta: true},
	} {
		got, err := DecodeCommand(AppendSubCommand(nil, cmd), 0)
		require.NoError(t, err)
		require.Equal(t, cmd, got)
	}
}

// TestCheckPublishItemIsTheBodyCheck: the gRPC API validates values with
// CheckPublishItem; a body with the same message must get the same answer.
func TestCheckPublishItemIsTheBodyCheck(t *testing.T) {
	cases := []PublishItem{
		{Topic: "a", Data: []byte(`{ "x": 1 }`), Key: "k"},
		{Topic: "", Data: []byte(`1`)},
		{Topic: "a b", Data: []byte(`1`)},
		{Topic: "sys:x", Data: []byte(`1`)},
		{Topic: "a", Data: nil},
		{Topic: "a", Data: []byte(`not json`)},
		{Topic: "a", Data: []byte(`"` + strings.Repeat("x", 70) + `"`)},
		{Topic: "a", Data: []byte(`1`), Key: strings.Repeat("k", 201)},
	}
	for _, c := range cases {
		body, err := json.Marshal(map[string]any{"topic": c.Topic, "data": json.RawMessage(c.Data), "key": c.Key})
		if c.Data == nil {
			body, err = json.Marshal(map[string]any{"topic": c.Topic})
		}
		if !json.Valid(c.Data) && c.Data != nil {
			body, err = []byte(`{"topic":"a","data":not json}`), nil
		}
		require.NoError(t, err)
		got, gotErr := CheckPublishItem(c, 64, false)
		want, _, wantErr := decodePublishBodyJSON(body, 64, false)
		if wantErr != nil {
			require.Error(t, gotErr, string(body))
			if strings.HasPrefix(string(body), `{"topic":"a","data":not`) {
				// A body that is not JSON fails before its data is read.
				require.Equal(t, CodeBadRequest, AsError(gotErr).Code)
				continue
			}
			require.Equal(t, AsError(wantErr).Code, AsError(gotErr).Code, string(body))
			require.Equal(t, AsError(wantErr).Message, AsError(gotErr).Message, string(body))
			continue
		}
		require.NoError(t, gotErr, string(body))
		require.Equal(t, want[0], got)
	}
	require.NoError(t, CheckBatchLen(MaxBatch))
	require.Equal(t, CodeBadRequest, AsError(CheckBatchLen(0)).Code)
	require.Equal(t, CodeBadRequest, AsError(CheckBatchLen(MaxBatch+1)).Code)
}

func TestDecodeFastPubTakesTheCommonFrames(t *testing.T) {
	for frame, want := range map[string]Command{
		`{"op":"pub","id":3,"topic":"chat","data":{"a":[1, 2]}}`:      {Op: OpPub, ID: 3, Topic: "chat", Data: []byte(`{"a":[1,2]}`)},
		` {"data":"x\"y","topic":"t.1","op":"pub"} `:                  {Op: OpPub, Topic: "t.1", Data: []byte(`"x\"y"`)},
		`{"topic":"t","id":18446744073709551615,"op":"pub","data":1}`: {Op: OpPub, ID: 18446744073709551615, Topic: "t", Data: []byte(`1`)},
	} {
		got, ok := decodeFastPub([]byte(frame), 1024)
		if !ok {
			t.Errorf("%s: not taken by the fast path", frame)
			continue
		}
		if got.Op != want.Op || got.ID != want.ID || got.Topic != want.Topic || string(got.Data) != string(want.Data) {
			t.Errorf("%s: got %+v, want %+v", frame, got, want)
		}
	}
	for _, frame := range []string{
		`{"op":"sub","id":1,"topic":"a"}`, `{"op":"pub","id":1,"topic":"a"}`, `{"op":"pub","id":0,"topic":"a","data":1}`,
		`{"op":"pub","id":1,"topic":"a","data":1,"extra":2}`, `{"op":"pub","id":"1","topic":"a","data":1}`,
		`{"op":"pub","topic":"a","data":[1}`, `{"op":"pub","topic":"sys:x","data":1}x`, `{"op":"pub","topic":"a\u0062","data":1}`,
	} {
		if _, ok := decodeFastPub([]byte(frame), 1024); ok {
			t.Errorf("%s: taken by the fast path", frame)
		}
	}
}
