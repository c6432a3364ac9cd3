package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecodePresenceCommands(t *testing.T) {
	cmd, err := DecodeCommand([]byte(`{"op":"enter","id":5,"topic":"room.1","info":{ "name" : "alice" }}`), 0)
	require.NoError(t, err)
	require.Equal(t, &Command{Op: OpEnter, ID: 5, Topic: "room.1", Info: []byte(`{"name":"alice"}`)}, cmd)

	cmd, err = DecodeCommand([]byte(`{"op":"enter","id":5,"topic":"room.1"}`), 0)
	require.NoError(t, err)
	require.Nil(t, cmd.Info)
	cmd, err = DecodeCommand([]byte(`{"op":"enter","id":5,"topic":"room.1","info":null}`), 0)
	require.NoError(t, err)
	require.Nil(t, cmd.Info)

	for _, op := range []string{OpLeave, OpPresence} {
		cmd, err = DecodeCommand([]byte(`{"op":"`+op+`","id":6,"topic":"room.1"}`), 0)
		require.NoError(t, err)
		require.Equal(t, &Command{Op: op, ID: 6, Topic: "room.1"}, cmd)
	}
	cmd, err = DecodeCommand([]byte(`{"op":"sub","id":1,"topic":"room.1","presence":true}`), 0)
	require.NoError(t, err)
	require.True(t, cmd.Presence)
	require.Equal(t, `{"op":"sub","id":1,"topic":"room.1","presence":true}`, string(AppendSubCommand(nil, cmd)))
}

func TestDecodePresenceCommandsRefused(t *testing.T) {
	big := `{"op":"enter","id":7,"topic":"r","info":"` + strings.Repeat("x", MaxPresenceInfo) + `"}`
	for frame, code := range map[string]ErrorCode{
		big: CodeTooLarge,
		`{"op":"enter","id":7,"topic":"r","info":{"a":}}`:  CodeBadRequest,
		`{"op":"enter","id":7,"topic":"bad topic"}`:        CodeBadRequest,
		`{"op":"leave","id":7}`:                            CodeBadRequest,
		`{"op":"presence","id":7,"topic":""}`:              CodeBadRequest,
		`{"op":"sub","id":7,"topic":"r","presence":"yes"}`: CodeBadRequest,
	} {
		_, err := DecodeCommand([]byte(frame), 0)
		var e *Error
		require.ErrorAs(t, err, &e, frame)
		require.Equal(t, code, e.Code, frame)
	}
}

// The frames the server and the clients write are the JSON PROTOCOL.md
// shows, field for field.
func TestPresenceFrames(t *testing.T) {
	info := []byte(`{"name":"alice"}`)
	var ev map[string]any
	require.NoError(t, json.Unmarshal(AppendPresenceEvent(nil, OpJoin, "room.1", "alice", "n1-ws-17", info), &ev))
	require.Equal(t, map[string]any{"op": "join", "topic": "room.1", "client": "alice", "conn": "n1-ws-17",
		"info": map[string]any{"name": "alice"}}, ev)
	require.Equal(t, `{"op":"leave","topic":"room.1","client":"alice","conn":"n1-ws-17"}`,
		string(AppendPresenceEvent(nil, OpLeave, "room.1", "alice", "n1-ws-17", info)))
	require.Equal(t, `{"op":"update","topic":"r","client":"a\"b","conn":"c"}`,
		string(AppendPresenceEvent(nil, OpUpdate, "r", `a"b`, "c", nil)))

	members := [][]byte{AppendMember(nil, "alice", "n1-ws-17", info), AppendMember(nil, "bob", "n2-wt-3", nil)}
	var ok struct {
		Op      string   `json:"op"`
		ID      uint64   `json:"id"`
		Topic   string   `json:"topic"`
		Count   int      `json:"count"`
		Members []Member `json:"members"`
	}
	require.NoError(t, json.Unmarshal(AppendPresenceOK(nil, 7, "room.1", 3, members), &ok))
	require.Equal(t, "ok", ok.Op)
	require.Equal(t, uint64(7), ok.ID)
	require.Equal(t, 3, ok.Count)
	require.Equal(t, []Member{{Client: "alice", Conn: "n1-ws-17", Info: info}, {Client: "bob", Conn: "n2-wt-3"}}, ok.Members)

	var body Presence
	require.NoError(t, json.Unmarshal(AppendPresenceBody(nil, "room.1", 0, nil), &body))
	require.Equal(t, Presence{Topic: "room.1", Members: []Member{}}, body)

	for _, f := range [][]byte{AppendEnter(nil, 5, "room.1", info), AppendEnter(nil, 5, "room.1", nil),
		AppendLeave(nil, 6, "room.1"), AppendPresenceCommand(nil, 7, "room.1")} {
		cmd, err := DecodeCommand(f, 0)
		require.NoError(t, err, "%s", f)
		require.Equal(t, "room.1", cmd.Topic)
	}
	cmd, err := DecodeCommand(AppendEnter(nil, 5, "room.1", info), 0)
	require.NoError(t, err)
	require.Equal(t, info, cmd.Info)
}
