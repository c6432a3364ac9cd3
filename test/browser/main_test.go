package browser

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/topicast/topicast/internal/testutil"
)

// TestMain fails the run when a test leaves a goroutine behind: the servers
// run in this process, and so do chromedp's connections to Chromium. The
// package's HTTP client keeps idle keep-alive connections on purpose; they
// are closed first.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		httpClient.CloseIdleConnections()
		if err := goleak.Find(testutil.LeakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
