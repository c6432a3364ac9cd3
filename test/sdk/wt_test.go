package sdktest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/webtransport"
)

// wtConfig is a config for the shared server's WebTransport endpoint.
func wtConfig(rec *recorder) sdk.Config {
	cfg := fastBackoff(rec)
	cfg.CertHash = srv.CertHash
	return cfg
}

// TestWebTransportSubscribeAndPublish: over WebTransport, a client gets
// what a service publishes and what it publishes itself, and KeepFrames
// hands out the frames byte for byte.
func TestWebTransportSubscribeAndPublish(t *testing.T) {
	ctx := testCtx(t)
	rec := newRecorder()
	cfg := wtConfig(rec)
	cfg.KeepFrames = true
	c := dial(t, srv.WTURL, cfg)
	topic := topicFor(t)
	_, err := c.Subscribe(ctx, topic, rec.handle)
	require.NoError(t, err)

	p := newPublisher(t, sdk.PublisherConfig{})
	for i := range 100 {
		_, err := p.Publish(ctx, topic, map[string]int{"n": i})
		require.NoError(t, err)
	}
	res, err := c.Publish(ctx, topic, json.RawMessage(`{ "from" : "client" }`))
	require.NoError(t, err)
	require.Equal(t, uint64(101), res.Seq)
	msgs := rec.waitMessages(t, 101)
	for i, m := range msgs {
		require.Equal(t, uint64(i+1), m.Seq)
		require.Equal(t, string(wire.AppendMsg(nil, m.Topic, m.Epoch, m.Seq, m.TS.UnixMilli(), m.Data)), string(m.Frame))
	}
	require.Equal(t, `{"from":"client"}`, string(msgs[100].Data))
	require.Equal(t, srv.WTURL, rec.waitEvents(t, sdk.EventConnected, 1)[0].URL)
	sub := rec.eventsOf(sdk.EventSubscribed)
	require.Len(t, sub, 1)
	require.Equal(t, uint64(0), sub[0].Seq)
}

// TestWebTransportCloseCodes: session error codes map to the same
// behaviour as WebSocket close codes, and a client that reconnects
// recovers what it missed.
func TestWebTransportCloseCodes(t *testing.T) {
	for _, tc := range []struct {
		code      wire.DisconnectCode
		reconnect bool
	}{
		{wire.CloseGoingAway, true},
		{wire.CloseSlowConsumer, true},
		{wire.CloseRateLimited, true},
		{0, true}, // an abort, without a protocol code
		{wire.CloseTooLarge, false},
		{wire.CloseUnauthorized, false},
		{wire.CloseProtocolError, false},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			ctx := testCtx(t)
			srv.waitSessions(t, 0)
			rec := newRecorder()
			c := dial(t, srv.WTURL, wtConfig(rec))
			topic := topicFor(t)
			_, err := c.Subscribe(ctx, topic, rec.handle)
			require.NoError(t, err)
			srv.waitSessions(t, 1)
			p := newPublisher(t, sdk.PublisherConfig{})
			_, err = p.Publish(ctx, topic, 1)
			require.NoError(t, err)
			rec.waitMessages(t, 1)

			require.Equal(t, 1, srv.closeSessions(transport.Disconnect{Code: tc.code, Reason: "test"}))
			if !tc.reconnect {
				ev := rec.waitEvents(t, sdk.EventClosed, 1)[0]
				var ce *sdk.CloseError
				require.ErrorAs(t, ev.Err, &ce)
				require.Equal(t, tc.code, ce.Code)
				require.Equal(t, "test", ce.Reason)
				<-c.Done()
				require.ErrorAs(t, c.Err(), &ce)
				return
			}
			ev := rec.waitEvents(t, sdk.EventDisconnected, 1)[0]
			if tc.code != 0 {
				var ce *sdk.CloseError
				require.ErrorAs(t, ev.Err, &ce)
				require.Equal(t, tc.code, ce.Code)
			}
			for i := 2; i <= 5; i++ {
				_, err = p.Publish(ctx, topic, i)
				require.NoError(t, err)
			}
			msgs := rec.waitMessages(t, 5)
			for i, m := range msgs {
				require.Equal(t, uint64(i+1), m.Seq)
			}
			rec.waitEvents(t, sdk.EventConnected, 2)
			require.Empty(t, rec.eventsOf(sdk.EventReset))
		})
	}
}

// TestWebTransportCertificates: the pinned hash must match; without one,
// the certificate must chain to TLSConfig's roots.
func TestWebTransportCertificates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := sdk.Dial(ctx, srv.WTURL, sdk.Config{CertHash: strings.Repeat("ab", 32)})
	require.ErrorContains(t, err, "not the pinned")
	_, err = sdk.Dial(ctx, srv.WTURL, sdk.Config{CertHash: "abc"})
	require.ErrorContains(t, err, "CertHash")
	_, err = sdk.Dial(ctx, srv.WTURL, sdk.Config{})
	require.ErrorContains(t, err, "certificate")

	// Colons and upper case are accepted.
	var hash []string
	for i := 0; i < len(srv.CertHash); i += 2 {
		hash = append(hash, strings.ToUpper(srv.CertHash[i:i+2]))
	}
	dial(t, srv.WTURL, sdk.Config{CertHash: strings.Join(hash, ":")})

	// A server with its own certificate, trusted as a root.
	cert, err := webtransport.NewDevCertificate()
	require.NoError(t, err)
	own, err := webtransport.New(webtransport.Config{
		Addr:      "127.0.0.1:0",
		Accept:    srv.accept,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS13},
	})
	require.NoError(t, err)
	require.NoError(t, own.Start(ctx))
	defer func() { require.NoError(t, own.Close()) }()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	rec := newRecorder()
	c, err := sdk.Dial(ctx, own.URL(), sdk.Config{TLSConfig: &tls.Config{RootCAs: roots}, OnEvent: rec.onEvent})
	require.NoError(t, err)
	_, err = c.Subscribe(ctx, topicFor(t), rec.handle)
	require.NoError(t, err)
	require.NoError(t, c.Close())
}

// TestDatagramSubscription: a datagram subscription gets increasing seqs,
// the newest value in the end, and large messages over the stream; it
// needs WebTransport and does not combine with Since.
func TestDatagramSubscription(t *testing.T) {
	ctx := testCtx(t)
	rec := newRecorder()
	c := dial(t, srv.WTURL, wtConfig(rec))
	topic := topicFor(t)
	_, err := c.Subscribe(ctx, topic, rec.handle, sdk.Datagram())
	require.NoError(t, err)
	p := newPublisher(t, sdk.PublisherConfig{})
	var last uint64
	for i := range 300 {
		res, err := p.Publish(ctx, topic, i)
		require.NoError(t, err)
		last = res.Seq
	}
	// Datagrams may be lost, even on loopback: publish until the newest
	// arrives.
	newest := func() uint64 {
		msgs := rec.messages()
		if len(msgs) == 0 {
			return 0
		}
		return msgs[len(msgs)-1].Seq
	}
	for newest() < last {
		res, err := p.Publish(ctx, topic, "tail")
		require.NoError(t, err)
		last = res.Seq
		deadline := time.Now().Add(200 * time.Millisecond)
		for newest() < last && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		require.Less(t, last, uint64(320), "the newest value does not arrive")
	}
	// A message too large for a datagram comes over the stream.
	big := fmt.Sprintf("%q", strings.Repeat("x", 4000))
	res, err := p.Publish(ctx, topic, json.RawMessage(big))
	require.NoError(t, err)
	rec.waitFor(t, 5*time.Second, "the large message", func() bool { return newest() == res.Seq })
	msgs := rec.messages()
	for i := 1; i < len(msgs); i++ {
		require.Greater(t, msgs[i].Seq, msgs[i-1].Seq)
	}
	require.Equal(t, big, string(msgs[len(msgs)-1].Data))
	t.Logf("datagram subscription: %d of %d messages", len(msgs), res.Seq)
	require.Empty(t, rec.eventsOf(sdk.EventGap))

	_, err = c.Subscribe(ctx, topicFor(t), rec.handle, sdk.Datagram(), sdk.Since("e", 1))
	require.ErrorContains(t, err, "Since")
	ws := dial(t, srv.WSURL, sdk.Config{})
	_, err = ws.Subscribe(ctx, topicFor(t), rec.handle, sdk.Datagram())
	var e *wire.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, wire.CodeBadRequest, e.Code)
}
