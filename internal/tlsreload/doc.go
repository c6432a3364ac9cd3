// Package tlsreload serves a certificate and key read from PEM files
// (serve's --tls-cert and --tls-key) and replaces them while the server
// runs, so that a renewed certificate (certbot, cert-manager) reaches
// clients without a restart and without closing a connection.
//
// A Reloader loads the pair once in New, which fails, naming the file, when
// a file cannot be read, the key does not match the certificate or the
// certificate has expired: a server must not start with a certificate no
// client accepts. Afterwards a pair is loaded again on Reload (serve calls
// it on SIGHUP) and by Run when either file's contents change (Run reads
// both every few seconds and compares their SHA-256 with the last load's).
// A load that fails leaves the previous certificate in place: the failure
// is logged with its reason and counted (Stats), and Run tries again at the
// files' next change, which covers a certificate written before its key.
//
// New handshakes get the current certificate through GetCertificate, which
// both the HTTPS listener and WebTransport's QUIC listener use (Config
// returns a tls.Config built on it); connections already open keep the
// certificate they were made with.
//
// # Usage
//
//	r, err := tlsreload.New(tlsreload.Config{CertFile: "cert.pem", KeyFile: "key.pem", Logger: logger})
//	srv := &http.Server{TLSConfig: r.Config()}
//	go r.Run(ctx) // watch the files until ctx is done
//	r.Reload()    // on SIGHUP
//
// A Reloader is goroutine-safe. It starts no goroutine: Run's caller owns
// the one that polls.
package tlsreload
