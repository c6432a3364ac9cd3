// Package testutil holds helpers shared by topicast's tests: a Session that
// records what it is sent, polling helpers, and the goleak options that
// ignore protoactor's own background goroutines.
package testutil
