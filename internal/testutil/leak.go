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
	return append([]goleak.Option{}, extra...)
}

// DiscardActorLogs is a protoactor logger factory that drops its logs, for
// actor.WithLoggerFactory in tests.
func DiscardActorLogs(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }
