package server

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/topicast/topicast/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testutil.LeakOptions()...)
}
