package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk/wire"
)

// TestSubPresence runs sub --presence --enter against a scripted server:
// the sub asks for presence, the enter carries the info, and the events
// print one line each on stdout, in order with the messages.
func TestSubPresence(t *testing.T) {
	got := make(chan map[string]any, 16) // the client's frames but pings
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		defer nc.Close()
		reply := func(frames ...string) bool {
			return wsutil.WriteServerText(nc, []byte(strings.Join(frames, "\n"))) == nil
		}
		for {
			msg, _, err := wsutil.ReadClientData(nc)
			if err != nil {
				return
			}
			var f map[string]any
			if json.Unmarshal(msg, &f) != nil || f["op"] == wire.OpPing {
				continue
			}
			got <- f
			id := strconv.FormatFloat(f["id"].(float64), 'f', -1, 64)
			switch f["op"] {
			case wire.OpSub:
				reply(`{"op":"ok","id":` + id + `,"topic":"room.1","epoch":"e1","seq":0}`)
			case wire.OpEnter:
				reply(`{"op":"ok","id":`+id+`}`,
					`{"op":"join","topic":"room.1","client":"alice","conn":"n1-ws-17","info":{"name":"alice"}}`,
					`{"op":"update","topic":"room.1","client":"alice","conn":"n1-ws-17","info":{"name":"al"}}`,
					`{"op":"leave","topic":"room.1","client":"alice","conn":"n1-ws-17"}`,
					`{"op":"msg","topic":"room.1","epoch":"e1","seq":1,"ts":1,"data":1}`)
			}
		}
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"sub", "--server", "ws" + strings.TrimPrefix(srv.URL, "http"),
		"--presence", "--enter", `{"name": "ada"}`, "--count", "1", "room.1"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	sub, enter := <-got, <-got
	require.Equal(t, wire.OpSub, sub["op"])
	require.Equal(t, true, sub["presence"])
	require.Equal(t, wire.OpEnter, enter["op"])
	require.Equal(t, map[string]any{"name": "ada"}, enter["info"])
	require.Equal(t, `join room.1 alice n1-ws-17 {"name":"alice"}
update room.1 alice n1-ws-17 {"name":"al"}
leave room.1 alice n1-ws-17
{"op":"msg","topic":"room.1","epoch":"e1","seq":1,"ts":1,"data":1}
`, stdout.String())
}

func TestSubEnterFlag(t *testing.T) {
	o, err := parseSubArgs([]string{"--enter", "null", "room.1"}, io.Discard)
	require.NoError(t, err)
	require.True(t, o.entered)
	require.False(t, o.presence)
	o, err = parseSubArgs([]string{"room.1"}, io.Discard)
	require.NoError(t, err)
	require.False(t, o.entered)
	_, err = parseSubArgs([]string{"--enter", "{name}", "room.1"}, io.Discard)
	require.ErrorContains(t, err, "is not JSON")
}
