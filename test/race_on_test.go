//go:build race

package test

// raceEnabled reports a build with the race detector, whose instrumentation
// slows the server several times over: latency ratios are measured without it.
const raceEnabled = true
