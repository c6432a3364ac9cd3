package actors

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/transport"
)

// countingSession counts what it is given and keeps nothing, so a benchmark
// measures the actors' path to the session, not a network.
type countingSession struct {
	info transport.SessionInfo
	n    *atomic.Int64
	// bytes, if set, counts the bytes of the frames.
	bytes *atomic.Int64
}

func (s *countingSession) Write(f []byte) error {
	s.n.Add(1)
	if s.bytes != nil {
		s.bytes.Add(int64(len(f)))
	}
	return nil
}

func (s *countingSession) WriteMany(f [][]byte) error {
	s.n.Add(int64(len(f)))
	if s.bytes != nil {
		for _, b := range f {
			s.bytes.Add(int64(len(b)))
		}
	}
	return nil
}

func (s *countingSession) WriteBacklog(f [][]byte) error { return s.WriteMany(f) }
func (s *countingSession) Close(transport.Disconnect)    {}
func (s *countingSession) Context() context.Context      { return context.Background() }
func (s *countingSession) Info() *transport.SessionInfo  { return &s.info }

// BenchmarkFanOut publishes one message per op to a topic with subs
// subscribers and waits until every subscriber's session has it.
func BenchmarkFanOut(b *testing.B) {
	for _, subs := range []int{1, 1000, 10000} {
		for _, size := range []int{100} {
			b.Run(fmt.Sprintf("subs=%d/size=%db", subs, size), func(b *testing.B) {
				system := actor.NewActorSystem(actor.WithLoggerFactory(testutil.DiscardActorLogs))
				defer system.Shutdown()
				topics := NewLocalTopics(system, TopicConfig{HistorySize: 100})
				relays := NewRelays(system, topics, RelayConfig{})
				conns := NewConns(system, topics, relays, ConnConfig{})
				var delivered atomic.Int64
				for range subs {
					s := &countingSession{n: &delivered}
					h := conns.Accept(s)
					h.HandleFrame([]byte(`{"op":"sub","id":1,"topic":"bench"}`))
				}
				// Each subscription's ok counts once.
				waitFor(b, &delivered, int64(subs))
				delivered.Store(0)
				pid, _ := topics.TopicPID("bench")
				data := []byte(`{"p":"` + strings.Repeat("x", size-8) + `"}`)
				b.ReportAllocs()
				b.ResetTimer()
				// A classic loop: the wait for the deliveries must be timed,
				// and b.Loop stops the timer when its loop ends.
				for range b.N {
					system.Root.Send(pid, &actorpb.PublishRequest{Topic: "bench", Items: []*actorpb.PublishItem{{Data: data}}})
				}
				waitFor(b, &delivered, int64(b.N)*int64(subs))
				b.StopTimer()
				b.ReportMetric(float64(b.N)*float64(subs)/b.Elapsed().Seconds(), "deliveries/s")
			})
		}
	}
}

func waitFor(b *testing.B, n *atomic.Int64, want int64) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for n.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("got %d of %d", n.Load(), want)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestFanOutAllocatesNothingPerDelivery guards the hot path: a publish
// allocates the same whether it reaches 10 sessions or 2,000.
func TestFanOutAllocatesNothingPerDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts need a quiet run")
	}
	perPublish := func(subs int) float64 {
		system := actor.NewActorSystem(actor.WithLoggerFactory(testutil.DiscardActorLogs))
		defer system.Shutdown()
		topics := NewLocalTopics(system, TopicConfig{HistorySize: 10})
		relays := NewRelays(system, topics, RelayConfig{})
		conns := NewConns(system, topics, relays, ConnConfig{})
		var delivered atomic.Int64
		for range subs {
			conns.Accept(&countingSession{n: &delivered}).HandleFrame([]byte(`{"op":"sub","id":1,"topic":"a"}`))
		}
		for delivered.Load() < int64(subs) {
			time.Sleep(time.Millisecond)
		}
		pid, _ := topics.TopicPID("a")
		data := []byte(`{"x":1}`)
		want := delivered.Load()
		return testing.AllocsPerRun(200, func() {
			want += int64(subs)
			system.Root.Send(pid, &actorpb.PublishRequest{Topic: "a", Items: []*actorpb.PublishItem{{Data: data}}})
			for delivered.Load() < want {
				time.Sleep(10 * time.Microsecond)
			}
		})
	}
	few, many := perPublish(10), perPublish(2000)
	t.Logf("allocations per publish: %.1f with 10 subscribers, %.1f with 2000", few, many)
	if many-few > 2 {
		t.Fatalf("a publish to 2000 subscribers allocates %.1f more than to 10: something allocates per delivery", many-few)
	}
}

// BenchmarkPublishManyTopics is the shape of ../shared/bench's S2 inside one
// process: 1,000 topics with 10 subscribers each, one publish per op to the
// next topic, each answered to its caller as the HTTP API waits for it. It
// compares a protoactor future per call with a LocalCall. cpu-ns/op is the
// CPU the process spent per publish (what S2 compares); wall time per op
// follows the scheduler more than the work on 2 cores.
func BenchmarkPublishManyTopics(b *testing.B) {
	const topicsN, subsPerTopic = 1000, 10
	for _, local := range []bool{false, true} {
		b.Run(map[bool]string{false: "call=future", true: "call=local"}[local], func(b *testing.B) {
			system := actor.NewActorSystem(actor.WithLoggerFactory(testutil.DiscardActorLogs))
			defer system.Shutdown()
			WatchDeadLocalCalls(system)
			topics := NewLocalTopics(system, TopicConfig{HistorySize: 100})
			relays := NewRelays(system, topics, RelayConfig{})
			conns := NewConns(system, topics, relays, ConnConfig{})
			var delivered atomic.Int64
			names := make([]string, topicsN)
			pids := make([]*actor.PID, topicsN)
			for i := range names {
				names[i] = fmt.Sprintf("t%d", i)
				for range subsPerTopic {
					conns.Accept(&countingSession{n: &delivered}).HandleFrame(
						[]byte(`{"op":"sub","id":1,"topic":"` + names[i] + `"}`))
				}
				pids[i], _ = topics.TopicPID(names[i])
			}
			waitFor(b, &delivered, topicsN*subsPerTopic)
			delivered.Store(0)
			data := []byte(`{"p":"` + strings.Repeat("x", 92) + `"}`)
			b.ReportAllocs()
			cpu0 := processCPU(b)
			b.ResetTimer()
			for i := range b.N {
				req := &actorpb.PublishRequest{Topic: names[i%topicsN], Items: []*actorpb.PublishItem{{Data: data}}}
				var err error
				if local {
					call := NewLocalCall(req)
					system.Root.Send(pids[i%topicsN], call)
					_, err = call.Wait(5 * time.Second)
				} else {
					_, err = system.Root.RequestFuture(pids[i%topicsN], req, 5*time.Second).Result()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			waitFor(b, &delivered, int64(b.N)*subsPerTopic)
			b.StopTimer()
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU returns the user and system CPU time of the process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
