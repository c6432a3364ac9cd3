package webtransport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync/atomic"
	"time"
)

// Lifetimes of the development certificate.
const (
	// DevCertValidity is how long a development certificate is valid after
	// it is made. Browsers accept a certificate pinned by
	// serverCertificateHashes only if it is valid for less than 14 days.
	DevCertValidity = 10 * 24 * time.Hour
	// DevCertRenewAfter is how long a running server serves a development
	// certificate before it makes a new one, leaving two days for clients
	// that fetched the old hash to connect while it is still valid.
	DevCertRenewAfter = 8 * 24 * time.Hour
	// devCertBackdate covers clocks a little behind the server's.
	devCertBackdate = time.Hour
)

// NewDevCertificate makes a self-signed development certificate that
// browsers accept through serverCertificateHashes: ECDSA P-256, valid from
// now-1h for DevCertValidity, for 127.0.0.1, ::1 and localhost. Its Leaf is
// set.
func NewDevCertificate() (*tls.Certificate, error) {
	return newDevCertificate(time.Now())
}

func newDevCertificate(now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("topicast: generate certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("topicast: certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "topicast development"},
		NotBefore:             now.Add(-devCertBackdate),
		NotAfter:              now.Add(DevCertValidity),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("topicast: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("topicast: parse certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// CertificateHash returns the lower-case hex SHA-256 of cert's leaf (DER),
// the form /v1/info reports and browsers pin with serverCertificateHashes.
func CertificateHash(cert *tls.Certificate) string {
	if cert == nil || len(cert.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(cert.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// LoadCertificate reads a PEM certificate chain and key (--tls-cert,
// --tls-key) and returns a TLS configuration serving them, for
// Config.TLSConfig. It fails if the certificate has already expired, so that
// a stale file is noticed at start rather than by every client.
func LoadCertificate(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("topicast: load certificate: %w", err)
	}
	if cert.Leaf == nil {
		return nil, errors.New("topicast: load certificate: no leaf certificate")
	}
	if now := time.Now(); now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("topicast: certificate %s expired on %s", certFile, cert.Leaf.NotAfter.Format(time.RFC3339))
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}, nil
}

// devCert is a development certificate and its hash, swapped as one value.
type devCert struct {
	cert    *tls.Certificate
	hash    string
	created time.Time
}

// certSource serves the current development certificate to new handshakes;
// the renewer replaces it. It is goroutine-safe.
type certSource struct {
	cur atomic.Pointer[devCert]
}

func (c *certSource) renew(now time.Time) error {
	cert, err := newDevCertificate(now)
	if err != nil {
		return err
	}
	c.cur.Store(&devCert{cert: cert, hash: CertificateHash(cert), created: now})
	return nil
}

func (c *certSource) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load().cert, nil
}

// renewRetry is how long the renewer waits after failing to make a
// certificate.
const renewRetry = time.Minute

// renewLoop replaces the development certificate every s.renewAfter until
// the server closes. New handshakes get the new certificate; connections
// already open keep theirs.
func (s *Server) renewLoop() {
	t := time.NewTimer(time.Until(s.certs.cur.Load().created.Add(s.renewAfter)))
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if err := s.certs.renew(time.Now()); err != nil {
			s.log.LogAttrs(s.ctx, slog.LevelError, "webtransport: renew development certificate", slog.Any("err", err))
			t.Reset(renewRetry)
			continue
		}
		s.log.LogAttrs(s.ctx, slog.LevelInfo, "webtransport: renewed development certificate", slog.String("cert_hash", s.CertHash()))
		t.Reset(s.renewAfter)
	}
}
