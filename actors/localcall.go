package actors

import (
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// ErrCallTimeout is what a LocalCall's Wait returns when no answer came in
// time.
var ErrCallTimeout = errors.New("actors: no answer in time")

// LocalCall is a request to a topic actor of this process that carries its
// own reply slot. A protoactor future costs a process in the registry (with
// a fresh ID string), a timer and a wake-up per call; a publish pays that
// for every message. A LocalCall is one small allocation and a channel.
//
// It never crosses the network: send it only to a PID of this actor system.
// A LocalCall that reaches no actor is answered actor.ErrDeadLetter once
// WatchDeadLocalCalls runs on the actor system, so the caller can look the
// actor up again at once instead of waiting for its deadline, as with a
// future.
type LocalCall struct {
	// Request is the message the actor handles: *actorpb.PublishRequest or
	// *actorpb.HistoryRequest.
	Request any
	done    chan localResult
}

type localResult struct {
	res any
	err error
}

// NewLocalCall wraps req.
func NewLocalCall(req any) *LocalCall {
	return &LocalCall{Request: req, done: make(chan localResult, 1)}
}

// answer delivers the actor's response. Only the first answer counts.
func (l *LocalCall) answer(res any, err error) {
	select {
	case l.done <- localResult{res, err}:
	default:
	}
}

// Wait returns the answer, or ErrCallTimeout after d.
func (l *LocalCall) Wait(d time.Duration) (any, error) {
	select {
	case r := <-l.done:
		return r.res, r.err
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-l.done:
		return r.res, r.err
	case <-t.C:
		return nil, ErrCallTimeout
	}
}

// WatchDeadLocalCalls makes the actor system answer every LocalCall that
// reaches no actor with actor.ErrDeadLetter. Call it once per system; the
// returned function stops it.
func WatchDeadLocalCalls(system *actor.ActorSystem) (stop func()) {
	sub := system.EventStream.Subscribe(func(ev any) {
		if dl, ok := ev.(*actor.DeadLetterEvent); ok {
			if l, ok := dl.Message.(*LocalCall); ok {
				l.answer(nil, actor.ErrDeadLetter)
			}
		}
	})
	return func() { system.EventStream.Unsubscribe(sub) }
}
