package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/topicast/topicast/sdk/wire"
)

// FuzzMatch checks that the pattern matcher never panics and agrees with
// its definition.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"*", "a"}, {"game.*", "game.1"}, {"a", "a"}, {"a*b", "ab"}, {"", ""}, {"**", "*"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		got := Match(pattern, topic)
		var want bool
		if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
			want = strings.HasPrefix(topic, prefix)
		} else {
			want = pattern != "" && pattern == topic
		}
		if got != want {
			t.Fatalf("Match(%q, %q) = %v", pattern, topic, got)
		}
		if ValidatePattern(pattern) == nil && strings.Contains(strings.TrimSuffix(pattern, "*"), "*") {
			t.Fatalf("accepted pattern %q", pattern)
		}
	})
}

// FuzzVerify checks that token parsing never panics and accepts nothing
// unsigned: the only tokens that pass are those Sign made.
func FuzzVerify(f *testing.F) {
	good, err := Sign(secret, Claims{Subject: "a", Expires: time.Unix(4000000000, 0), Subscribe: Patterns{"*"}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", good + "x", strings.Replace(good, ".", "..", 1)} {
		f.Add(s)
	}
	v := NewVerifier(secret, nil)
	other := NewVerifier([]byte("another secret"), nil)
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(token)
		if err != nil {
			if e := wire.AsError(err); e.Code != wire.CodeUnauthorized || e.Message == "" {
				t.Fatalf("error %#v", e)
			}
			return
		}
		if c.Subject == "" || c.Expires.IsZero() {
			t.Fatalf("accepted claims %+v", c)
		}
		if _, err := other.Verify(token); err == nil {
			t.Fatalf("token %q verified with two secrets", token)
		}
	})
}
