package sdktest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk"
)

// topicFor returns a topic name no other test uses.
func topicFor(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '.'
	}, t.Name())
	return fmt.Sprintf("test.%s.%d", name, rand.Uint32())
}

// recorder collects what a client hands to the application.
type recorder struct {
	mu     sync.Mutex
	msgs   []sdk.Message
	events []sdk.Event
	wake   chan struct{}
}

func newRecorder() *recorder { return &recorder{wake: make(chan struct{}, 1)} }

func (r *recorder) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *recorder) handle(m sdk.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) onEvent(e sdk.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) messages() []sdk.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sdk.Message(nil), r.msgs...)
}

func (r *recorder) eventsOf(kind sdk.EventKind) []sdk.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sdk.Event
	for _, e := range r.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// waitFor polls cond on every delivery until it holds or timeout passes.
func (r *recorder) waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-r.wake:
		case <-time.After(10 * time.Millisecond):
		case <-deadline.C:
			t.Fatalf("after %v: still waiting for %s", timeout, what)
		}
	}
}

// waitMessages waits for n messages and returns them.
func (r *recorder) waitMessages(t testing.TB, n int) []sdk.Message {
	t.Helper()
	r.waitFor(t, 10*time.Second, fmt.Sprintf("%d messages", n), func() bool { return len(r.messages()) >= n })
	return r.messages()
}

// waitEvents waits for n events of kind and returns them.
func (r *recorder) waitEvents(t testing.TB, kind sdk.EventKind, n int) []sdk.Event {
	t.Helper()
	r.waitFor(t, 10*time.Second, fmt.Sprintf("%d %s events", n, kind), func() bool { return len(r.eventsOf(kind)) >= n })
	return r.eventsOf(kind)
}

// dial connects a client to url that the test closes at its end.
func dial(t testing.TB, url string, cfg sdk.Config) *sdk.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := sdk.Dial(ctx, url, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// newPublisher returns a publisher to the shared server, closed at the
// test's end.
func newPublisher(t testing.TB, cfg sdk.PublisherConfig) *sdk.Publisher {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = apiKey
	}
	p, err := sdk.NewPublisher(srv.URL, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastBackoff is a config that reconnects at once, reporting to rec.
func fastBackoff(rec *recorder) sdk.Config {
	return sdk.Config{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, OnEvent: rec.onEvent}
}
