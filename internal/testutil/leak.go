package testutil

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
)

// LeakOptions are the goleak options for packages that run protoactor: they
// ignore only goroutines that protoactor starts once per process and never
// stops (none of them belongs to a test's actors).
func LeakOptions(extra ...goleak.Option) []goleak.Option {
	return append([]goleak.Option{
		// protoactor's throttle timers (actor/throttler.go, NewThrottle):
		// the first event of a period starts a goroutine that waits for the
		// period to end (10 s for dead letters, 1 s for the gossiper's), and
		// nothing stops it at shutdown. A node's shutdown sends dead letters,
		// so one is always running at the end. The names are those of the
		// inlined closures, the same with and without -race.
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
	}, extra...)
}

// DiscardActorLogs is a protoactor logger factory that drops its logs, for
// actor.WithLoggerFactory in tests.
func DiscardActorLogs(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }

// RunCheckingLeaks runs a package's tests, as TestMain does, and fails the
// run when a goroutine outlives them. HTTP clients keep idle keep-alive
// connections (two goroutines each) on purpose: idle ones are closed first.
// It returns the exit code.
func RunCheckingLeaks(m *testing.M, clients ...interface{ CloseIdleConnections() }) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	if err := goleak.Find(LeakOptions()...); err != nil {
		fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
		return 1
	}
	return 0
}
