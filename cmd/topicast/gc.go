package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// defaultGCPercent is serve's garbage collection target when neither
// --gc-percent nor GOGC says otherwise. At Go's 100 a node with 10,000
// subscribers and 2,000 publishes a second collects every 3 s, and each
// collection's 100 ms mark phase holds up publishes and deliveries: in the
// S2 benchmark the collector was what put topicast's p99 above a bare
// broadcaster's (docs/benchmarks.md). 400 collects four times less often;
// the price is garbage waiting longer, measured at 8.9 instead of 6.2 KiB of
// RSS per idle connection.
const defaultGCPercent = 400

// Soft memory limits (GOMEMLIMIT) serve sets when GOMEMLIMIT is not set, as
// fractions of the container's memory limit or, without one, of the
// machine's memory. Near the limit the collector runs more often whatever
// the GC percent, so a node whose live heap grows large trades latency
// back for memory instead of being killed.
const (
	cgroupMemoryFraction = 0.9
	systemMemoryFraction = 0.75
)

// gcFlags is --gc-percent and whether it was given.
type gcFlags struct {
	percent int
	given   bool
}

// resolve returns the GC percent to set, and false when GOGC from the
// environment (which the runtime has applied already) is to be kept. The
// command line wins over the environment, which wins over the default.
func (g gcFlags) resolve(lookupEnv func(string) (string, bool)) (int, bool, error) {
	if g.given {
		if g.percent == 0 || g.percent < -1 {
			return 0, false, fmt.Errorf("--gc-percent must be > 0, or -1 to collect only near the memory limit; got %d", g.percent)
		}
		return g.percent, true, nil
	}
	if _, ok := lookupEnv("GOGC"); ok {
		return 0, false, nil
	}
	return defaultGCPercent, true, nil
}

// tuneGC applies the GC percent and the soft memory limit for the process.
func tuneGC(g gcFlags, logger *slog.Logger) error {
	percent, set, err := g.resolve(os.LookupEnv)
	if err != nil {
		return err
	}
	if set {
		debug.SetGCPercent(percent)
	} else {
		sample := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(sample)
		percent = int(sample[0].Value.Uint64())
	}
	limit, err := memlimit.Set(
		memlimit.WithProvider(memlimit.ApplyFallback(
			memlimit.ApplyRatio(memlimit.FromCgroup, cgroupMemoryFraction),
			memlimit.ApplyRatio(memlimit.FromSystem, systemMemoryFraction))),
		memlimit.WithRatio(1),
	)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err != nil {
		logger.Warn("no soft memory limit set", "err", err)
	}
	attrs := []any{"gc_percent", percent}
	if limit > 0 && limit < math.MaxInt64 {
		attrs = append(attrs, "memory_limit_mib", limit>>20)
	}
	logger.Info("garbage collector", attrs...)
	return nil
}
