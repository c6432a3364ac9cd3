package browser

import (
	"os"
	"testing"

	"github.com/topicast/topicast/internal/testutil"
)

// TestMain fails the run when a test leaves a goroutine behind: the servers
// run in this process, and so do chromedp's connections to Chromium.
func TestMain(m *testing.M) {
	os.Exit(testutil.RunCheckingLeaks(m, httpClient))
}
