package test

import (
	"os"
	"testing"

	"github.com/topicast/topicast/internal/testutil"
)

// TestMain fails the run when a test leaves a goroutine behind: every test
// here runs its nodes in this process, so a session, relay, poller or writer
// that outlives its server shows up.
func TestMain(m *testing.M) {
	os.Exit(testutil.RunCheckingLeaks(m, httpClient, pollClient, sseClient))
}
