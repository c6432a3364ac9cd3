package wire

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func cursorOf(t testing.TB, kv ...any) *Cursor {
	t.Helper()
	c := &Cursor{}
	for i := 0; i+2 < len(kv)+1; i += 3 {
		require.NoError(t, c.Set(kv[i].(string), Position{Epoch: kv[i+1].(string), Seq: uint64(kv[i+2].(int))}))
	}
	return c
}

func TestCursorRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    *Cursor
	}{
		{"one topic", cursorOf(t, "scores", "abcdefgh", 57)},
		{"seq zero", cursorOf(t, "a", "e", 0)},
		{"max seq", cursorOf(t, "a", "e", -1)},
		{"several, set out of order", cursorOf(t, "zeta", "e1", 3, "alpha", "e2", 1<<40, "game.1/pos:x", "E_3-.", 7)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.c.String()
			for _, ch := range s {
				require.True(t, strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", ch), "not URL-safe: %q", s)
			}
			got, err := DecodeCursor(s)
			require.NoError(t, err)
			require.Equal(t, tt.c.Len(), got.Len())
			for topic, p := range tt.c.All() {
				gp, ok := got.Get(topic)
				require.True(t, ok, topic)
				require.Equal(t, p, gp)
			}
			require.Equal(t, s, got.String(), "encoding is canonical")
		})
	}
}

func TestCursorAllSorted(t *testing.T) {
	c := cursorOf(t, "c", "e", 1, "a", "e", 2, "b", "e", 3)
	var topics []string
	for topic := range c.All() {
		topics = append(topics, topic)
	}
	require.Equal(t, []string{"a", "b", "c"}, topics)
}

func TestCursorSet(t *testing.T) {
	c := &Cursor{}
	require.ErrorContains(t, c.Set("bad topic", Position{Epoch: "e"}), "topic has a byte")
	require.ErrorContains(t, c.Set("a", Position{}), "epoch is missing")
	require.ErrorContains(t, c.Set("a", Position{Epoch: `e"`}), "epoch has a byte")
	require.ErrorContains(t, c.Set("a", Position{Epoch: strings.Repeat("e", MaxEpochLen+1)}), "epoch is longer")
	for i := range MaxCursorTopics {
		require.NoError(t, c.Set(fmt.Sprintf("t%03d", i), Position{Epoch: "e", Seq: uint64(i)}))
	}
	err := c.Set("one-more", Position{Epoch: "e"})
	require.Equal(t, CodeBadRequest, AsError(err).Code)
	require.NoError(t, c.Set("t000", Position{Epoch: "e2", Seq: 9}), "updating a known topic is always fine")
	p, _ := c.Get("t000")
	require.Equal(t, Position{Epoch: "e2", Seq: 9}, p)
}

// TestCursorLimits: the largest cursor Set allows still decodes.
func TestCursorLimits(t *testing.T) {
	c := &Cursor{}
	for i := range MaxCursorTopics {
		topic := fmt.Sprintf("%03d", i) + strings.Repeat("t", MaxTopicLen-3)
		require.NoError(t, c.Set(topic, Position{Epoch: strings.Repeat("e", MaxEpochLen), Seq: 1<<64 - 1}))
	}
	s := c.String()
	require.LessOrEqual(t, len(s), MaxCursorLen)
	got, err := DecodeCursor(s)
	require.NoError(t, err)
	require.Equal(t, MaxCursorTopics, got.Len())
}

func TestCursorAdvance(t *testing.T) {
	c := cursorOf(t, "a", "e1", 0)
	require.True(t, c.Advance(AppendMsg(nil, "a", "e1", 5, 1, []byte(`{"x":"\",\"seq\":9"}`))))
	p, _ := c.Get("a")
	require.Equal(t, Position{Epoch: "e1", Seq: 5}, p)
	require.True(t, c.Advance(AppendReset(nil, "a", "e2", 0)))
	p, _ = c.Get("a")
	require.Equal(t, Position{Epoch: "e2", Seq: 0}, p)
	require.True(t, c.Advance(AppendMsg(nil, "b", "e9", 1, 1, []byte(`1`))), "a new topic is added")
	require.Equal(t, 2, c.Len())
	for _, f := range []string{`{"op":"ok","id":1}`, `{"op":"msg","topic":"a"}`, `{"op":"msg","topic":"a","epoch":"e","seq":x,`, `{"op":"msg","topic":"a b","epoch":"e","seq":1,"ts":1}`} {
		require.False(t, c.Advance([]byte(f)), f)
	}

	frame := AppendMsg(nil, "a", "e2", 6, 1, []byte(`{}`))
	allocs := testing.AllocsPerRun(100, func() { c.Advance(frame) })
	require.Zero(t, allocs, "Advance of a known topic in its epoch")
	dst := make([]byte, 0, 256)
	allocs = testing.AllocsPerRun(100, func() { dst = c.AppendEncoded(dst[:0]) })
	require.Zero(t, allocs, "AppendEncoded with room")
}

func TestDecodeCursorErrors(t *testing.T) {
	good := cursorOf(t, "a", "e", 1, "b", "e", 2).String()
	raw, err := base64.RawURLEncoding.DecodeString(good)
	require.NoError(t, err)
	// sealed re-computes the check of a body, to reach the checks after it.
	sealed := func(body ...byte) string {
		return base64.RawURLEncoding.EncodeToString(appendCursorCheck(body))
	}
	flipped := []byte(good)
	if flipped[3] == 'A' {
		flipped[3] = 'B'
	} else {
		flipped[3] = 'A'
	}
	tests := []struct {
		name, cursor, msg string
	}{
		{"empty", "", "cursor is empty"},
		{"too long", strings.Repeat("A", MaxCursorLen+1), "longer than"},
		{"not base64url", "ab+/cd", "not base64url"},
		{"padding", good + "=", "not base64url"},
		{"line end", good[:4] + "\n" + good[4:], "not base64url"},
		{"too short", "AAAA", "too short"},
		{"truncated", good[:len(good)-3], "truncated, altered"},
		{"altered", string(flipped), "truncated, altered"},
		{"foreign", base64.RawURLEncoding.EncodeToString([]byte("some other server's cursor")), "truncated, altered"},
		{"json", `eyJhIjoxfQ`, "truncated, altered"},
		{"check dropped", base64.RawURLEncoding.EncodeToString(raw[:len(raw)-4]), "truncated, altered"},
		{"other version", sealed(2, 1, 1, 'a', 1, 'e', 1), "version 2 is not supported"},
		{"no topic", sealed(1, 0), "1 to 64 topics"},
		{"too many topics", sealed(1, 65), "1 to 64 topics"},
		{"bad topic", sealed(1, 1, 3, 'a', ' ', 'b', 1, 'e', 1), "topic has a byte"},
		{"empty topic", sealed(1, 1, 0, 1, 'e', 1), "topic is missing"},
		{"empty epoch", sealed(1, 1, 1, 'a', 0, 1), "epoch is missing"},
		{"bad epoch", sealed(1, 1, 1, 'a', 1, '"', 1), "epoch has a byte"},
		{"short entry", sealed(1, 2, 1, 'a', 1, 'e', 1), "malformed entry 1"},
		{"length past end", sealed(1, 1, 9, 'a'), "malformed entry 0"},
		{"repeated topic", sealed(1, 2, 1, 'a', 1, 'e', 1, 1, 'a', 1, 'e', 2), "repeated or out of order"},
		{"out of order", sealed(1, 2, 1, 'b', 1, 'e', 1, 1, 'a', 1, 'e', 2), "repeated or out of order"},
		{"trailing", sealed(1, 1, 1, 'a', 1, 'e', 1, 0), "trailing bytes"},
		{"seq overflow", sealed(1, 1, 1, 'a', 1, 'e', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "malformed entry 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DecodeCursor(tt.cursor)
			require.Nil(t, c)
			e := AsError(err)
			require.Equal(t, CodeBadRequest, e.Code, "%v", err)
			require.Contains(t, e.Message, tt.msg)
			require.True(t, strings.HasPrefix(e.Message, "cursor"), e.Message)
		})
	}
}
