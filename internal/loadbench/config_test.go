package loadbench

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if err := c.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.URL != DefaultURL || c.PublishURL != "http://127.0.0.1:8080" || c.Conns != DefaultConns ||
		c.Rate != DefaultRate || c.Drain != DefaultDrain || c.Publishers != 4 || c.Logger == nil {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if got := (Config{Drain: -1, Rate: 100000}).withDefaults(); got.Drain != 0 || got.Publishers != 64 {
		t.Fatalf("negative drain and high rate: drain %v, publishers %d", got.Drain, got.Publishers)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]Config{
		"scheme":        {URL: "http://127.0.0.1:8080/ws"},
		"publish url":   {PublishURL: "ws://x"},
		"conns":         {Conns: -1},
		"rate":          {Rate: -5},
		"size too big":  {Size: MaxSize + 1},
		"duration":      {Duration: -time.Second},
		"dial timeout":  {DialTimeout: -1},
		"topics":        {Topics: -2},
		"publishers":    {Publishers: -1},
		"dial parallel": {DialConcurrency: -1},
	} {
		if err := c.withDefaults().validate(); err == nil {
			t.Errorf("%s: %+v validates", name, c)
		}
	}
}

func TestConfigURLs(t *testing.T) {
	if got := derivePublishURL("wss://example.com:8443/ws?x=1"); got != "https://example.com:8443" {
		t.Errorf("derivePublishURL(wss) = %q", got)
	}
	for base, want := range map[string]string{
		"http://h:1":            "http://h:1/v1/publish",
		"http://h:1/":           "http://h:1/v1/publish",
		"http://h:1/v1/publish": "http://h:1/v1/publish",
		"https://h/prefix":      "https://h/prefix/v1/publish",
	} {
		if got := publishEndpoint(base); got != want {
			t.Errorf("publishEndpoint(%q) = %q, want %q", base, got, want)
		}
	}
	c := Config{URL: "ws://h:1/ws", Token: "a.b+c"}
	if got := c.subscribeURL(0); got != "ws://h:1/ws?token=a.b%2Bc" {
		t.Errorf("subscribeURL = %q", got)
	}
}

func TestSourceAddr(t *testing.T) {
	c := Config{URL: "ws://127.0.0.1:8080/ws", SourceAddrs: 5000}
	for i, want := range map[int]string{0: "127.0.0.2", 4999: "127.0.0.2", 5000: "127.0.0.3", 5000 * 254: "127.0.1.0"} {
		a := c.sourceAddr(i)
		if a == nil || a.IP.String() != want || a.Port != 0 {
			t.Errorf("sourceAddr(%d) = %v, want %s:0", i, a, want)
		}
	}
	for _, c := range []Config{
		{URL: "ws://127.0.0.1:8080/ws", SourceAddrs: -1},
		{URL: "ws://10.0.0.1:8080/ws", SourceAddrs: 5000},
		{URL: "ws://localhost:8080/ws", SourceAddrs: 5000},
	} {
		if a := c.sourceAddr(1); a != nil {
			t.Errorf("%s with %d per address: source %v, want none", c.URL, c.SourceAddrs, a)
		}
	}
}

// freeAddr returns an address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRunInvalidConfig(t *testing.T) {
	rep, err := Run(context.Background(), Config{Rate: -1})
	if err == nil || rep != nil {
		t.Fatalf("Run with a bad rate = %v, %v", rep, err)
	}
}

// TestRunNoServer runs against a closed port: every connection fails, Run
// says so and leaves no goroutine behind (TestMain checks).
func TestRunNoServer(t *testing.T) {
	var progress strings.Builder
	rep, err := Run(context.Background(), Config{
		URL:         "ws://" + freeAddr(t) + "/ws",
		Conns:       20,
		Topics:      3,
		DialTimeout: 2 * time.Second,
		Progress:    &progress,
	})
	if !errors.Is(err, ErrNoSubscribers) {
		t.Fatalf("Run error = %v, want ErrNoSubscribers", err)
	}
	if rep == nil || rep.Conns != 0 || rep.ConnectErrors != 20 || rep.Published != 0 || len(rep.Errors) == 0 || rep.OK() {
		t.Fatalf("report %+v", rep)
	}
	if !strings.HasSuffix(progress.String(), "\n") || !strings.Contains(progress.String(), "conns 0/20") {
		t.Fatalf("progress output %q", progress.String())
	}
	var text strings.Builder
	rep.WriteText(&text)
	for _, want := range []string{"conns", "20 connect errors", "latency ms", "FAILED", "connect:"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

// TestRunCancelled checks that a run whose context is done ends at once with
// the cause, even while its connections hang in the handshake.
func TestRunCancelled(t *testing.T) {
	// A listener that accepts and never answers the upgrade.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	}()

	cause := errors.New("operator pressed ^C")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(200*time.Millisecond, func() { cancel(cause) })
	start := time.Now()
	rep, err := Run(ctx, Config{URL: "ws://" + ln.Addr().String() + "/ws", Conns: 5, DialTimeout: time.Minute})
	if !errors.Is(err, cause) {
		t.Fatalf("Run error = %v, want the cause", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("Run took %v after cancellation", elapsed)
	}
	if rep == nil || rep.Conns != 0 || rep.ConnectErrors != 5 {
		t.Fatalf("report %+v", rep)
	}
}

// TestWorkerConfigValidates: a worker of a -procs run checks the run's
// config with the run's procs, so its share, not the whole run, is held to
// MaxConnsPerProcess (a 100,000-connection run over 6 processes once failed
// because each worker counted all 100,000 as its own).
func TestWorkerConfigValidates(t *testing.T) {
	run := Config{Conns: 100000, Procs: 6}
	if err := run.withDefaults().validate(); err == nil {
		t.Fatal("procs without StartWorker validates")
	}
	worker := run
	worker.worker = true
	if err := worker.withDefaults().validate(); err != nil {
		t.Fatalf("a worker's config of a 6-process run: %v", err)
	}
	worker.Procs = 5
	if err := worker.withDefaults().validate(); err == nil {
		t.Fatal("20,000 conns per process validates")
	}
}
