package testutil

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topicast/topicast/transport"
)

var sessionSeq atomic.Uint64

// Session is a transport.Session that records every frame written to it,
// for tests of the actors. It is goroutine-safe.
type Session struct {
	info   transport.SessionInfo
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	frames [][]byte
	closed *transport.Disconnect
	signal chan struct{}
}

var _ transport.Session = (*Session)(nil)

// NewSession returns an open recording session.
func NewSession() *Session {
	s := &Session{signal: make(chan struct{}, 1)}
	s.info = transport.SessionInfo{ID: "test-" + strconv.FormatUint(sessionSeq.Add(1), 10), Transport: "test"}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	return s
}

func (s *Session) notify() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// Write records frame.
func (s *Session) Write(frame []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed != nil {
		return transport.ErrClosed
	}
	s.frames = append(s.frames, frame)
	s.notify()
	return nil
}

// WriteMany records frames.
func (s *Session) WriteMany(frames [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed != nil {
		return transport.ErrClosed
	}
	s.frames = append(s.frames, frames...)
	s.notify()
	return nil
}

// WriteBacklog records frames.
func (s *Session) WriteBacklog(frames [][]byte) error { return s.WriteMany(frames) }

// Close records d.
func (s *Session) Close(d transport.Disconnect) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed == nil {
		s.closed = &d
		s.cancel(d)
		s.notify()
	}
}

// Context is cancelled by Close.
func (s *Session) Context() context.Context { return s.ctx }

// Info describes the session.
func (s *Session) Info() *transport.SessionInfo { return &s.info }

// Closed returns the Disconnect the session was closed with, or nil.
func (s *Session) Closed() *transport.Disconnect {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Frames returns a copy of the frames written so far.
func (s *Session) Frames() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.frames...)
}

// Frame is a decoded server frame, for assertions.
type Frame struct {
	Op        string          `json:"op"`
	ID        uint64          `json:"id"`
	Topic     string          `json:"topic"`
	Epoch     string          `json:"epoch"`
	Seq       uint64          `json:"seq"`
	TS        int64           `json:"ts"`
	Recovered *bool           `json:"recovered"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
	// Presence (PROTOCOL.md 1.1): events' client, conn and info, and the
	// presence answer's count and members.
	Client  string          `json:"client"`
	Conn    string          `json:"conn"`
	Info    json.RawMessage `json:"info"`
	Count   int             `json:"count"`
	Members []struct {
		Client string          `json:"client"`
		Conn   string          `json:"conn"`
		Info   json.RawMessage `json:"info"`
	} `json:"members"`
	Raw string `json:"-"`
}

// Decode parses a server frame or fails the test.
func Decode(t testing.TB, frame []byte) Frame {
	t.Helper()
	var f Frame
	if err := json.Unmarshal(frame, &f); err != nil {
		t.Fatalf("frame is not JSON: %q: %v", frame, err)
	}
	f.Raw = string(frame)
	return f
}

// WaitFrames waits until at least n frames were written, and returns them
// decoded. It fails the test after timeout.
func (s *Session) WaitFrames(t testing.TB, n int, timeout time.Duration) []Frame {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		frames := s.Frames()
		if len(frames) >= n {
			out := make([]Frame, len(frames))
			for i, f := range frames {
				out[i] = Decode(t, f)
			}
			return out
		}
		select {
		case <-s.signal:
		case <-deadline.C:
			t.Fatalf("waited %v for %d frames, got %d: %q", timeout, n, len(frames), frames)
		}
	}
}

// WaitClosed waits for Close and returns its Disconnect.
func (s *Session) WaitClosed(t testing.TB, timeout time.Duration) transport.Disconnect {
	t.Helper()
	select {
	case <-s.ctx.Done():
		return *s.Closed()
	case <-time.After(timeout):
		t.Fatalf("session not closed after %v", timeout)
		return transport.Disconnect{}
	}
}

// Eventually polls cond every 10 ms until it returns nil, and fails the
// test with its last error after timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// LatestSession is a recording Session that also serves latest-value
// subscriptions (transport.LatestSession). It conflates nothing: it records
// every frame in order, and counts the writes that came as latest-value
// ones, so a test sees which path the relay took.
type LatestSession struct {
	*Session
	latest atomic.Int64
}

var _ transport.LatestSession = (*LatestSession)(nil)

// NewLatestSession returns an open recording LatestSession.
func NewLatestSession() *LatestSession { return &LatestSession{Session: NewSession()} }

// WriteLatest records frame and counts it.
func (s *LatestSession) WriteLatest(_ string, frame []byte) error {
	s.latest.Add(1)
	return s.Write(frame)
}

// WriteLatestBarrier records frame.
func (s *LatestSession) WriteLatestBarrier(_ string, frame []byte) error { return s.Write(frame) }

// LatestWrites returns how many frames came through WriteLatest.
func (s *LatestSession) LatestWrites() int64 { return s.latest.Load() }
