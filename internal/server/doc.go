// Package server wires one topicast node to its listeners: the cluster node,
// the WebSocket and HTTP handlers, the heartbeat sweeper, GET /metrics, the
// publisher of the node's stats to the sys:stats topic, and the embedded
// dashboard (web/, with uPlot vendored under web/vendor/uplot). cmd/topicast's
// serve command turns flags into a Config and runs a Server; tests run the
// same Server in-process.
//
// Server's methods are goroutine-safe.
package server
