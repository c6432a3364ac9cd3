package webrtc

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that neither the servers nor the test clients leave a
// goroutine behind, pion's own included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
