package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/transport/wire"
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
}
