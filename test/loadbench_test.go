package test

import (
	"context"
	"errors"
	"strings"
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
