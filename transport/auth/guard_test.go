package auth

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk/wire"
)

// requestSecret signs the tokens of the tests of this file.
var requestSecret = []byte("guard-test-secret-0123456789abcdef")

func TestAuthorizeRequest(t *testing.T) {
	tok, err := Sign(requestSecret, Claims{Subject: "u", Expires: time.Now().Add(time.Hour), Subscribe: Patterns{"game.*"}})
	require.NoError(t, err)
	v := NewVerifier(requestSecret, nil)
	code := func(err error) wire.ErrorCode {
		if err == nil {
			return 0
		}
		return wire.AsError(err).Code
	}
	for _, tc := range []struct {
		name   string
		v      *Verifier
		url    string
		topics []string
		want   wire.ErrorCode
	}{
		{"no verifier allows all", nil, "/v1/sse", []string{"x"}, 0},
		{"allowed topics", v, "/v1/sse?token=" + tok, []string{"game.1", "game.2"}, 0},
		{"no token", v, "/v1/sse", []string{"game.1"}, wire.CodeUnauthorized},
		{"bad token", v, "/v1/sse?token=x", []string{"game.1"}, wire.CodeUnauthorized},
		{"topic not allowed", v, "/v1/sse?token=" + tok, []string{"game.1", "chat"}, wire.CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.url, nil)
			require.Equal(t, tc.want, code(tc.v.AuthorizeRequest(r, tc.topics)))
		})
	}
}

func TestConnLimit(t *testing.T) {
	l := NewConnLimit(2)
	require.True(t, l.Acquire())
	require.True(t, l.Acquire())
	require.False(t, l.Acquire())
	require.Equal(t, 2, l.Count())
	l.Release()
	require.True(t, l.Acquire())
	require.Equal(t, 2, l.Count())

	open := NewConnLimit(0)
	for range 5 {
		require.True(t, open.Acquire())
	}
	require.Equal(t, 5, open.Count())
}
