package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/topicast/topicast/sdk/wire"
)

// Message is one message of a topic. (Epoch, Seq) names it: keep them to
// resume later with Since.
type Message struct {
	Topic string
	Epoch string
	Seq   uint64
	// TS is the server's publish time (millisecond precision).
	TS time.Time
	// Data is the JSON value published, compacted. The handler owns it.
	Data json.RawMessage
	// Frame is the msg frame as the server sent it (one JSON object,
	// without a newline), set only with Config.KeepFrames. The handler owns
	// it.
	Frame []byte
}

// SubOption configures one subscription.
type SubOption func(*Subscription)

// Since makes a subscription start by recovering the messages after (epoch,
// seq), the position of the last message the application handled, from the
// server's history. If the history cannot fill the gap, Config.OnEvent gets
// an EventReset (ResetNotRecovered) and the subscription goes on live.
func Since(epoch string, seq uint64) SubOption {
	return func(s *Subscription) {
		s.since, s.hasPos, s.epoch, s.seq = true, true, epoch, seq
	}
}

// Datagram asks for the topic's messages as WebTransport datagrams, or
// messages of WebRTC's datagram channel: the newest value arrives without
// waiting for lost packets to be resent, at the cost of losing some. Use
// it for values where only the latest matters (positions, gauges). It
// needs a WebTransport (https://) or WebRTC (.../v1/webrtc) URL; over
// WebSocket the server refuses the subscription (bad_request).
//
// A datagram subscription promises less than a stream one: its handler
// gets messages in increasing seq order but not all of them, without
// EventGap; a message never comes after a newer one (late and repeated
// datagrams are dropped). It does not recover: after a reconnection it
// goes on from the topic's head, and it cannot be combined with Since.
// Messages too large for a datagram (about 1,200 bytes) come over the
// stream, in the same order.
func Datagram() SubOption {
	return func(s *Subscription) { s.datagram = true }
}

// Latest asks for a latest-value subscription ("mode":"latest"): when the
// client falls behind (its connection or its handlers are slower than the
// topic), the server keeps only the newest undelivered message for it, so a
// dashboard gets fresh values and is never closed for the topic's volume.
// The handler gets messages in increasing seq order with gaps, and no
// EventGap for them. It needs WebSocket, WebTransport or WebRTC.
func Latest() SubOption {
	return func(s *Subscription) { s.latest = true }
}

// Presence asks for the topic's presence events too ("presence":true,
// protocol 1.1): Config.OnEvent gets an EventJoin, EventUpdate or EventLeave
// each time a connection enters the topic, changes its info or leaves it
// (see Subscription.Enter), in order with the topic's messages. The
// server must enable it for the topic's namespace (join_leave), else it
// refuses the subscription with bad_request. The events are not
// recovered after a reconnection: ask Client.Presence for the members
// then.
func Presence() SubOption {
	return func(s *Subscription) { s.presence = true }
}

// Subscription is a client's subscription to one topic. Its methods are
// goroutine-safe.
type Subscription struct {
	c       *Client
	topic   string
	handler func(Message)
	// datagram is set by Datagram; latest by Latest; since by Since;
	// presence by Presence.
	datagram bool
	latest   bool
	since    bool
	presence bool
	// delta: the sub asks for deltas (Config.Delta); base is the data of
	// the last message delivered, which the next delta applies to. Guarded
	// by c.mu.
	delta bool
	base  []byte
	// closed stops deliveries once Unsubscribe started.
	closed atomic.Bool
	// ready is closed when the server answered the first sub; readyErr is
	// set before.
	ready chan struct{}

	// Guarded by c.mu.
	readyErr  error
	confirmed bool
	// hasPos, epoch, seq: the position of the last message handed to the
	// dispatcher (or the head at subscription, or Since's).
	hasPos bool
	epoch  string
	seq    uint64
	// prevEpoch is the epoch before the last change; late datagrams of it
	// are dropped.
	prevEpoch string
	// sentOn is the connection the last sub went on; activeOn is the one
	// whose server confirmed it (deliveries from others are dropped).
	sentOn   *conn
	activeOn *conn
	// A sub refused with a retriable code is sent again at retryAt.
	retries int
	retryAt time.Time
	// entered is set from Enter to Leave: the client is a presence member
	// of the topic with info, and enters again with it on every new
	// connection. enterOn is the connection the last enter went on.
	entered bool
	info    []byte
	enterOn *conn
	// memberOn is the connection on which the server last accepted an
	// enter: there it holds the membership.
	memberOn *conn
	// presenceGen counts the Enter and Leave calls and the end of the
	// membership; op is the last call's, while it waits for its answer.
	presenceGen uint64
	op          *presenceOp
	// An enter sent again after a reconnection and refused with a
	// retriable code is sent again at enterRetryAt.
	enterRetries int
	enterRetryAt time.Time
}

// Topic returns the subscription's topic.
func (s *Subscription) Topic() string { return s.topic }

// settleLocked answers the waiting Subscribe, once; c.mu must be held.
func (s *Subscription) settleLocked(err error) {
	if s.confirmed {
		return
	}
	s.confirmed = true
	s.readyErr = err
	close(s.ready)
}

// Subscribe subscribes to topic and returns once the server confirmed it.
// handler is called with every message of the topic from then on (or from
// Since), exactly once and in seq order, across reconnections: the client
// resubscribes with the position of the last message it delivered and drops
// repeats. When continuity is lost all the same (the history did not reach
// back far enough, or the topic restarted), Config.OnEvent gets an
// EventReset and deliveries go on from the new position.
//
// Handlers of all subscriptions and OnEvent are called one at a time, on
// one goroutine of the client, in the order the server sent the messages.
// A handler must not block for long: later messages wait for it (they queue
// in memory, without limit). A handler may call the client's methods,
// except Close.
//
// A client holds one subscription per topic: a second Subscribe to the same
// topic fails with ErrAlreadySubscribed. Errors from the server are
// *wire.Error (forbidden, unavailable...). While the client is disconnected,
// Subscribe waits for the next connection, bounded by ctx.
func (c *Client) Subscribe(ctx context.Context, topic string, handler func(Message), opts ...SubOption) (*Subscription, error) {
	if err := wire.ValidateTopic(topic); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, errors.New("topicast: Subscribe needs a handler")
	}
	s := &Subscription{c: c, topic: topic, handler: handler, ready: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	s.delta = c.cfg.Delta && !s.datagram && !s.latest
	if s.datagram && s.since {
		return nil, errors.New("topicast: a Datagram subscription cannot recover: Since and Datagram do not combine")
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	if c.subs[topic] != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w to %s", ErrAlreadySubscribed, topic)
	}
	c.subs[topic] = s
	if c.conn != nil {
		c.sendSubLocked(c.conn, s)
	} // else the next connection sends it
	c.mu.Unlock()

	select {
	case <-s.ready:
		if s.readyErr != nil {
			return nil, s.readyErr
		}
		return s, nil
	case <-ctx.Done():
		s.unsubscribe()
		return nil, context.Cause(ctx)
	case <-c.done:
		return nil, c.Err()
	}
}

// Unsubscribe ends the subscription, and the membership of an Enter: once
// it has returned, the handler is not called again, nor OnEvent for its
// presence events. It waits for the server's answer, bounded by ctx; if the
// connection is down, there is nothing to wait for. Calling it again does
// nothing.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	id, cl := s.unsubscribe()
	if cl == nil {
		return nil
	}
	select {
	case r := <-cl.done:
		var e *wire.Error
		if errors.As(r.err, &e) && e.Code != wire.CodeBadRequest {
			// bad_request means "not subscribed": the server had already
			// ended it, which is what the caller wants.
			return e
		}
		return nil // or the connection ended, and the subscription with it
	case <-ctx.Done():
		s.c.dropCall(id)
		return context.Cause(ctx)
	}
}

// unsubscribe removes s and sends an unsub if the server may know it;
// it returns that command's call, if any.
func (s *Subscription) unsubscribe() (uint64, *call) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.closed.Store(true)
	if c.subs[s.topic] != s {
		return 0, nil
	}
	delete(c.subs, s.topic)
	c.endMembershipLocked(s, fmt.Errorf("%w: %s", ErrSubscriptionEnded, s.topic))
	cn := c.conn
	if cn == nil || s.sentOn != cn {
		return 0, nil // no connection, or the server refused it: nothing to undo
	}
	id, cl := c.newCallLocked(cn, callUnsub, nil)
	cn.enqueue(appendUnsub(nil, id, s.topic))
	return id, cl
}
