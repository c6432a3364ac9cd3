package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/transport"
)

// TestCountingStoreCountsFailuresOnly: topicast_store_errors_total counts
// the store failing, not the answers that are part of its contract.
func TestCountingStoreCountsFailuresOnly(t *testing.T) {
	for _, c := range []struct {
		name  string
		err   error
		count uint64
	}{
		{"none", nil, 0},
		{"fenced", fmt.Errorf("append: %w", actors.ErrFenced), 0},
		{"duplicate keys", &actors.DuplicateKeysError{Seqs: map[string]uint64{"k": 1}}, 0},
		{"cancelled", fmt.Errorf("open: %w", context.Canceled), 0},
		{"redis down", fmt.Errorf("dial tcp: connection refused: %w", actors.ErrNotWritten), 1},
		{"timeout", context.DeadlineExceeded, 1},
		{"other", errors.New("READONLY"), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := new(transport.NodeMetrics)
			s := countingStore{m: m}
			require.Equal(t, c.err, s.count(c.err), "the error goes on unchanged")
			require.Equal(t, c.count, m.StoreErrors.Load())
		})
	}
}
