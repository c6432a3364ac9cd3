package webtransport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDevCertificate(t *testing.T) {
	before := time.Now()
	cert, err := NewDevCertificate()
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)

	key, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	require.True(t, ok, "ECDSA key")
	require.Equal(t, elliptic.P256(), key.Curve)
	require.Equal(t, x509.ECDSAWithSHA256, leaf.SignatureAlgorithm)

	// Browsers pin only certificates valid for less than 14 days.
	require.Less(t, leaf.NotAfter.Sub(leaf.NotBefore), 14*24*time.Hour)
	require.WithinDuration(t, before.Add(-time.Hour), leaf.NotBefore, 2*time.Second)
	require.WithinDuration(t, before.Add(10*24*time.Hour), leaf.NotAfter, 2*time.Second)

	require.Equal(t, []string{"localhost"}, leaf.DNSNames)
	require.Len(t, leaf.IPAddresses, 2)
	require.True(t, leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)))
	require.True(t, leaf.IPAddresses[1].Equal(net.IPv6loopback))
	require.Equal(t, x509.KeyUsageDigitalSignature, leaf.KeyUsage)
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, leaf.ExtKeyUsage)
	require.NoError(t, leaf.VerifyHostname("127.0.0.1"))
	require.NoError(t, leaf.VerifyHostname("localhost"))

	hash := CertificateHash(cert)
	require.Regexp(t, `^[0-9a-f]{64}$`, hash)
	require.Empty(t, CertificateHash(nil))
}

func TestServerCertHashIsServed(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.start(t)
	require.Equal(t, CertificateHash(h.srv.certs.cur.Load().cert), h.srv.CertHash())
	_, _, err := dial(t, h.srv.URL(), h.srv.CertHash(), nil)
	require.NoError(t, err)
	_, _, err = dial(t, h.srv.URL(), "00"+h.srv.CertHash()[2:], nil)
	require.Error(t, err, "a wrong pin fails the handshake")
}

func TestDevCertificateRenewed(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.srv.renewAfter = 50 * time.Millisecond
	first := h.srv.CertHash()
	h.start(t)
	require.Eventually(t, func() bool { return h.srv.CertHash() != first }, 5*time.Second, 5*time.Millisecond)
	// Stop renewing so that the hash the client pins is the one served.
	h.srv.certs.cur.Load() // (renewal goes on; pin whatever is current and retry on a race)
	require.Eventually(t, func() bool {
		_, sess, err := dial(t, h.srv.URL(), h.srv.CertHash(), nil)
		if err != nil {
			return false
		}
		return sess.CloseWithError(0, "") == nil
	}, 5*time.Second, 10*time.Millisecond)
}

func TestLoadCertificate(t *testing.T) {
	cert, err := NewDevCertificate()
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))

	conf, err := LoadCertificate(certFile, keyFile)
	require.NoError(t, err)
	h := newHarness(t, Config{TLSConfig: conf}, true)
	require.Empty(t, h.srv.CertHash(), "no hash for a configured certificate")
	h.start(t)
	_, sess, err := dial(t, h.srv.URL(), CertificateHash(cert), nil)
	require.NoError(t, err)
	require.NoError(t, sess.CloseWithError(0, ""))

	_, err = LoadCertificate(filepath.Join(dir, "missing.pem"), keyFile)
	require.Error(t, err)
}
