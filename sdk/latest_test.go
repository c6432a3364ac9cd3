package sdk_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
)

// A Latest subscription sends "mode":"latest" and takes the gaps of a
// conflated topic without EventGap; repeats and older messages are still
// dropped.
func TestLatestSubscription(t *testing.T) {
	f := newFakeServer(t)
	rec := newRecorder()
	c := dial(t, f.url, fastBackoff(rec))
	fc := f.accept(t)

	done := subscribeAsync(c, "cpu", rec.handle, sdk.Latest())
	sub := fc.expect(t, wire.OpSub)
	require.Equal(t, wire.ModeLatest, sub["mode"])
	fc.send(t, `{"op":"ok","id":`+jsonNum(sub["id"])+`,"topic":"cpu","epoch":"e1","seq":0}`)
	require.NoError(t, <-done)
	fc.send(t,
		`{"op":"msg","topic":"cpu","epoch":"e1","seq":1,"ts":1,"data":1}`,
		`{"op":"msg","topic":"cpu","epoch":"e1","seq":7,"ts":1,"data":7}`,
		`{"op":"msg","topic":"cpu","epoch":"e1","seq":5,"ts":1,"data":5}`,
		`{"op":"msg","topic":"cpu","epoch":"e1","seq":30,"ts":1,"data":30}`)
	rec.waitMessages(t, 3)
	require.Equal(t, []string{"subscribed e1:0", "msg e1:1", "msg e1:7", "msg e1:30"}, rec.history())
}
