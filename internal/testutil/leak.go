package testutil

import (
	"log/slog"

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
