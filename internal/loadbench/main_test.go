package loadbench

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakOptions...)
}

// leakOptions ignore protoactor's throttle timers (actor/throttler.go,
// NewThrottle) of the in-process server of TestRunWebTransport, as the
// SDK's tests do: the first event of a period starts a goroutine that waits
// for the period to end (10 s for dead letters, 1 s for the gossiper's) and
// nothing stops it when the node closes. They belong to the server, not to
// the bench. No goroutine of quic-go or webtransport-go needs ignoring.
var leakOptions = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
}
