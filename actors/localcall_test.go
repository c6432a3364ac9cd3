package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors/actorpb"
)

func TestLocalCallIsAnsweredByTheTopic(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	pid, err := e.topics.TopicPID("news")
	require.NoError(t, err)

	for want := uint64(1); want <= 3; want++ {
		call := NewLocalCall(&actorpb.PublishRequest{Topic: "news", Items: []*actorpb.PublishItem{data(int(want))}})
		e.system.Root.Send(pid, call)
		res, err := call.Wait(5 * time.Second)
		require.NoError(t, err)
		require.Equal(t, []uint64{want}, res.(*actorpb.PublishResponse).Seqs)
	}

	call := NewLocalCall(&actorpb.HistoryRequest{Topic: "news", Since: 1})
	e.system.Root.Send(pid, call)
	res, err := call.Wait(5 * time.Second)
	require.NoError(t, err)
	h := res.(*actorpb.HistoryResponse)
	require.Equal(t, uint64(3), h.Head)
	require.Len(t, h.Frames, 2)

	// The same request as a plain message still answers its sender.
	require.Equal(t, []uint64{4}, e.publish("news", data(4)).Seqs)
}

func TestLocalCallToAStoppedActorIsADeadLetter(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	stop := WatchDeadLocalCalls(e.system)
	defer stop()
	pid, err := e.topics.TopicPID("news")
	require.NoError(t, err)
	require.NoError(t, e.system.Root.StopFuture(pid).Wait())

	call := NewLocalCall(&actorpb.PublishRequest{Topic: "news", Items: []*actorpb.PublishItem{data(1)}})
	start := time.Now()
	e.system.Root.Send(pid, call)
	_, err = call.Wait(10 * time.Second)
	require.ErrorIs(t, err, actor.ErrDeadLetter)
	require.Less(t, time.Since(start), 5*time.Second, "a dead letter must not wait for the deadline")
}

func TestLocalCallWithoutAnAnswerTimesOut(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	silent := e.system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	call := NewLocalCall(&actorpb.PublishRequest{Topic: "news"})
	e.system.Root.Send(silent, call)
	_, err := call.Wait(50 * time.Millisecond)
	require.ErrorIs(t, err, ErrCallTimeout)
}

func TestInProcessTopicAnswersOnTheCallersGoroutine(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	pid, err := e.topics.TopicPID("news")
	require.NoError(t, err)
	for i := range 20 {
		call := NewLocalCall(&actorpb.PublishRequest{Topic: "news", Items: []*actorpb.PublishItem{data(i)}})
		e.system.Root.Send(pid, call)
		// No other goroutine had to run: the answer is there already.
		require.Len(t, call.done, 1, "publish %d was not handled during Send", i)
		res, err := call.Wait(time.Second)
		require.NoError(t, err)
		require.Equal(t, []uint64{uint64(i + 1)}, res.(*actorpb.PublishResponse).Seqs)
	}
}
