package sdk_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
)

func TestNewPublisherValidates(t *testing.T) {
	for _, u := range []string{"ws://127.0.0.1:8080", "127.0.0.1:8080", "http://", "::"} {
		_, err := sdk.NewPublisher(u, sdk.PublisherConfig{})
		require.Error(t, err, u)
	}
	_, err := sdk.NewPublisher("http://x", sdk.PublisherConfig{MinBackoff: time.Second, MaxBackoff: time.Millisecond})
	require.Error(t, err)
	require.Equal(t, "gap t e:3 (why)", fmt.Sprint(sdk.Event{Kind: sdk.EventGap, Topic: "t", Epoch: "e", Seq: 3, Reason: "why"}))
}
