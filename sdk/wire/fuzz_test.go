package wire

import (
	"encoding/json"
	"testing"
)

// The fuzz targets check that decoders never panic, that whatever they
// accept is valid, and that errors carry a code. Seeds live in
// testdata/fuzz/<Target>; CI runs each target for a few seconds.

func FuzzDecodeCommand(f *testing.F) {
	for _, s := range []string{
		`{"op":"sub","id":1,"topic":"scores"}`,
		`{"op":"sub","id":1,"topic":"s","since":{"epoch":"e","seq":41},"delivery":"datagram"}`,
		`{"op":"sub","id":1,"topic":"s","mode":"latest"}`,
		`{"op":"sub","id":1,"topic":"s","delta":"fossil"}`,
		`{"op":"pub","id":3,"topic":"chat","data":{"a":[1,2,{"b":null}]}}`,
		`{"op":"hello","token":"x"}`, `{"op":"ping"}`, `{"op":`, `[]`, `{"id":-1}`,
		`{"op":"enter","id":5,"topic":"room.1","info":{"name":"alice","x":[1,2]}}`,
		`{"op":"leave","id":6,"topic":"room.1"}`, `{"op":"presence","id":7,"topic":"room.1"}`,
		`{"op":"sub","id":1,"topic":"room.1","presence":true}`,
	} {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		` { "data" : [1, {"a":"}]"}] , "topic":"t.1", "op" : "pub" } `, `{"op":"pub","id":1,"topic":"a","data":1,"id":2}`,
		`{"op":"pub","id":0,"topic":"a","data":1}`, `{"op":"pub","id":1.0,"topic":"a","data":1}`,
		`{"op":"pub","id":1,"topic":"a","data":tru}`, `{"op":"pub","topic":"a b","data":1}`, `{"Op":"pub","topic":"a","data":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if fast, ok := decodeFastPub(frame, 1024); ok {
			// The fast path may only accept what encoding/json accepts, and
			// must read it the same.
			slow, err := decodeCommandJSON(frame, 1024)
			if err != nil || slow.Op != fast.Op || slow.ID != fast.ID || slow.Topic != fast.Topic || string(slow.Data) != string(fast.Data) ||
				slow.Since != nil || slow.Token != "" || slow.Info != nil {
				t.Fatalf("fast path read %q as %+v; encoding/json: %+v, %v", frame, fast, slow, err)
			}
		}
		cmd, err := DecodeCommand(frame, 1024)
		if err != nil {
			e := AsError(err)
			if e.Code == 0 || e.Message == "" {
				t.Fatalf("error without code or message: %#v", e)
			}
			return
		}
		if cmd.Op == OpEnter {
			if cmd.Info != nil && (!json.Valid(cmd.Info) || len(cmd.Info) > MaxPresenceInfo) {
				t.Fatalf("accepted bad info %q", cmd.Info)
			}
			ev := AppendPresenceEvent(nil, OpJoin, cmd.Topic, "c", "n", cmd.Info)
			if !json.Valid(ev) {
				t.Fatalf("join frame is not JSON: %q", ev)
			}
		}
		if cmd.Op == OpSub || cmd.Op == OpPub || cmd.Op == OpUnsub || cmd.Op == OpEnter || cmd.Op == OpLeave || cmd.Op == OpPresence {
			if ValidateTopic(cmd.Topic) != nil {
				t.Fatalf("accepted bad topic %q", cmd.Topic)
			}
		}
		if cmd.Op == OpPub && (!json.Valid(cmd.Data) || len(cmd.Data) > 1024) {
			t.Fatalf("accepted bad data %q", cmd.Data)
		}
		if cmd.Op == OpPub {
			msg := AppendMsg(nil, cmd.Topic, "e", 1, 1, cmd.Data)
			if !json.Valid(msg) {
				t.Fatalf("msg frame is not JSON: %q", msg)
			}
			for _, c := range msg {
				if c == '\n' {
					t.Fatalf("msg frame has a newline: %q", msg)
				}
			}
		}
	})
}

func FuzzDecodePublishBody(f *testing.F) {
	for _, s := range []string{
		`{"topic":"a","data":1}`, `{"topic":"a","data":{"x":"y"},"key":"k"}`,
		`{"messages":[{"topic":"a","data":1},{"topic":"b","data":[true]}]}`, `{"messages":[]}`, `null`,
		` { "data" : [1, {"a":"}]"}] , "key":"k1", "topic" : "game.1" } `, `{"topic":"a","data":"x\"y"}`,
		`{"topic":"a","data":1,"topic":"b"}`, `{"Topic":"a","data":1}`, `{"topic":"a","data":1}x`,
		`{"topic":"a","data":tru}`, `{"topic":"sys:x","data":1}`, `{"topic":"a","data":null}`,
		` { "messages" : [ {"data":2,"topic":"a"} , {"topic":"a","data":"x","key":"k"} ] } `,
		`{"messages":[{"topic":"a","data":1}],"topic":"b"}`, `{"messages":[{"topic":"a","data":1},]}`,
		`{"messages":[{"topic":"a","data":1,"extra":1}]}`, `{"messages":[{"topic":"sys:a","data":1}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if fast, fastBatch, ok := decodeFastPublish(body, 256, false); ok {
			// The fast path may only accept what encoding/json accepts, and
			// must read it the same.
			slow, batch, err := decodePublishBodyJSON(body, 256, false)
			same := err == nil && batch == fastBatch && len(slow) == len(fast)
			for i := 0; same && i < len(slow); i++ {
				same = slow[i].Topic == fast[i].Topic && slow[i].Key == fast[i].Key && string(slow[i].Data) == string(fast[i].Data)
			}
			if !same {
				t.Fatalf("fast path read %q as %+v (batch %v); encoding/json: %+v, batch %v, %v", body, fast, fastBatch, slow, batch, err)
			}
		}
		items, _, err := DecodePublishBody(body, 256, false)
		if err != nil {
			if AsError(err).Code == 0 {
				t.Fatal("error without code")
			}
			return
		}
		if len(items) == 0 {
			t.Fatal("accepted an empty publish")
		}
		for _, it := range items {
			if ValidateTopic(it.Topic) != nil || IsSystemTopic(it.Topic) || !json.Valid(it.Data) || len(it.Data) > 256 {
				t.Fatalf("accepted bad item %+v", it)
			}
		}
	})
}

func FuzzValidateTopic(f *testing.F) {
	for _, s := range []string{"a", "game.1", "sys:stats", "a b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		if ValidateTopic(topic) != nil {
			return
		}
		// A valid topic needs no JSON escaping: encoders copy it as is.
		if string(AppendString(nil, topic)) != `"`+topic+`"` {
			t.Fatalf("valid topic %q needs escaping", topic)
		}
	})
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00", "\xff", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("AppendString(%q) = %q is not JSON: %v", s, out, err)
		}
	})
}
