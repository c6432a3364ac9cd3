package actors

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk/wire"
)

// TestTopicConfigDefaults checks the meaning of zero in TopicConfig's
// HistorySize (the default; negative keeps none) and ConnConfig's
// MaxMessage (wire.DefaultMaxMessage).
func TestTopicConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		name       string
		size, want int
	}{
		{"zero means the default", 0, DefaultHistorySize},
		{"negative keeps none", -1, -1},
		{"positive is kept", 7, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, TopicConfig{HistorySize: tc.size}.withDefaults().HistorySize)
		})
	}
	t.Run("max message", func(t *testing.T) {
		require.Equal(t, wire.DefaultMaxMessage, ConnConfig{}.withDefaults().MaxMessage)
	})
}

// TestHistoryKeepsNone checks that a negative size keeps no message.
func TestHistoryKeepsNone(t *testing.T) {
	h := newHistory(TopicConfig{HistorySize: -1}.withDefaults().HistorySize, nil)
	h.push(entry{seq: 1})
	require.Zero(t, h.len())
}
