package sdk_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// apiKey guards the broker's publish endpoint.
const apiKey = "test-key"

// wsURL and httpURL are the endpoints of the in-memory broker the examples
// run against (broker_test.go).
var wsURL, httpURL string

// TestMain starts the broker for the examples and fails the run when a
// test leaves a goroutine behind. The tests against a real server are in
// test/sdk.
func TestMain(m *testing.M) {
	b := newBroker(apiKey)
	wsURL, httpURL = b.wsURL(), b.httpURL()
	code := m.Run()
	b.close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
