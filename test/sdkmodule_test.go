package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/server"
)

// sdkUser is a program of another module that uses the SDK: it publishes
// one message, subscribes from the start of the topic and prints what it
// gets.
const sdkUser = `package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/topicast/topicast/sdk"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := sdk.NewPublisher(os.Args[1], sdk.PublisherConfig{})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	r, err := p.Publish(ctx, "sdkmod.t", map[string]string{"from": "another module"})
	if err != nil {
		panic(err)
	}
	c, err := sdk.Dial(ctx, os.Args[2], sdk.Config{})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	got := make(chan sdk.Message, 1)
	if _, err := c.Subscribe(ctx, "sdkmod.t", func(m sdk.Message) { got <- m }, sdk.Since(r.Epoch, 0)); err != nil {
		panic(err)
	}
	select {
	case m := <-got:
		fmt.Printf("%s %d %s\n", m.Topic, m.Seq, m.Data)
	case <-ctx.Done():
		panic("no message")
	}
}
`

// serverOnly are modules of the server that the SDK must not pull: the
// actor system, the stores, membership, metrics, the gRPC API, the config
// file, and the server's module itself.
var serverOnly = []string{
	"github.com/topicast/topicast ", // the server's module (a graph line is "A B")
	"github.com/topicast/topicast@",
	"github.com/asynkron/protoactor-go",
	"github.com/redis/go-redis",
	"go.etcd.io/etcd",
	"github.com/prometheus/",
	"google.golang.org/grpc",
	"connectrpc.com/connect",
	"github.com/golang-jwt/jwt",
	"github.com/goccy/go-yaml",
	"go.opentelemetry.io/",
	"go.uber.org/zap",
	"github.com/chromedp/",
	"github.com/pb33f/",
}

// TestSDKModuleStandsAlone builds a program of another module against the
// SDK module alone (sdk/go.mod, through a replace to this checkout as a
// user's go.mod would name a release), checks that its module graph holds
// none of the server's dependencies, and runs it against a server.
func TestSDKModuleStandsAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program of its own module")
	}
	sdkDir, err := filepath.Abs("../sdk")
	require.NoError(t, err)
	sdkMod, err := os.ReadFile(filepath.Join(sdkDir, "go.mod"))
	require.NoError(t, err)
	require.NotContains(t, string(sdkMod), "replace", "sdk/go.mod must resolve for its users as it is")

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(sdkUser), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(`module example.com/sdkuser

go 1.26.8

require github.com/topicast/topicast/sdk v0.0.0-00010101000000-000000000000

replace github.com/topicast/topicast/sdk => `+sdkDir+"\n"), 0o600))
	goCmd := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s: %s", strings.Join(args, " "), out)
		return string(out)
	}
	goCmd("mod", "tidy")
	graph := goCmd("mod", "graph")
	require.Contains(t, graph, "example.com/sdkuser github.com/topicast/topicast/sdk@")
	for _, line := range strings.Split(strings.TrimSpace(graph), "\n") {
		for _, m := range serverOnly {
			require.NotContains(t, line+" ", m, "the SDK's module graph pulls a server dependency")
		}
	}
	deps := goCmd("list", "-deps", ".")
	for _, pkg := range strings.Fields(deps) {
		if strings.HasPrefix(pkg, "github.com/topicast/") {
			require.True(t, strings.HasPrefix(pkg, "github.com/topicast/topicast/sdk"), "%s is not the SDK's", pkg)
		}
	}
	bin := filepath.Join(dir, "sdkuser")
	goCmd("build", "-o", bin, ".")

	srv := startServer(t, server.Config{StatsInterval: -1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "http://"+srv.Addr(), wsURL(srv)).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, `sdkmod.t 1 {"from":"another module"}`+"\n", string(out))
}
