// Package browser tests topicast from Chromium, driven with chromedp: the
// browser's own WebTransport (stream and datagrams), WebSocket and
// EventSource against an in-process server, and topicast.js, the browser
// client served at /topicast.js, with its reconnection and recovery.
//
// The tests need Debian's /usr/bin/chromium. Without it they skip, or fail
// when the CI environment variable is set. They run one browser at a time,
// each with a fresh profile, and serve their page (testdata/) from an HTTP
// server of their own on 127.0.0.1, another origin than topicast's, as an
// application would. A screenshot of the page is saved under os.TempDir()
// and its path logged.
package browser
