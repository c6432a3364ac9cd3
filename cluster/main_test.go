package cluster

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/topicast/topicast/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testutil.LeakOptions(
		// protoactor's remote dials each peer with gRPC; its Shutdown stops
		// the endpoints but leaves the gRPC client connections of members
		// that went away to retry. They belong to the library, not to any
		// topicast actor.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("google.golang.org/grpc.(*addrConn).resetTransport"),
	)...)
}
