package webtransport

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that neither the servers nor the test clients leave a
// goroutine behind. No goroutine is ignored: every test closes its server
// and client sessions, and closing joins or ends all of them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
