package tlsreload

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that Run and the test servers' goroutines end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
