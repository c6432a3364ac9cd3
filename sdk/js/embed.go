// Package jsclient embeds topicast's browser client, topicast.js (one ES
// module, no build step), which the server serves at /topicast.js.
package jsclient

import (
	"bytes"
	_ "embed"
	"net/http"
	"time"
)

//go:embed topicast.js
var source []byte

// Source returns the module's source.
func Source() []byte { return source }

var loaded = time.Now()

// Handler serves the module with a JavaScript content type.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "topicast.js", loaded, bytesReader(source))
	})
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
