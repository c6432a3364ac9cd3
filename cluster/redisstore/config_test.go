package redisstore

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
)

// TestHistorySizeDefault checks that HistorySize means what it means in
// actors.TopicConfig: zero is the default, negative keeps none.
func TestHistorySizeDefault(t *testing.T) {
	for _, tc := range []struct {
		name       string
		size, want int
	}{
		{"zero means the default", 0, actors.DefaultHistorySize},
		{"negative keeps none", -1, -1},
		{"positive is kept", 7, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Config{HistorySize: tc.size}.withDefaults().HistorySize)
		})
	}
}
