package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/topicast/topicast/internal/loadbench"
	"github.com/topicast/topicast/internal/server"
)

// TestLoadbenchOverWebTransport runs the bench engine (topicast bench)
// over WebTransport against a real in-process server, its endpoint and certificate taken from /v1/info.
func TestLoadbenchOverWebTransport(t *testing.T) {
	srv, err := server.Start(context.Background(), server.Config{HTTPAddr: "127.0.0.1:0", WTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			t.Errorf("closing the server: %v", err)
		}
	}()
	wsURL := "ws://" + srv.Addr() + "/ws"

	t.Run("invariants", func(t *testing.T) {
		var progress strings.Builder
		rep, err := loadbench.Run(context.Background(), loadbench.Config{
			Transport: loadbench.TransportWebTransport,
			URL:       wsURL,
			Conns:     50,
			Topics:    2,
			Rate:      200,
			Duration:  2 * time.Second,
			Progress:  &progress,
		})
		if err != nil {
			t.Fatalf("Run: %v (report %+v)", err, rep)
		}
		var text strings.Builder
		rep.WriteText(&text)
		if !rep.OK() || rep.Conns != 50 || rep.Published != 400 || rep.Expected != 400*25 ||
			rep.Delivered != rep.Expected || rep.Latency.Count() != uint64(rep.Delivered) {
			t.Fatalf("report:\n%s", text.String())
		}
		if !strings.Contains(progress.String(), "conns 50/50") {
			t.Errorf("progress output %q", progress.String())
		}
		t.Logf("report:\n%s", text.String())
	})

	t.Run("wrong certificate", func(t *testing.T) {
		info := srv.Info().(server.Info)
		rep, err := loadbench.Run(context.Background(), loadbench.Config{
			Transport: loadbench.TransportWebTransport,
			URL:       wsURL,
			WTURL:     info.WebTransport.URL,
			CertHash:  strings.Repeat("ab", 32),
			Conns:     3,
			Duration:  time.Second,
		})
		if !errors.Is(err, loadbench.ErrNoSubscribers) || rep == nil || rep.ConnectErrors != 3 || len(rep.Errors) == 0 ||
			!strings.Contains(rep.Errors[0].Message, "not the pinned") {
			t.Fatalf("Run with a wrong pin = %+v, %v", rep, err)
		}
	})
}

// TestLoadbenchOverWebRTC runs the bench engine (topicast bench -transport
// webrtc) with 20 WebRTC subscribers against a real in-process server,
// its signalling endpoint taken from /v1/info.
func TestLoadbenchOverWebRTC(t *testing.T) {
	srv, err := server.Start(context.Background(), server.Config{HTTPAddr: "127.0.0.1:0", WebRTCUDPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			t.Errorf("closing the server: %v", err)
		}
	}()
	var progress strings.Builder
	rep, err := loadbench.Run(context.Background(), loadbench.Config{
		Transport: loadbench.TransportWebRTC,
		URL:       "ws://" + srv.Addr() + "/ws",
		Conns:     20,
		Topics:    2,
		Rate:      200,
		Duration:  2 * time.Second,
		Progress:  &progress,
	})
	if err != nil {
		t.Fatalf("Run: %v (report %+v)", err, rep)
	}
	var text strings.Builder
	rep.WriteText(&text)
	if !rep.OK() || rep.Conns != 20 || rep.Published != 400 || rep.Expected != 400*10 ||
		rep.Delivered != rep.Expected || rep.Latency.Count() != uint64(rep.Delivered) || rep.Disconnects != 0 {
		t.Fatalf("report:\n%s", text.String())
	}
	if !strings.Contains(progress.String(), "conns 20/20") {
		t.Errorf("progress output %q", progress.String())
	}
	t.Logf("report:\n%s", text.String())
}

// TestLoadbenchSeveralURLsAndWorkers runs the bench engine over two URLs of
// one in-process server (the spreading over nodes) with Procs 2, its worker
// run in this process over pipes (the protocol between the processes):
// the merged report counts every delivery of both processes, by node.
func TestLoadbenchSeveralURLsAndWorkers(t *testing.T) {
	srv := startServer(t, server.Config{})
	urls := []string{"ws://" + srv.Addr() + "/ws", "ws://" + srv.Addr() + "/ws?node=2"}
	var workers sync.WaitGroup
	defer workers.Wait()
	cfg := loadbench.Config{
		URLs:     urls,
		Conns:    120,
		Topics:   3,
		Rate:     200,
		Duration: 2 * time.Second,
		Procs:    2,
	}
	var workerErr error
	cfg.StartWorker = func(ctx context.Context, share loadbench.Share) (*loadbench.Worker, error) {
		if share != (loadbench.Share{Offset: 60, Conns: 60}) {
			t.Errorf("worker share %v", share)
		}
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		ctx, cancel := context.WithCancel(ctx)
		var done sync.WaitGroup
		done.Go(func() {
			defer cancel()
			workerErr = loadbench.RunWorker(ctx, cfg, share, inR, outW)
			outW.Close()
			inR.Close()
		})
		workers.Go(done.Wait)
		return &loadbench.Worker{In: inW, Out: outR, Wait: func() error { done.Wait(); return workerErr }}, nil
	}
	rep, err := loadbench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v (report %+v)", err, rep)
	}
	var text strings.Builder
	rep.WriteText(&text)
	if !rep.OK() || rep.Procs != 2 || rep.Conns != 120 || rep.Published != 400 || rep.Expected != 400*40 ||
		rep.Delivered != rep.Expected || rep.Latency.Count() != uint64(rep.Delivered) || len(rep.Nodes) != 2 {
		t.Fatalf("report:\n%s", text.String())
	}
	for i, n := range rep.Nodes {
		if n.URL != urls[i] || n.Conns != 60 || n.Delivered != rep.Delivered/2 || n.Error != "" || n.RSSConnected <= 0 || n.CPUSeconds <= 0 {
			t.Errorf("node %d: %+v", i, n)
		}
	}
	if rep.ConnectSeconds <= 0 {
		t.Errorf("connect seconds %v", rep.ConnectSeconds)
	}
	t.Logf("report:\n%s", text.String())
}

// TestLoadbenchProcsBinary runs `topicast bench -procs 2` of the real
// binary against an in-process server given as two URLs: the parent starts
// one worker process of its own binary, and its JSON report counts every
// delivery of both.
func TestLoadbenchProcsBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "topicast")
	build := exec.Command("go", "build", "-o", bin, "github.com/topicast/topicast/cmd/topicast")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv := startServer(t, server.Config{})
	url := "ws://" + srv.Addr() + "/ws"
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "bench", "-url", url, "-url", url, "-procs", "2", "-conns", "200", "-topics", "4",
		"-rate", "200", "-duration", "2s", "-json", "-quiet")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var rep loadbench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	if !rep.OK() || rep.Procs != 2 || rep.Conns != 200 || rep.Published != 400 || rep.Expected != 400*50 ||
		rep.Delivered != rep.Expected || rep.P99 <= 0 || len(rep.Nodes) != 2 ||
		rep.Nodes[0].Conns != 100 || rep.Nodes[1].Delivered != rep.Delivered/2 {
		t.Fatalf("report:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	t.Logf("report:\n%s", stdout.String())
}
