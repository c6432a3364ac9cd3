package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "topicast.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

func parseWith(env map[string]string, args ...string) (*Main, error) {
	m := NewMain(io.Discard, io.Discard)
	m.lookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	return m, m.ParseFlags(args)
}

// The command line wins over TOPICAST_* variables, which win over the
// file, which wins over the defaults.
func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, `# a node
http: 127.0.0.1:9001
history-size: 50
history-ttl: 30s
api-key: [k1, "k2"]
allowed-origin:
  - https://a.example
max-queue: 2097152
`)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		http string
		keys []string
		size int
	}{
		{"file", nil, nil, "127.0.0.1:9001", []string{"k1", "k2"}, 50},
		{"env over file", map[string]string{"TOPICAST_HTTP": "127.0.0.1:9002", "TOPICAST_API_KEY": "e1,e2"}, nil,
			"127.0.0.1:9002", []string{"e1", "e2"}, 50},
		{"flag over env", map[string]string{"TOPICAST_HTTP": "127.0.0.1:9002", "TOPICAST_HISTORY_SIZE": "7"},
			[]string{"--http", "127.0.0.1:9003", "--api-key", "f1"}, "127.0.0.1:9003", []string{"f1"}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parseWith(tc.env, append([]string{"--config", file}, tc.args...)...)
			require.NoError(t, err)
			require.Equal(t, tc.http, m.cfg.HTTPAddr)
			require.Equal(t, tc.keys, m.cfg.APIKeys)
			require.Equal(t, tc.size, m.cfg.Node.Topic.HistorySize)
			require.Equal(t, 30*time.Second, m.cfg.Node.Topic.HistoryTTL)
			require.Equal(t, []string{"https://a.example"}, m.cfg.AllowedOrigins)
			require.Equal(t, 2<<20, m.cfg.MaxQueue)
		})
	}
	t.Run("environment without a file", func(t *testing.T) {
		m, err := parseWith(map[string]string{"TOPICAST_TOKEN_SECRET": "0123456789abcdef0123456789abcdef"})
		require.NoError(t, err)
		require.Equal(t, "0123456789abcdef0123456789abcdef", string(m.cfg.Guard.TokenSecret))
	})
}

// A bad file stops serve before it starts, with the file, the line and the
// reason, and exit code 2.
func TestConfigBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"unknown key", "http: 127.0.0.1:9001\nhtpp: x\n", `topicast.yaml:2: unknown key "htpp"`},
		{"wrong type", "history-size: lots\n", `topicast.yaml:1: history-size: invalid value "lots"`},
		{"bad duration", "\nhistory-ttl: 3 days\n", `topicast.yaml:2: history-ttl: invalid value "3 days"`},
		{"negative size", "max-queue: 1000\nhistory-size: -5\n", `--history-size must be >= 0, got -5 (set by `},
		{"list for one value", "http: [a, b]\n", `topicast.yaml:1: http takes one value, not a list`},
		{"mapping value", "http:\n  host: a\n", `topicast.yaml:1: http must be a single value or a list`},
		{"set twice", "http: a\nhttp: b\n", `topicast.yaml: [2:1] mapping key "http" already defined at [1:1]`},
		{"not a mapping", "- http\n", `topicast.yaml:1: the file must be a mapping`},
		{"syntax", "http: \"a\n", `topicast.yaml`},
		{"config in config", "config: other.yaml\n", `topicast.yaml:1: unknown key "config"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWith(nil, "--config", writeConfig(t, tc.text))
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, 2, exitCode(err))
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := parseWith(nil, "--config", filepath.Join(t.TempDir(), "none.yaml"))
		require.ErrorContains(t, err, "--config: open")
		require.Equal(t, 2, exitCode(err))
	})
	t.Run("bad environment value", func(t *testing.T) {
		_, err := parseWith(map[string]string{"TOPICAST_MAX_CONNS": "many"})
		require.ErrorContains(t, err, `TOPICAST_MAX_CONNS: invalid value "many"`)
	})
	t.Run("an empty file sets nothing", func(t *testing.T) {
		m, err := parseWith(nil, "--config", writeConfig(t, "# nothing yet\n"))
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:8080", m.cfg.HTTPAddr)
	})
}

// config check prints the settings in force as a config file, secrets as
// comments without their values; what it prints reads back.
func TestConfigCheck(t *testing.T) {
	file := writeConfig(t, "http: 127.0.0.1:9005\ntoken-secret: 0123456789abcdef0123456789abcdef\napi-key: [k1]\n")
	var out bytes.Buffer
	require.NoError(t, runConfig([]string{"check", file}, &out, io.Discard))
	require.Contains(t, out.String(), `http: "127.0.0.1:9005"`)
	require.Contains(t, out.String(), "# token-secret: set, not shown\n")
	require.Contains(t, out.String(), "# api-key: 1 set, not shown\n")
	require.NotContains(t, out.String(), "0123456789abcdef")
	require.Contains(t, out.String(), `history-size: "1000"`)

	again := writeConfig(t, out.String())
	m, err := parseWith(nil, "--config", again)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9005", m.cfg.HTTPAddr)

	err = runConfig([]string{"check", writeConfig(t, "nope: 1\n")}, io.Discard, io.Discard)
	require.ErrorContains(t, err, `unknown key "nope"`)
	require.Equal(t, 2, exitCode(err))
	require.Equal(t, 2, exitCode(runConfig(nil, io.Discard, io.Discard)))
}

// Every namespace option reads into the node's config; bad namespaces stop
// serve with their line.
func TestConfigNamespaces(t *testing.T) {
	file := writeConfig(t, `namespaces:
  - pattern: "metrics.*"
    history_size: 0
    client_publish: false
    latest: true
  - pattern: board.*
    history_size: 100
    history_ttl: 30m
    max_message: 262144
    delta: false
    datagram: false
    presence: true
    join_leave: true
  - pattern: quiet.*
    presence: false
`)
	m, err := parseWith(nil, "--config", file)
	require.NoError(t, err)
	ns := m.cfg.Node.Topic.Namespaces
	require.Len(t, ns, 3)
	require.Equal(t, "metrics.*", ns[0].Pattern)
	require.Equal(t, -1, ns[0].HistorySize, "0 in the file keeps none")
	require.False(t, *ns[0].ClientPublish)
	require.True(t, *ns[0].Latest)
	require.Nil(t, ns[0].Delta)
	require.Equal(t, 100, ns[1].HistorySize)
	require.Equal(t, 30*time.Minute, ns[1].HistoryTTL)
	require.Equal(t, 262144, ns[1].MaxMessage)
	require.False(t, *ns[1].Delta)
	require.False(t, *ns[1].Datagram)
	require.True(t, ns[1].Presence)
	require.True(t, ns[1].JoinLeave)
	require.False(t, ns[0].Presence || ns[2].Presence || ns[2].JoinLeave)

	var out bytes.Buffer
	require.NoError(t, runConfig([]string{"check", file}, &out, io.Discard))
	require.Contains(t, out.String(), "namespaces:\n  - pattern: \"metrics.*\"\n    history_size: 0\n    latest: true\n    client_publish: false\n")
	again, err := parseWith(nil, "--config", writeConfig(t, out.String()))
	require.NoError(t, err)
	require.Equal(t, ns, again.cfg.Node.Topic.Namespaces, "config check prints what reads back")

	for _, tc := range []struct{ name, text, want string }{
		{"not a list", "namespaces: 3\n", "topicast.yaml:1: namespaces must be a list"},
		{"no pattern", "namespaces:\n  - history_size: 3\n", "namespace 1: a namespace needs a pattern"},
		{"bad pattern", "namespaces:\n  - pattern: a*b\n", `topicast.yaml:2: namespace 1: pattern "a*b"`},
		{"unknown option", "namespaces:\n  - pattern: a\n    histroy_size: 3\n", `topicast.yaml:3: namespace 1: unknown option "histroy_size"`},
		{"negative size", "namespaces:\n  - pattern: a\n  - pattern: b\n    history_size: -1\n", "topicast.yaml:4: namespace 2: history_size must be an integer >= 0"},
		{"wrong type", "namespaces:\n  - pattern: a\n    latest: sometimes\n", `topicast.yaml:3: namespace 1: latest must be true or false, got "sometimes"`},
		{"bad ttl", "namespaces:\n  - pattern: a\n    history_ttl: -5s\n", "topicast.yaml:3: namespace 1: history_ttl must be a positive duration"},
		{"zero max message", "namespaces:\n  - pattern: a\n    max_message: 0\n", "topicast.yaml:3: namespace 1: max_message must be an integer >= 1"},
		{"presence", "namespaces:\n  - pattern: room.*\n    presence: maybe\n", `topicast.yaml:3: namespace 1: presence must be true or false, got "maybe"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWith(nil, "--config", writeConfig(t, tc.text))
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, 2, exitCode(err))
		})
	}
}
