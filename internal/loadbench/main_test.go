package loadbench

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/topicast/topicast/internal/testutil"
)

// TestMain checks for leaked goroutines, ignoring only protoactor's throttle
// timers of the in-process server of TestRunWebTransport (see
// testutil.LeakOptions). No goroutine of quic-go or webtransport-go needs
// ignoring.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testutil.LeakOptions()...)
}
