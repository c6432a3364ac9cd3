// Package sdktest tests the Go SDK (package sdk) against a real topicast
// server: a cluster node with its WebSocket, WebTransport and HTTP
// listeners, started in this process, with hooks to break the clients'
// connections. The SDK's own tests (sdk/) use no server.
package sdktest
