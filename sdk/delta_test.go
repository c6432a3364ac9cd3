package sdk_test

import (
	"encoding/json"
	"testing"

	"github.com/centrifugal/fdelta"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
)

// With Config.Delta the client asks for deltas, hands handlers the rebuilt
// data, and on a delta that does not apply reports it, reconnects and
// resubscribes from the last message it delivered.
func TestDeltaSubscription(t *testing.T) {
	f := newFakeServer(t)
	rec := newRecorder()
	cfg := fastBackoff(rec)
	cfg.Delta = true
	c := dial(t, f.url, cfg)
	fc := f.accept(t)

	done := subscribeAsync(c, "board", rec.handle)
	sub := fc.expect(t, wire.OpSub)
	require.Equal(t, wire.DeltaFossil, sub["delta"])
	fc.send(t, `{"op":"ok","id":`+jsonNum(sub["id"])+`,"topic":"board","epoch":"e1","seq":0}`)
	require.NoError(t, <-done)

	v1 := []byte(`{"cells":[1,2,3,4,5,6,7,8,9],"turn":"x"}`)
	v2 := []byte(`{"cells":[1,2,3,4,5,6,7,8,9],"turn":"o"}`)
	delta, err := json.Marshal(string(fdelta.Create(v1, v2)))
	require.NoError(t, err)
	fc.send(t,
		`{"op":"msg","topic":"board","epoch":"e1","seq":1,"ts":1,"data":`+string(v1)+`}`,
		`{"op":"msg","topic":"board","epoch":"e1","seq":2,"ts":1,"delta":true,"data":`+string(delta)+`}`)
	msgs := rec.waitMessages(t, 2)
	require.JSONEq(t, string(v2), string(msgs[1].Data))
	require.Equal(t, string(v2), string(msgs[1].Data), "byte-exact")

	// A delta built against other data: reported, and the client comes
	// back for seq 3 whole.
	long := []byte(`{"cells":[1,2,3,4,5,6,7,8,9],"turn":"o","log":"0123456789012345678901234567890123456789"}`)
	longer := []byte(`{"cells":[1,2,3,4,5,6,7,8,9],"turn":"x","log":"0123456789012345678901234567890123456789"}`)
	bad, err := json.Marshal(string(fdelta.Create(long, longer))) // copies past the end of v2
	require.NoError(t, err)
	fc.send(t, `{"op":"msg","topic":"board","epoch":"e1","seq":3,"ts":1,"delta":true,"data":`+string(bad)+`}`)
	rec.waitEvents(t, sdk.EventError, 1)
	fc = f.accept(t)
	sub = fc.expect(t, wire.OpSub)
	require.Equal(t, map[string]any{"epoch": "e1", "seq": float64(2)}, sub["since"])
	require.Len(t, rec.messages(), 2)
}
