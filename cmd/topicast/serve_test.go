package main

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// TestServeDefaults checks what the serve flags hand the server when left
// out, and that --history-size 0 keeps no history: the flag shows its
// default, so its 0 means none, which actors.TopicConfig spells -1 (its 0
// means the default).
func TestServeDefaults(t *testing.T) {
	parse := func(args ...string) *Main {
		m := NewMain(io.Discard, io.Discard)
		require.NoError(t, m.ParseFlags(args))
		return m
	}
	m := parse()
	require.Equal(t, actors.DefaultHistorySize, m.cfg.Node.Topic.HistorySize)
	require.Equal(t, wire.DefaultMaxMessage, m.cfg.Node.MaxMessage)
	require.Equal(t, -1, parse("--history-size", "0").cfg.Node.Topic.HistorySize)
	require.Equal(t, 7, parse("--history-size", "7").cfg.Node.Topic.HistorySize)
	require.Error(t, NewMain(io.Discard, io.Discard).ParseFlags([]string{"--history-size", "-1"}))

	require.False(t, m.cfg.DisableGRPC, "the gRPC API is on by default")
	require.True(t, parse("--grpc", "off").cfg.DisableGRPC)
	require.False(t, parse("--grpc", "on").cfg.DisableGRPC)
	require.Error(t, NewMain(io.Discard, io.Discard).ParseFlags([]string{"--grpc", "no"}))
}

// TestServeTLSFlags checks that --tls-cert and --tls-key are loaded while
// the flags are parsed (so that `config check` and a bad pair fail before
// anything listens), and go together.
func TestServeTLSFlags(t *testing.T) {
	ca := testutil.NewCA(t)
	leaf := ca.Issue(t, testutil.LeafOptions{})
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testutil.WriteFileAtomic(t, certFile, leaf.CertPEM)
	testutil.WriteFileAtomic(t, keyFile, leaf.KeyPEM)

	m := NewMain(io.Discard, io.Discard)
	require.NoError(t, m.ParseFlags([]string{"--tls-cert", certFile, "--tls-key", keyFile}))
	require.NotNil(t, m.cfg.TLS)
	require.Equal(t, leaf.Cert.SerialNumber, m.cfg.TLS.Certificate().Leaf.SerialNumber)
	require.Nil(t, parseOK(t).cfg.TLS, "no files: plain HTTP")

	err := NewMain(io.Discard, io.Discard).ParseFlags([]string{"--tls-cert", certFile})
	require.ErrorContains(t, err, "--tls-cert and --tls-key go together")
	err = NewMain(io.Discard, io.Discard).ParseFlags([]string{"--tls-cert", keyFile, "--tls-key", keyFile})
	require.ErrorContains(t, err, "--tls-cert/--tls-key: certificate "+keyFile)
}

func parseOK(t *testing.T, args ...string) *Main {
	t.Helper()
	m := NewMain(io.Discard, io.Discard)
	require.NoError(t, m.ParseFlags(args))
	return m
}
