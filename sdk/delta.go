package sdk

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/centrifugal/fdelta"
)

// errNoBase reports a delta that came with no message before it on the
// subscription.
var errNoBase = errors.New("a delta came without the message it applies to")

// applyDelta rebuilds a message's data from base, the data of the message
// before it, and raw, the JSON string of a fossil delta (PROTOCOL.md 1.1).
// It refuses a delta that would build more than max bytes before building
// it.
func applyDelta(base []byte, raw json.RawMessage, max int) ([]byte, error) {
	if base == nil {
		return nil, errNoBase
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("delta is not a JSON string: %w", err)
	}
	delta := []byte(s)
	n, err := fdelta.OutputSize(delta)
	if err != nil {
		return nil, fmt.Errorf("delta: %w", err)
	}
	if n > max {
		return nil, fmt.Errorf("delta builds %d bytes, over MaxReadBytes (%d)", n, max)
	}
	data, err := fdelta.Apply(base, delta)
	if err != nil {
		return nil, fmt.Errorf("delta: %w", err)
	}
	return data, nil
}
