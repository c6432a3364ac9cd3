package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk/wire"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

func TestVerify(t *testing.T) {
	now := time.Now()
	exp := jwt.NewNumericDate(now.Add(time.Hour))
	good := jwt.MapClaims{"sub": "alice", "exp": exp, "subscribe": []string{"game.*"}, "publish": []string{"chat"}}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	b64 := base64.RawURLEncoding.EncodeToString
	// A hand-made "none" token, and an HS256 header over a body signed with
	// another secret.
	none := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(`{"sub":"a","exp":9999999999}`)) + "."
	for _, tc := range []struct {
		name, token, msg string
	}{
		{"missing", "", "required"},
		{"malformed", "not.a.jwt", "malformed"},
		{"garbage", "abc", "malformed"},
		{"too long", strings.Repeat("a", MaxTokenLen+1), "longer"},
		{"wrong signature", sign(t, jwt.SigningMethodHS256, []byte("another secret of enough length!"), good), "signature"},
		{"wrong algorithm HS512", sign(t, jwt.SigningMethodHS512, secret, good), "HS256"},
		{"wrong algorithm ES256", sign(t, jwt.SigningMethodES256, ecKey, good), "HS256"},
		{"none", none, "HS256"},
		{"none via library", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good), "HS256"},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a", "exp": now.Add(-time.Minute).Unix()}), "expired"},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a"}), "exp"},
		{"no sub", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp}), "sub"},
		{"bad pattern", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a", "exp": exp, "subscribe": []string{"a*b"}}), "pattern"},
		{"patterns not a list", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a", "exp": exp, "publish": "chat"}), "malformed"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a", "exp": exp, "nbf": now.Add(time.Hour).Unix()}), "not valid yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(secret, nil).Verify(tc.token)
			require.Error(t, err)
			e := wire.AsError(err)
			require.Equal(t, wire.CodeUnauthorized, e.Code)
			require.Contains(t, e.Message, tc.msg)
		})
	}
	t.Run("good", func(t *testing.T) {
		c, err := NewVerifier(secret, nil).Verify(sign(t, jwt.SigningMethodHS256, secret, good))
		require.NoError(t, err)
		require.Equal(t, "alice", c.Subject)
		require.Equal(t, exp.Unix(), c.Expires.Unix())
		require.True(t, c.Subscribe.Allow("game.1"))
		require.False(t, c.Subscribe.Allow("chat"))
		require.True(t, c.Publish.Allow("chat"))
		require.False(t, c.Publish.Allow("game.1"))
	})
	t.Run("clock", func(t *testing.T) {
		tok, err := Sign(secret, Claims{Subject: "a", Expires: now.Add(time.Minute)})
		require.NoError(t, err)
		_, err = NewVerifier(secret, func() time.Time { return now.Add(2 * time.Minute) }).Verify(tok)
		require.ErrorContains(t, err, "expired")
	})
}

func TestSign(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	tok, err := Sign(secret, Claims{Subject: "bob", Expires: exp, Subscribe: Patterns{"*"}, Publish: Patterns{"chat.*"}})
	require.NoError(t, err)
	c, err := NewVerifier(secret, nil).Verify(tok)
	require.NoError(t, err)
	require.Equal(t, Claims{Subject: "bob", Expires: time.Unix(exp.Unix(), 0), Subscribe: Patterns{"*"}, Publish: Patterns{"chat.*"}},
		Claims{Subject: c.Subject, Expires: c.Expires.Local(), Subscribe: c.Subscribe, Publish: c.Publish})
	_, err = Sign(nil, Claims{Subject: "a", Expires: exp})
	require.Error(t, err)
	_, err = Sign(secret, Claims{Subject: "a"})
	require.Error(t, err)
	_, err = Sign(secret, Claims{Subject: "a", Expires: exp, Publish: Patterns{"**"}})
	require.Error(t, err)
}

func TestPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern, topic string
		match          bool
	}{
		{"*", "anything", true},
		{"*", "sys:x", true},
		{"scores", "scores", true},
		{"scores", "scores2", false},
		{"scores", "score", false},
		{"game.*", "game.1", true},
		{"game.*", "game.", true},
		{"game.*", "game", false},
		{"game.*", "games.1", false},
		{"game*", "games", true},
		{"", "", false},
		{"", "x", false},
		{"a*b", "axb", false},
		{"a*b", "a*b", true}, // invalid, and refused in tokens: it matches only itself
	} {
		require.Equal(t, tc.match, Match(tc.pattern, tc.topic), "%q %q", tc.pattern, tc.topic)
	}
	require.False(t, Patterns(nil).Allow("x"))
	require.True(t, Patterns{"a", "b.*"}.Allow("b.c"))
	for _, p := range []string{"*", "a", "game.*", "sys:*", strings.Repeat("a", 199) + "*", strings.Repeat("a", 200)} {
		require.NoError(t, ValidatePattern(p), p)
	}
	for _, p := range []string{"", "**", "a*b", "*a", "a b", "a b*", strings.Repeat("a", 200) + "*", strings.Repeat("a", 201)} {
		require.Error(t, ValidatePattern(p), p)
	}
}

func TestFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/sse?token=q", nil)
	r.Header.Set("Authorization", "Bearer h")
	require.Equal(t, "q", FromRequest(r))
	r = httptest.NewRequest("GET", "/v1/sse", nil)
	r.Header.Set("Authorization", "Bearer h")
	require.Equal(t, "h", FromRequest(r))
	r.Header.Set("Authorization", "Basic h")
	require.Equal(t, "", FromRequest(r))
}

func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBucket(10, 5, now)
	for range 5 {
		require.True(t, b.Take(now))
	}
	require.False(t, b.Take(now))
	require.True(t, b.Take(now.Add(100*time.Millisecond)))
	require.False(t, b.Take(now.Add(100*time.Millisecond)))
	// Refill stops at the burst.
	later := now.Add(time.Hour)
	for range 5 {
		require.True(t, b.Take(later))
	}
	require.False(t, b.Take(later))

	// TakeN: a batch over the burst passes once, then the debt is paid.
	b = NewBucket(10, 5, now)
	require.Zero(t, b.TakeN(now, 20))
	wait := b.TakeN(now, 1)
	require.InDelta(t, 1.6, wait.Seconds(), 0.01) // 15 in debt: 1.6 s to reach 1
	require.NotZero(t, b.TakeN(now.Add(time.Second), 1))
	require.Zero(t, b.TakeN(now.Add(wait), 1))
}

func TestLimiter(t *testing.T) {
	require.Nil(t, NewLimiter(0, 1))
	var nl *Limiter
	require.Zero(t, nl.Reserve("k", 1000))
	l := NewLimiter(1, 2)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	require.Zero(t, l.Reserve("a", 1))
	require.Zero(t, l.Reserve("a", 1))
	require.Equal(t, time.Second, l.Reserve("a", 1), "empty: one token a second")
	require.Zero(t, l.Reserve("b", 1), "keys have their own buckets")
	now = now.Add(999 * time.Millisecond)
	require.Equal(t, time.Millisecond, l.Reserve("a", 1))
	now = now.Add(time.Millisecond)
	require.Zero(t, l.Reserve("a", 1), "a second later the token is there")
	require.Equal(t, time.Second, l.Reserve("a", 1))
}
