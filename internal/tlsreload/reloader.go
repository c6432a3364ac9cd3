package tlsreload

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often Run looks at the files when Config leaves
// Interval zero: reading two files of a few KiB every few seconds costs
// nothing, and a renewed certificate is usually installed days before the
// old one expires.
const DefaultInterval = 5 * time.Second

// Config configures a Reloader.
type Config struct {
	// CertFile holds the PEM certificate chain, leaf first; required.
	CertFile string
	// KeyFile holds the PEM private key of the leaf; required.
	KeyFile string
	// Interval is how often Run checks whether the files changed. Zero
	// means DefaultInterval; negative means never (Run returns at once and
	// only Reload loads).
	Interval time.Duration
	// Logger receives reloads and failed reloads; nil discards.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Stats are a Reloader's counters, for metrics.
type Stats struct {
	// Reloads counts the pairs loaded after the first.
	Reloads uint64
	// Failures counts the loads after the first that failed (the previous
	// certificate stayed).
	Failures uint64
	// NotAfter is the end of validity of the certificate served now.
	NotAfter time.Time
}

// Reloader serves the certificate of a pair of files and loads it again
// when asked or when the files change. It is goroutine-safe.
type Reloader struct {
	cfg Config
	log *slog.Logger

	// cur is read by every handshake, hence an atomic rather than mu.
	cur      atomic.Pointer[tls.Certificate]
	reloads  atomic.Uint64
	failures atomic.Uint64

	// mu serializes loads: Run's and Reload's (SIGHUP) may overlap.
	mu sync.Mutex
	// Guarded by mu: the sum of the files at the last load, successful
	// or not, so that Run tries a failed pair again only once it changed.
	seen [sha256.Size]byte
}

// New loads the pair of cfg. It fails when a file cannot be read, when the
// key does not match the certificate or when the certificate has expired;
// the error names the file.
func New(cfg Config) (*Reloader, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("tlsreload: both a certificate file and a key file are required")
	}
	cfg = cfg.withDefaults()
	r := &Reloader{cfg: cfg, log: cfg.Logger.With(slog.String("cert_file", cfg.CertFile))}
	pair := read(cfg.CertFile, cfg.KeyFile)
	r.seen = pair.sum
	cert, err := pair.parse(time.Now())
	if err != nil {
		return nil, err
	}
	r.cur.Store(cert)
	return r, nil
}

// GetCertificate returns the certificate to serve, for
// tls.Config.GetCertificate: each handshake reads the current one.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// Certificate returns the certificate served now (its Leaf is set).
func (r *Reloader) Certificate() *tls.Certificate { return r.cur.Load() }

// Config returns a server TLS configuration serving the current
// certificate, TLS 1.2 at least. Set NextProtos on it for ALPN; QUIC
// raises the minimum to 1.3 itself.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12}
}

// Stats returns the reload counters and the served certificate's expiry.
func (r *Reloader) Stats() Stats {
	return Stats{Reloads: r.reloads.Load(), Failures: r.failures.Load(), NotAfter: r.cur.Load().Leaf.NotAfter}
}

// Reload loads the pair now, whether or not the files changed. On failure
// the previous certificate stays; the error is logged and counted, and
// returned.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadLocked(read(r.cfg.CertFile, r.cfg.KeyFile), "reload")
}

// Run checks the files every Config.Interval and loads the pair when
// either changed, until ctx is done; it returns context.Cause(ctx).
func (r *Reloader) Run(ctx context.Context) error {
	if r.cfg.Interval < 0 {
		return nil
	}
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
			r.reloadIfChanged()
		}
	}
}

// reloadIfChanged loads the pair if the files' contents changed since the
// last load. It reports whether it tried.
func (r *Reloader) reloadIfChanged() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	pair := read(r.cfg.CertFile, r.cfg.KeyFile)
	if pair.sum == r.seen {
		return false
	}
	// The error is logged and counted by loadLocked; Run has no one to
	// return it to.
	_ = r.loadLocked(pair, "file_change")
	return true
}

// loadLocked serves pair, or keeps the current certificate and logs why.
// r.mu must be held.
func (r *Reloader) loadLocked(pair pair, trigger string) error {
	r.seen = pair.sum
	old := r.cur.Load()
	cert, err := pair.parse(time.Now())
	if err != nil {
		r.failures.Add(1)
		r.log.LogAttrs(context.Background(), slog.LevelError, "tls: certificate not reloaded, still serving the previous one",
			slog.String("trigger", trigger), slog.Any("err", err),
			slog.String("serial", old.Leaf.SerialNumber.Text(16)), slog.Time("not_after", old.Leaf.NotAfter))
		return err
	}
	r.cur.Store(cert)
	r.reloads.Add(1)
	r.log.LogAttrs(context.Background(), slog.LevelInfo, "tls: certificate reloaded",
		slog.String("trigger", trigger), slog.String("subject", cert.Leaf.Subject.String()),
		slog.String("serial", cert.Leaf.SerialNumber.Text(16)), slog.Time("not_after", cert.Leaf.NotAfter))
	return nil
}

// pair is what was read of the two files.
type pair struct {
	certFile, keyFile string
	certPEM, keyPEM   []byte
	err               error // reading failed
	// sum tells one reading from another. Contents rather than
	// modification times: file systems stamp with a coarse clock (a
	// certificate and its key written within a few milliseconds look
	// unchanged), and a touch with the same bytes needs no reload.
	sum [sha256.Size]byte
}

// read reads the two files.
func read(certFile, keyFile string) pair {
	p := pair{certFile: certFile, keyFile: keyFile}
	h := sha256.New()
	if p.certPEM, p.err = os.ReadFile(certFile); p.err != nil {
		p.err = fmt.Errorf("certificate file: %w", p.err)
		h.Write([]byte(p.err.Error()))
	} else if p.keyPEM, p.err = os.ReadFile(keyFile); p.err != nil {
		p.err = fmt.Errorf("key file: %w", p.err)
		h.Write([]byte(p.err.Error()))
	} else {
		// The length first, so that bytes moved from one file to the
		// other make another sum.
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(p.certPEM))))
		h.Write(p.certPEM)
		h.Write(p.keyPEM)
	}
	h.Sum(p.sum[:0])
	return p
}

// parse checks the pair (read, matching, not expired at now) and returns
// its certificate.
func (p pair) parse(now time.Time) (*tls.Certificate, error) {
	if p.err != nil {
		return nil, p.err
	}
	cert, err := tls.X509KeyPair(p.certPEM, p.keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", p.certFile, p.keyFile, err)
	}
	if cert.Leaf == nil {
		// X509KeyPair sets Leaf unless GODEBUG x509keypairleaf=0 says no.
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", p.certFile, err)
		}
	}
	if now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("certificate %s expired on %s", p.certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}
