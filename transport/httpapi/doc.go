// Package httpapi serves topicast's plain HTTP endpoints: POST /v1/publish,
// GET /v1/history, GET /v1/info, /healthz and /readyz, and the CORS answers
// that let browser pages of allowed origins call them.
//
// Handlers reach the node through the small Backend interface they define,
// so they depend on the protocol (package wire) only. They are goroutine-safe.
package httpapi
