package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport/auth"
)

var secSecret = []byte("security-test-secret-0123456789abcdef")

// secToken signs a token for sub that expires after ttl.
func secToken(t testing.TB, sub string, ttl time.Duration, subscribe, publish []string) string {
	t.Helper()
	tok, err := auth.Sign(secSecret, auth.Claims{Subject: sub, Expires: time.Now().Add(ttl), Subscribe: subscribe, Publish: publish})
	require.NoError(t, err)
	return tok
}

// forge signs claims with any method and key, to make bad tokens.
func secForge(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return tok
}

// startWT runs a server with WebTransport on a free port.
func startSecure(t *testing.T, cfg server.Config) *server.Server {
	t.Helper()
	cfg.WTAddr = "127.0.0.1:0"
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(secLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return startServer(t, cfg)
}

type secLogWriter struct{ t *testing.T }

func (w secLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// secExpectClose waits for code.
func secExpectClose(t *testing.T, c *secClient, code wire.DisconnectCode, timeout time.Duration) string {
	t.Helper()
	got, reason := c.closed(timeout)
	require.Equal(t, code, got, "reason %q", reason)
	return reason
}

// secOpenFor checks that c stays open for d.
func secOpenFor(t *testing.T, c *secClient, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-c.done:
			t.Fatalf("closed with %d %q", c.code, c.reason)
		case <-c.frames:
		case <-timer.C:
			return
		}
	}
}

// secTokenCase is one test of tokens; p is a topic prefix of its own, which
// its tokens allow as p+".*".
type secTokenCase struct {
	name string
	run  func(t *testing.T, srv *server.Server, dial func(query string) *secClient, p string)
}

func TestTokenCases(t *testing.T) {
	srv := startSecure(t, server.Config{Guard: actors.GuardConfig{TokenSecret: secSecret, HelloTimeout: 500 * time.Millisecond}})
	hour := time.Hour
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	b64 := base64.RawURLEncoding.EncodeToString
	exp := time.Now().Add(hour).Unix()
	badURLTokens := map[string]string{
		"malformed":             "not-a-token",
		"wrong signature":       secForge(t, jwt.SigningMethodHS256, []byte("another secret, as long as the right one"), jwt.MapClaims{"sub": "a", "exp": exp, "subscribe": []string{"*"}}),
		"wrong algorithm HS512": secForge(t, jwt.SigningMethodHS512, secSecret, jwt.MapClaims{"sub": "a", "exp": exp, "subscribe": []string{"*"}}),
		"wrong algorithm ES256": secForge(t, jwt.SigningMethodES256, ecKey, jwt.MapClaims{"sub": "a", "exp": exp, "subscribe": []string{"*"}}),
		"none":                  b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(fmt.Sprintf(`{"sub":"a","exp":%d,"subscribe":["*"]}`, exp))) + ".",
		"expired":               secForge(t, jwt.SigningMethodHS256, secSecret, jwt.MapClaims{"sub": "a", "exp": time.Now().Add(-time.Minute).Unix(), "subscribe": []string{"*"}}),
		"no exp":                secForge(t, jwt.SigningMethodHS256, secSecret, jwt.MapClaims{"sub": "a", "subscribe": []string{"*"}}),
	}
	cases := []secTokenCase{
		{"missing: first command sub closes 4001", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			c := dial("")
			c.cmd(`{"op":"sub","id":1,"topic":%q}`, p+".a")
			secExpectClose(t, c, wire.CloseUnauthorized, 5*time.Second)
		}},
		{"missing: no hello in time closes 4009", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			start := time.Now()
			c := dial("")
			secExpectClose(t, c, wire.CloseProtocolError, 5*time.Second)
			require.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond)
		}},
		{"missing: ping then hello then sub", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			c := dial("")
			c.alive(t)
			c.cmd(`{"op":"hello","id":1,"token":%q}`, secToken(t, "a", hour, []string{p + ".*"}, nil))
			require.Equal(t, "ok", c.reply(1).Op)
			c.cmd(`{"op":"sub","id":2,"topic":%q}`, p+".a")
			require.Equal(t, "ok", c.reply(2).Op)
			secOpenFor(t, c, 700*time.Millisecond) // past the hello timeout
		}},
		{"missing: bad frame before hello closes 4001", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			c := dial("")
			c.cmd(`{"op":"nope","id":1}`)
			secExpectClose(t, c, wire.CloseUnauthorized, 5*time.Second)
		}},
		{"hello with a bad token closes 4001", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			c := dial("")
			c.cmd(`{"op":"hello","id":1,"token":%q}`, badURLTokens["wrong signature"])
			secExpectClose(t, c, wire.CloseUnauthorized, 5*time.Second)
		}},
		{"hello without a token closes 4001", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			c := dial("")
			c.cmd(`{"op":"hello","id":1}`)
			secExpectClose(t, c, wire.CloseUnauthorized, 5*time.Second)
		}},
		{"hello after another command is bad_request", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			tok := secToken(t, "a", hour, []string{p + ".*"}, nil)
			c := dial(secTokenQuery(tok))
			c.cmd(`{"op":"sub","id":1,"topic":%q}`, p+".a")
			require.Equal(t, "ok", c.reply(1).Op)
			c.cmd(`{"op":"hello","id":2,"token":%q}`, tok)
			f := c.reply(2)
			require.Equal(t, "bad_request", f.Code, f.Raw)
			c.alive(t)
		}},
		{"expiring while connected closes 4001", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			tok := secToken(t, "a", 2*time.Second, []string{p + ".*"}, nil) // exp in (1 s, 2 s]
			start := time.Now()
			c := dial(secTokenQuery(tok))
			c.alive(t)
			reason := secExpectClose(t, c, wire.CloseUnauthorized, 5*time.Second)
			require.Contains(t, reason, "expired")
			require.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond)
		}},
		{"refreshed before expiry stays open", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			c := dial(secTokenQuery(secToken(t, "a", 2*time.Second, []string{p + ".*"}, nil)))
			c.cmd(`{"op":"refresh","id":1,"token":%q}`, secToken(t, "a", hour, []string{p + ".*"}, nil))
			require.Equal(t, "ok", c.reply(1).Op)
			secOpenFor(t, c, 2500*time.Millisecond)
			c.alive(t)
		}},
		{"refreshed with a bad token: unauthorized, old token stays", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			c := dial(secTokenQuery(secToken(t, "a", 2*time.Second, []string{p + ".*"}, nil)))
			for i, bad := range []string{"garbage", badURLTokens["wrong signature"], badURLTokens["none"], badURLTokens["expired"],
				secToken(t, "someone else", hour, []string{"*"}, nil)} {
				id := uint64(i + 1)
				c.cmd(`{"op":"refresh","id":%d,"token":%q}`, id, bad)
				f := c.reply(id)
				require.Equal(t, "error", f.Op)
				require.Equal(t, "unauthorized", f.Code, f.Raw)
			}
			c.cmd(`{"op":"sub","id":9,"topic":%q}`, p+".a")
			require.Equal(t, "ok", c.reply(9).Op, "the old token is in force")
			secExpectClose(t, c, wire.CloseUnauthorized, 5*time.Second) // at the old expiry
		}},
		{"refreshed to narrower claims ends subscriptions", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			c := dial(secTokenQuery(secToken(t, "a", hour, []string{p + ".*"}, nil)))
			c.cmd(`{"op":"sub","id":1,"topic":%q}`, p+".keep")
			require.Equal(t, "ok", c.reply(1).Op)
			c.cmd(`{"op":"sub","id":2,"topic":%q}`, p+".lose")
			require.Equal(t, "ok", c.reply(2).Op)
			c.cmd(`{"op":"refresh","id":3,"token":%q}`, secToken(t, "a", hour, []string{p + ".keep"}, nil))
			var ended testutil.Frame
			okSeen := false
			for !okSeen || ended.Op == "" {
				f := c.next(5 * time.Second)
				switch {
				case f.Op == "ok" && f.ID == 3:
					okSeen = true
				case f.Op == "error" && f.ID == 0:
					ended = f
				default:
					t.Fatalf("unexpected frame %s", f.Raw)
				}
			}
			require.Equal(t, p+".lose", ended.Topic)
			require.Equal(t, "forbidden", ended.Code)
			require.NotContains(t, ended.Raw, `"id"`)
			publish(t, srv, p+".lose", `{"n":1}`)
			publish(t, srv, p+".keep", `{"n":2}`)
			f := c.next(5 * time.Second)
			require.Equal(t, "msg", f.Op)
			require.Equal(t, p+".keep", f.Topic, "no message of the revoked topic")
			c.cmd(`{"op":"sub","id":4,"topic":%q}`, p+".lose")
			require.Equal(t, "forbidden", c.reply(4).Code)
		}},
		{"patterns allow and deny sub and pub", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			c := dial(secTokenQuery(secToken(t, "a", hour, []string{p + ".game.*", p + ".exact", "sys:*"}, []string{p + ".chat.*"})))
			steps := []struct {
				frame, want string
			}{
				{`{"op":"sub","id":%d,"topic":"` + p + `.game.1"}`, "ok"},
				{`{"op":"sub","id":%d,"topic":"` + p + `.exact"}`, "ok"},
				{`{"op":"sub","id":%d,"topic":"sys:status"}`, "ok"},
				{`{"op":"sub","id":%d,"topic":"` + p + `.exact2"}`, "forbidden"},
				{`{"op":"sub","id":%d,"topic":"` + p + `.gamex"}`, "forbidden"},
				{`{"op":"sub","id":%d,"topic":"` + p + `.chat.1"}`, "forbidden"},
				{`{"op":"pub","id":%d,"topic":"` + p + `.chat.1","data":1}`, "ok"},
				{`{"op":"pub","id":%d,"topic":"` + p + `.game.1","data":1}`, "forbidden"},
				{`{"op":"pub","id":%d,"topic":"sys:status","data":1}`, "forbidden"},
			}
			for i, s := range steps {
				id := uint64(i + 1)
				c.cmd(s.frame, id)
				f := c.reply(id)
				if s.want == "ok" {
					require.Equal(t, "ok", f.Op, "%s: %s", s.frame, f.Raw)
				} else {
					require.Equal(t, s.want, f.Code, "%s: %s", s.frame, f.Raw)
				}
			}
		}},
		{"hello replaces the URL token when first", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			c := dial(secTokenQuery(secToken(t, "a", hour, []string{p + ".one"}, nil)))
			c.cmd(`{"op":"hello","id":1,"token":%q}`, secToken(t, "a", hour, []string{p + ".two"}, nil))
			require.Equal(t, "ok", c.reply(1).Op)
			c.cmd(`{"op":"sub","id":2,"topic":%q}`, p+".two")
			require.Equal(t, "ok", c.reply(2).Op)
			c.cmd(`{"op":"sub","id":3,"topic":%q}`, p+".one")
			require.Equal(t, "forbidden", c.reply(3).Code)
		}},
	}
	for name, tok := range badURLTokens {
		cases = append(cases, secTokenCase{"URL token " + name + " closes 4001", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			c := dial(secTokenQuery(tok))
			secExpectClose(t, c, wire.CloseUnauthorized, 5*time.Second)
		}})
		cases = append(cases, secTokenCase{"hello token " + name + " closes 4001", func(t *testing.T, srv *server.Server, dial func(string) *secClient, p string) {
			c := dial("")
			c.cmd(`{"op":"hello","id":1,"token":%q}`, tok)
			secExpectClose(t, c, wire.CloseUnauthorized, 5*time.Second)
		}})
	}
	for _, tr := range secTransports {
		t.Run(tr, func(t *testing.T) {
			for i, tc := range cases {
				p := tr + "-" + strconv.Itoa(i)
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, srv, func(q string) *secClient { return dialSec(t, srv, tr, q) }, p)
				})
			}
		})
	}
}

// TestTokenOpenServer: without a secret, hello and refresh are answered ok
// and their tokens ignored, and everything is allowed.
func TestTokenOpenServer(t *testing.T) {
	srv := startSecure(t, server.Config{})
	for _, tr := range secTransports {
		t.Run(tr, func(t *testing.T) {
			c := dialSec(t, srv, tr, "?token=whatever")
			c.cmd(`{"op":"hello","id":1,"token":"garbage"}`)
			require.Equal(t, "ok", c.reply(1).Op)
			c.cmd(`{"op":"sub","id":2,"topic":"open.%s"}`, tr)
			require.Equal(t, "ok", c.reply(2).Op)
			c.cmd(`{"op":"pub","id":3,"topic":"open.%s","data":1}`, tr)
			require.Equal(t, "ok", c.reply(3).Op)
			c.cmd(`{"op":"refresh","id":4,"token":"garbage"}`)
			require.Equal(t, "ok", c.reply(4).Op)
			secOpenFor(t, c, 200*time.Millisecond)
		})
	}
}

// TestLimits checks each limit over both secTransports, one at a time (the
// connection limit counts every client of the node).
func TestLimits(t *testing.T) {
	const maxConns = 4
	srv := startSecure(t, server.Config{
		Node:         cluster.Config{MaxMessage: 1024},
		MaxQueue:     2048,
		APIKeys:      []string{"rate-key", "other-key", "ws-key", "wt-key"},
		PublishRate:  1,
		PublishBurst: 2,
		Guard: actors.GuardConfig{
			TokenSecret:      secSecret,
			MaxConns:         maxConns,
			MaxSubscriptions: 3,
			CommandRate:      20,
			CommandBurst:     10,
		},
	})
	tok := secToken(t, "limits", time.Hour, []string{"*"}, []string{"*"})
	for _, tr := range secTransports {
		dial := func(t *testing.T) *secClient { return dialSec(t, srv, tr, secTokenQuery(tok)) }
		cases := []struct {
			name string
			run  func(t *testing.T)
		}{
			{"message size", func(t *testing.T) {
				c := dial(t)
				c.cmd(`{"op":"pub","id":1,"topic":"big","data":"%s"}`, strings.Repeat("x", 1100))
				require.Equal(t, "too_large", c.reply(1).Code)
				c.cmd(`{"op":"pub","id":2,"topic":"big","data":"%s"}`, strings.Repeat("x", 1024+4096+10))
				secExpectClose(t, c, wire.CloseTooLarge, 5*time.Second)
			}},
			{"subscriptions per connection", func(t *testing.T) {
				c := dial(t)
				for i := 1; i <= 3; i++ {
					c.cmd(`{"op":"sub","id":%d,"topic":"s.%d"}`, i, i)
					require.Equal(t, "ok", c.reply(uint64(i)).Op)
				}
				c.cmd(`{"op":"sub","id":4,"topic":"s.4"}`)
				f := c.reply(4)
				require.Equal(t, "bad_request", f.Code, f.Raw)
				require.Contains(t, f.Message, "too many subscriptions")
				c.cmd(`{"op":"unsub","id":5,"topic":"s.1"}`)
				require.Equal(t, "ok", c.reply(5).Op)
				c.cmd(`{"op":"sub","id":6,"topic":"s.4"}`)
				require.Equal(t, "ok", c.reply(6).Op)
			}},
			{"commands per second", func(t *testing.T) {
				c := dial(t)
				for i := 1; i <= 15; i++ {
					c.cmd(`{"op":"unsub","id":%d,"topic":"none"}`, i)
				}
				// Refusals come from the reader, answers from the actor:
				// their order may differ.
				limited, seen := 0, map[uint64]bool{}
				for range 15 {
					f := c.next(5 * time.Second)
					require.Equal(t, "error", f.Op, f.Raw)
					require.False(t, seen[f.ID], f.Raw)
					seen[f.ID] = true
					if f.Code == "rate_limited" {
						limited++
					} else {
						require.Equal(t, "bad_request", f.Code, f.Raw)
					}
				}
				require.GreaterOrEqual(t, limited, 3, "a burst over the limit is refused")
				secOpenFor(t, c, time.Second) // refills
				c.alive(t)
				for i := range 300 {
					if c.send(`{"op":"ping"}`) != nil {
						require.Greater(t, i, 10)
						break
					}
				}
				secExpectClose(t, c, wire.CloseRateLimited, 5*time.Second)
			}},
			{"connections per node", func(t *testing.T) {
				var cs []*secClient
				for range maxConns {
					c := dial(t)
					c.alive(t)
					cs = append(cs, c)
				}
				extra := dial(t)
				reason := secExpectClose(t, extra, wire.CloseRateLimited, 5*time.Second)
				require.Contains(t, reason, "too many connections")
				cs[0].close()
				testutil.Eventually(t, 5*time.Second, func() error {
					if n := srv.Guard().Conns(); n >= maxConns {
						return fmt.Errorf("%d connections", n)
					}
					return nil
				})
				dial(t).alive(t)
			}},
			{"slow consumer queue bytes", func(t *testing.T) {
				// The client reads the sub's ok, then stops reading while
				// messages are published one by one.
				c := dialSecHold(t, srv, tr, secTokenQuery(tok), 1)
				topic := "slow." + tr
				c.cmd(`{"op":"sub","id":1,"topic":%q}`, topic)
				require.Equal(t, "ok", c.reply(1).Op)
				d := []byte(`"` + strings.Repeat("x", 1000) + `"`)
				for i := 0; i < 20000 && srv.Node().Conns() > 0; i++ {
					_, err := srv.Node().Publish(context.Background(), []wire.PublishItem{{Topic: topic, Data: d}})
					require.NoError(t, err)
				}
				close(c.resume)
				secExpectClose(t, c, wire.CloseSlowConsumer, 20*time.Second)
			}},
		}
		for _, tc := range cases {
			t.Run(tr+"/"+tc.name, func(t *testing.T) {
				// The clients of the case before may still be closing.
				testutil.Eventually(t, 5*time.Second, func() error {
					if n := srv.Guard().Conns(); n != 0 {
						return fmt.Errorf("%d connections left", n)
					}
					return nil
				})
				tc.run(t)
			})
		}
	}
	t.Run("publishes per API key", func(t *testing.T) {
		body := `{"topic":"rate","data":1}`
		status, _ := post(t, srv, body)
		require.Equal(t, http.StatusUnauthorized, status)
		status, _ = post(t, srv, body, "Authorization", "Bearer wrong")
		require.Equal(t, http.StatusForbidden, status)
		for range 2 {
			status, b := post(t, srv, body, "Authorization", "Bearer rate-key")
			require.Equal(t, http.StatusOK, status, "%s", b)
		}
		req, err := http.NewRequest(http.MethodPost, "http://"+srv.Addr()+"/v1/publish", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer rate-key")
		resp, err := httpClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		require.NoError(t, err)
		require.GreaterOrEqual(t, ra, 1)
		status, b := post(t, srv, body, "Authorization", "Bearer other-key")
		require.Equal(t, http.StatusOK, status, "another key has its own budget: %s", b)
	})
}

// secTransports are the client protocols the security tests run over.
var secTransports = []string{"ws", "wt"}

// secClient speaks the protocol over WebSocket or WebTransport: frames go
// in with send, and every frame read (pings answered, not returned) comes
// out of next; closed reports the server's close code.
type secClient struct {
	t      testing.TB
	send   func(frame string) error
	frames chan testutil.Frame
	done   chan struct{}
	code   wire.DisconnectCode
	reason string
	// close ends the connection (a WebTransport session close; a TCP FIN
	// without a WebSocket close frame). drop ends it without a protocol
	// close (a QUIC CONNECTION_CLOSE; a TCP reset). vanish stops the
	// client without telling the server (its UDP socket closes; a TCP FIN).
	close, drop, vanish func()
	// hold, when set, stops the reader after that many frames until
	// resume is closed.
	hold, delivered int
	resume          chan struct{}
}

// deliver hands f to the test; it runs on the reader.
func (c *secClient) deliver(f testutil.Frame) {
	c.frames <- f
	c.delivered++
	if c.delivered == c.hold {
		<-c.resume
	}
}

// dialSec connects to srv over transport ("ws" or "wt") with query (such
// as "?token=...") and starts reading. A WebTransport client opens its
// stream with an empty line, which the server ignores.
func dialSec(t testing.TB, srv *server.Server, transport, query string) *secClient {
	t.Helper()
	return dialSecHold(t, srv, transport, query, 0)
}

// dialSecHold is dialSec for a client that stops reading after hold frames
// (0: never) until resume is closed; its WebSocket receive buffer is small.
func dialSecHold(t testing.TB, srv *server.Server, transport, query string, hold int) *secClient {
	t.Helper()
	c := &secClient{t: t, frames: make(chan testutil.Frame, 4096), done: make(chan struct{}), hold: hold, resume: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch transport {
	case "ws":
		rcvbuf := 0
		if hold > 0 {
			rcvbuf = 128 << 10
		}
		ws, err := testutil.DialWS(ctx, wsURL(srv)+query, rcvbuf)
		require.NoError(t, err)
		c.send = ws.Send
		c.close = func() { _ = ws.Close() } // no close frame, but a FIN
		c.vanish = c.close
		c.drop = func() {
			if tc, ok := ws.Conn.(interface{ SetLinger(int) error }); ok {
				_ = tc.SetLinger(0) // a reset rather than a FIN; a FIN will do if it fails
			}
			_ = ws.Close()
		}
		go func() {
			defer close(c.done)
			defer close(c.frames)
			ws.Read(func(f []byte) { c.deliver(secDecode(f)) })
			c.code, c.reason = ws.CloseCode, ws.CloseReason
		}()
	case "wt":
		tr, sess, str := secDialWT(t, srv, query)
		c.send = func(frame string) error {
			_, err := str.Write([]byte(frame + "\n"))
			return err
		}
		c.close = func() {
			_ = sess.CloseWithError(0, "")    // always nil
			_ = tr.conn.CloseWithError(0, "") // tells the server even if the session close is not out yet
			tr.close()
		}
		c.drop = func() {
			_ = tr.conn.CloseWithError(0, "gone") // no session close
			tr.close()
		}
		c.vanish = tr.close // the server hears nothing more
		require.NoError(t, c.send(""))
		go func() {
			defer close(c.done)
			defer close(c.frames)
			br := bufio.NewReader(str)
			for {
				line, err := br.ReadBytes('\n')
				if len(bytes.TrimSpace(line)) > 0 && err == nil {
					f := bytes.TrimSuffix(line, []byte("\n"))
					if bytes.Equal(f, wire.PingFrame) {
						_ = c.send(string(wire.PongFrame)) // a dead session ends the loop anyway
						continue
					}
					c.deliver(secDecode(f))
				}
				if err != nil {
					<-sess.Context().Done()
					var se *webtransport.SessionError
					if errors.As(err, &se) || errors.As(context.Cause(sess.Context()), &se) {
						c.code, c.reason = wire.DisconnectCode(se.ErrorCode), se.Message
					} else if _, rerr := str.Read(make([]byte, 1)); errors.As(rerr, &se) {
						c.code, c.reason = wire.DisconnectCode(se.ErrorCode), se.Message
					}
					return
				}
			}
		}()
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	t.Cleanup(c.close)
	return c
}

func secDecode(f []byte) testutil.Frame {
	var fr testutil.Frame
	if err := json.Unmarshal(f, &fr); err != nil {
		fr.Op = "invalid"
	}
	fr.Raw = string(f)
	return fr
}

// wtConn is a client's QUIC side: its own UDP socket, so that a test can
// make it go silent.
type wtConn struct {
	udp  *net.UDPConn
	qt   *quic.Transport
	conn *quic.Conn
}

func (c *wtConn) close() {
	_ = c.qt.Close()  // closes its connections; nothing to do on error
	_ = c.udp.Close() // idem
}

// secDialWT opens a WebTransport session to srv, pinning its development
// certificate, and the session's stream.
func secDialWT(t testing.TB, srv *server.Server, query string) (*wtConn, *webtransport.Session, *webtransport.Stream) {
	t.Helper()
	info := srv.Info().(server.Info)
	require.NotNil(t, info.WebTransport, "the server has no WebTransport")
	hash := info.WebTransport.CertHash
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	wc := &wtConn{udp: udp, qt: &quic.Transport{Conn: udp}}
	t.Cleanup(wc.close)
	tr := &webtransport.Transport{
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, // verified by pinning instead
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return errors.New("no certificate")
				}
				sum := sha256.Sum256(raw[0])
				if hex.EncodeToString(sum[:]) != hash {
					return errors.New("certificate hash mismatch")
				}
				return nil
			},
			NextProtos: []string{http3.NextProtoH3},
		},
		QUICConfig: &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true},
		DialAddr: func(ctx context.Context, addr string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error) {
			ua, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				return nil, err
			}
			wc.conn, err = wc.qt.DialEarly(ctx, ua, tlsConf, conf)
			return wc.conn, err
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, sess, err := tr.Dial(ctx, srv.WebTransportURL()+query, nil)
	require.NoError(t, err)
	str, err := sess.OpenStreamSync(ctx)
	require.NoError(t, err)
	return wc, sess, str
}

// secTokenQuery returns "?token=tok".
func secTokenQuery(tok string) string { return "?token=" + url.QueryEscape(tok) }

// cmd sends a frame or fails the test.
func (c *secClient) cmd(format string, args ...any) {
	c.t.Helper()
	require.NoError(c.t, c.send(fmt.Sprintf(format, args...)))
}

// next returns the next frame, failing the test after timeout or when the
// connection ends.
func (c *secClient) next(timeout time.Duration) testutil.Frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection closed (%d %q) while a frame was expected", c.code, c.reason)
		}
		return f
	case <-time.After(timeout):
		c.t.Fatalf("no frame in %v", timeout)
		return testutil.Frame{}
	}
}

// until returns the first frame that match accepts, skipping others.
func (c *secClient) until(timeout time.Duration, match func(testutil.Frame) bool) testutil.Frame {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f := c.next(time.Until(deadline))
		if match(f) {
			return f
		}
	}
}

// reply waits for the answer to command id (ok or error).
func (c *secClient) reply(id uint64) testutil.Frame {
	c.t.Helper()
	return c.until(5*time.Second, func(f testutil.Frame) bool { return f.ID == id && (f.Op == "ok" || f.Op == "error") })
}

// closed waits for the connection to end and returns the close code; frames
// still unread are dropped.
func (c *secClient) closed(timeout time.Duration) (wire.DisconnectCode, string) {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case <-c.frames:
		case <-c.done:
			return c.code, c.reason
		case <-deadline:
			c.t.Fatalf("connection still open after %v", timeout)
			return 0, ""
		}
	}
}

// alive checks that the connection still answers a ping.
func (c *secClient) alive(t testing.TB) {
	t.Helper()
	c.cmd(`{"op":"ping"}`)
	f := c.until(5*time.Second, func(f testutil.Frame) bool { return f.Op == "pong" })
	require.Equal(t, "pong", f.Op)
}

// TestTokenHTTPClients: SSE, long polling and history need a valid token
// (?token= or Authorization: Bearer) that allows their topics when the
// server requires tokens: 401 without, 403 for a topic outside the claims.
func TestTokenHTTPClients(t *testing.T) {
	srv := startServer(t, server.Config{Guard: actors.GuardConfig{TokenSecret: secSecret}})
	good := secToken(t, "http", time.Hour, []string{"h.*"}, nil)
	expired := secForge(t, jwt.SigningMethodHS256, secSecret, jwt.MapClaims{"sub": "a", "exp": time.Now().Add(-time.Minute).Unix(), "subscribe": []string{"*"}})
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"a","exp":9999999999,"subscribe":["*"]}`)) + "."
	base := "http://" + srv.Addr()
	endpoints := map[string]string{
		"sse":     base + "/v1/sse?topic=h.a",
		"poll":    base + "/v1/poll?topic=h.a&timeout=0",
		"history": base + "/v1/history?topic=h.a",
	}
	for name, u := range endpoints {
		for _, tc := range []struct {
			name, query, bearer string
			status              int
			code                string
		}{
			{"missing", "", "", http.StatusUnauthorized, "unauthorized"},
			{"malformed", "garbage", "", http.StatusUnauthorized, "unauthorized"},
			{"expired", expired, "", http.StatusUnauthorized, "unauthorized"},
			{"none", none, "", http.StatusUnauthorized, "unauthorized"},
			{"bad bearer", "", "garbage", http.StatusUnauthorized, "unauthorized"},
			{"topic outside the claims", secToken(t, "http", time.Hour, []string{"other"}, nil), "", http.StatusForbidden, "forbidden"},
			{"query token", good, "", http.StatusOK, ""},
			{"bearer token", "", good, http.StatusOK, ""},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				target := u
				if tc.query != "" {
					target += "&token=" + url.QueryEscape(tc.query)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
				require.NoError(t, err)
				if tc.bearer != "" {
					req.Header.Set("Authorization", "Bearer "+tc.bearer)
				}
				resp, err := httpClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				require.Equal(t, tc.status, resp.StatusCode)
				if tc.status != http.StatusOK {
					var body struct {
						Error struct{ Code, Message string }
					}
					require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
					require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
					require.Equal(t, tc.code, body.Error.Code)
					require.NotEmpty(t, body.Error.Message)
					return
				}
				if name == "sse" {
					br := bufio.NewReader(resp.Body)
					line, err := br.ReadString('\n')
					require.NoError(t, err)
					require.Equal(t, "event: ready\n", line)
				}
			})
		}
	}
}
