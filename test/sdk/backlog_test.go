package sdktest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
)

// TestRecoverLargeBacklog recovers 1.4 MB of history, more than the
// server's outbound queue holds by default (1 MiB): a recovery is queued
// with Session.WriteBacklog, which the slow-consumer bound does not count.
func TestRecoverLargeBacklog(t *testing.T) {
	ctx := testCtx(t)
	topic := topicFor(t)
	p := newPublisher(t, sdk.PublisherConfig{BatchSize: 100})
	data := strings.Repeat("x", 2000)
	var epoch string
	for range 700 {
		res, err := p.Publish(ctx, topic, data)
		require.NoError(t, err)
		epoch = res.Epoch
	}
	rec := newRecorder()
	c := dial(t, srv.WSURL, sdk.Config{OnEvent: rec.onEvent})
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := c.Subscribe(sctx, topic, rec.handle, sdk.Since(epoch, 0))
	require.NoError(t, err)
	require.Len(t, rec.waitMessages(t, 700), 700)
}
