package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/transport/auth"
)

func TestTokenCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	secret := "token-command-secret-0123456789abcdef"
	err := run(context.Background(), []string{"token", "--secret", secret, "--sub", "alice",
		"--subscribe", "game.*", "--subscribe", "scores", "--publish", "chat.*", "--ttl", "10m"}, &out, &errOut)
	require.NoError(t, err, errOut.String())
	c, err := auth.NewVerifier([]byte(secret), nil).Verify(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	require.Equal(t, "alice", c.Subject)
	require.Equal(t, auth.Patterns{"game.*", "scores"}, c.Subscribe)
	require.Equal(t, auth.Patterns{"chat.*"}, c.Publish)
	require.WithinDuration(t, time.Now().Add(10*time.Minute), c.Expires, 2*time.Second)

	for _, args := range [][]string{
		{"token", "--sub", "a"},
		{"token", "--secret", "s"},
		{"token", "--secret", "s", "--sub", "a", "--ttl", "-1s"},
		{"token", "--secret", "s", "--sub", "a", "--publish", "a*b"},
	} {
		out.Reset()
		require.Error(t, run(context.Background(), args, &out, &errOut), "%q", args)
		require.Empty(t, out.String())
	}
}
