package wire

import (
	"encoding/base64"
	"testing"
)

// FuzzDecodeCursor checks that DecodeCursor never panics, that every
// failure is a bad_request with a message, and that whatever it accepts is
// within the limits and encodes back to the same string (the form is
// canonical).
func FuzzDecodeCursor(f *testing.F) {
	seeds := []string{"", "A", "AAAA", "ab+/cd", "eyJhIjoxfQ", "____", "AQEBYQFlAQ"}
	for _, c := range []*Cursor{
		cursorOf(f, "scores", "abcdefgh", 57),
		cursorOf(f, "a", "e", 0, "b", "e2", 1<<20, "game.1/pos:x", "E_3-.", 7),
	} {
		s := c.String()
		seeds = append(seeds, s, s[:len(s)-1], s[1:], s+"A")
	}
	raw := func(b ...byte) string { return base64.RawURLEncoding.EncodeToString(appendCursorCheck(b)) }
	seeds = append(seeds,
		raw(2, 1, 1, 'a', 1, 'e', 1),                    // another version
		raw(1, 2, 1, 'b', 1, 'e', 1, 1, 'a', 1, 'e', 2), // out of order
		raw(1, 1, 1, 'a', 1, 'e', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
	)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkDecodeCursor(t, s)
		// Random text almost never passes the integrity check: also try
		// the input as the body of a cursor, sealed with a valid check.
		checkDecodeCursor(t, base64.RawURLEncoding.EncodeToString(appendCursorCheck([]byte(s))))
	})
}

func checkDecodeCursor(t *testing.T, s string) {
	t.Helper()
	c, err := DecodeCursor(s)
	if err != nil {
		e := AsError(err)
		if e.Code != CodeBadRequest || e.Message == "" {
			t.Fatalf("error without bad_request or message: %#v", e)
		}
		return
	}
	if c.Len() < 1 || c.Len() > MaxCursorTopics {
		t.Fatalf("accepted %d topics", c.Len())
	}
	for topic, p := range c.All() {
		if ValidateTopic(topic) != nil || ValidateEpoch(p.Epoch) != nil {
			t.Fatalf("accepted bad topic %q or epoch %q", topic, p.Epoch)
		}
	}
	if got := c.String(); got != s {
		t.Fatalf("re-encoded %q as %q", s, got)
	}
}
