// Package testutil holds helpers shared by topicast's tests: a Session that
// records what it is sent, polling helpers, and the goleak check
// (RunCheckingLeaks, LeakOptions) that ignores protoactor's own background
// goroutines.
package testutil
