// Package test holds topicast's tests that need more than one package or
// process: the server end to end over real sockets, the command-line binary,
// and (in subfolders) multi-node clusters and browsers. Nothing outside
// test/ imports it.
package test
