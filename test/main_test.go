package test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/topicast/topicast/internal/testutil"
)

// TestMain fails the run when a test leaves a goroutine behind: every test
// here runs its nodes in this process, so a session, relay, poller or
// writer that outlives its server shows up. The package's HTTP clients
// keep idle keep-alive connections (two goroutines each) on purpose; they
// are closed first.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		for _, c := range []interface{ CloseIdleConnections() }{httpClient, pollClient, sseClient} {
			c.CloseIdleConnections()
		}
		if err := goleak.Find(testutil.LeakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
