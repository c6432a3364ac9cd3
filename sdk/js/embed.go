// Package jsclient embeds topicast's browser client, topicast.js (one ES
// module, no build step), which the server serves at /topicast.js, and its
// TypeScript declarations, served at /topicast.d.ts.
package jsclient

import (
	"bytes"
	_ "embed"
	"net/http"
	"time"
)

var (
	//go:embed topicast.js
	source []byte
	//go:embed topicast.d.ts
	declarations []byte
)

// Source returns the module's source.
func Source() []byte { return source }

// Declarations returns the module's TypeScript declarations.
func Declarations() []byte { return declarations }

var loaded = time.Now()

// Handler serves the module with a JavaScript content type. The
// X-TypeScript-Types header points Deno and other tools that follow it to
// the declarations.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-TypeScript-Types", "/topicast.d.ts")
		http.ServeContent(w, r, "topicast.js", loaded, bytes.NewReader(source))
	})
}

// DeclarationsHandler serves topicast.d.ts.
func DeclarationsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/typescript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "topicast.d.ts", loaded, bytes.NewReader(declarations))
	})
}
