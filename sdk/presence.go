package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/topicast/topicast/sdk/wire"
)

// presenceOp is an Enter or Leave waiting for the server's answer.
type presenceOp struct {
	done chan struct{} // closed by settleOpLocked; err is set before
	err  error
	// prevEntered and prevInfo are the membership before an Enter, which
	// a refusal leaves in force.
	prevEntered bool
	prevInfo    []byte
}

// settleOpLocked answers the Enter or Leave waiting, if any; c.mu must be
// held.
func (s *Subscription) settleOpLocked(err error) {
	if s.op == nil {
		return
	}
	s.op.err = err
	close(s.op.done)
	s.op = nil
}

// Enter makes the client's connection a presence member of the
// subscription's topic (protocol 1.1), with info as its info: the
// subscribers that asked for Presence get an EventJoin, or an EventUpdate
// when the client had entered already (Enter again to change the info).
// info is encoded with encoding/json, except json.RawMessage and []byte,
// which must hold JSON already; nil means no info. Compacted, it must fit
// in wire.MaxPresenceInfo bytes (1 KiB), else Enter fails with a
// *wire.Error with wire.CodeTooLarge without asking the server.
//
// The membership lasts until Leave, Unsubscribe, the end of the
// subscription or Close. The server forgets it when a connection ends, so
// the client enters again with the same info on every new connection,
// right after it subscribes again. If the server then refuses for good,
// the client is no longer a member and Config.OnEvent gets an EventError
// with the topic; unavailable, rate_limited and internal are retried with
// backoff.
//
// Enter returns once the server accepted it; while the client is
// disconnected, it waits for the next connection. Errors from the server
// are *wire.Error: bad_request when the topic's namespace does not enable
// presence, forbidden when the token may not subscribe to the topic. A
// refused Enter leaves the membership as it was. If ctx ends first, Enter
// returns its cause and the enter goes on all the same (call Leave to
// undo it). An Enter still waiting when Leave or another Enter is called
// returns nil: the later call decides the membership.
func (s *Subscription) Enter(ctx context.Context, info any) error {
	raw, err := encodeInfo(info)
	if err != nil {
		return err
	}
	c := s.c
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	if c.subs[s.topic] != s {
		c.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrSubscriptionEnded, s.topic)
	}
	op := &presenceOp{done: make(chan struct{}), prevEntered: s.entered, prevInfo: s.info}
	s.settleOpLocked(nil) // the new call replaces the one waiting
	s.presenceGen++
	s.op = op
	s.entered, s.info = true, raw
	if cn := c.conn; cn != nil {
		c.sendEnterLocked(cn, s)
	} // else the next connection sends it
	c.mu.Unlock()
	return s.waitOp(ctx, op)
}

// Leave ends the membership that Enter started: the subscribers that asked
// for Presence get an EventLeave. It waits for the server's answer,
// bounded by ctx. Leaving when not a member, or after the subscription
// ended, does nothing; so does leaving while disconnected, since the end
// of a connection leaves every topic it entered.
func (s *Subscription) Leave(ctx context.Context) error {
	c := s.c
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	if c.subs[s.topic] != s {
		c.mu.Unlock()
		return nil // Unsubscribe or the subscription's end left already
	}
	s.settleOpLocked(nil) // the new call replaces the one waiting
	s.presenceGen++
	s.entered, s.info = false, nil
	cn := c.conn
	if cn == nil || s.enterOn != cn {
		s.enterOn = nil
		c.mu.Unlock()
		return nil // not a member on this connection
	}
	s.enterOn = nil
	op := &presenceOp{done: make(chan struct{})}
	s.op = op
	id, cl := c.newCallLocked(cn, callLeave, s)
	cl.gen = s.presenceGen
	cn.enqueue(wire.AppendLeave(nil, id, s.topic))
	c.mu.Unlock()
	err := s.waitOp(ctx, op)
	var e *wire.Error
	if errors.As(err, &e) && e.Code == wire.CodeBadRequest {
		// bad_request means "not a member": the server refused the enter
		// that came before, or left for the client.
		return nil
	}
	return err
}

// waitOp waits for op's answer.
func (s *Subscription) waitOp(ctx context.Context, op *presenceOp) error {
	c := s.c
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
		c.mu.Lock()
		if s.op == op {
			s.op = nil // the answer goes on unwaited for
		}
		c.mu.Unlock()
		return context.Cause(ctx)
	case <-c.done:
		return c.Err()
	}
}

// sendEnterLocked sends s's enter on cn; its answer goes to the Enter
// waiting, if any. c.mu must be held.
func (c *Client) sendEnterLocked(cn *conn, s *Subscription) {
	id, cl := c.newCallLocked(cn, callEnter, s)
	cl.gen = s.presenceGen
	s.enterOn = cn
	cn.enqueue(wire.AppendEnter(nil, id, s.topic, s.info))
}

// endMembershipLocked forgets s's membership as s ends, telling the server
// when it has it on the current connection. An Enter waiting for its
// answer gets err. c.mu must be held.
func (c *Client) endMembershipLocked(s *Subscription, err error) {
	s.settleOpLocked(err)
	s.presenceGen++
	on := s.enterOn
	s.entered, s.info, s.enterOn = false, nil, nil
	if cn := c.conn; cn != nil && on == cn {
		id, cl := c.newCallLocked(cn, callLeave, s) // its answer changes nothing
		cl.gen = s.presenceGen
		cn.enqueue(wire.AppendLeave(nil, id, s.topic))
	}
}

// onPresenceReplyLocked handles the answer to an enter or a leave; c.mu
// must be held.
func (c *Client) onPresenceReplyLocked(cn *conn, cl *call, e *wire.Error) {
	s := cl.sub
	if cl.gen != s.presenceGen {
		return // an Enter or Leave came since: its answer is the one that counts
	}
	switch {
	case e == nil:
		if cl.kind == callEnter {
			s.enterRetries = 0
			s.memberOn = cn
		}
		s.settleOpLocked(nil)
	case cl.kind == callLeave:
		s.settleOpLocked(e)
	case s.op != nil:
		// The caller of Enter hears of the refusal; the membership stays
		// as it was before.
		s.entered, s.info = s.op.prevEntered, s.op.prevInfo
		if s.enterOn == cn && (!s.entered || s.memberOn != cn) {
			// The server holds no membership on this connection (the
			// refused enter was the first on it, after a reconnection):
			// the previous one is entered again like after a reconnection.
			s.enterOn = nil
		}
		s.settleOpLocked(e)
	case !s.entered || c.subs[s.topic] != s:
		// Not a member any more: nothing to enter again.
	case retriable(e.Code):
		// Nobody waits (the client entered again after a reconnection, or
		// the caller gave up): try again later.
		s.enterOn = nil
		s.enterRetries++
		s.enterRetryAt = time.Now().Add(backoff(s.enterRetries, c.cfg.MinBackoff, c.cfg.MaxBackoff))
		c.log.LogAttrs(c.ctx, slog.LevelDebug, "topicast: enter refused, will retry",
			slog.String("topic", s.topic), slog.Any("err", e))
	default:
		s.entered, s.info, s.enterOn = false, nil, nil
		c.disp.event(Event{Kind: EventError, Topic: s.topic, Err: e})
	}
}

// onPresenceEvent hands a join, update or leave event to the application
// when its topic's subscription asked for them.
func (c *Client) onPresenceEvent(cn *conn, f *serverFrame, kind EventKind) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[f.Topic]
	if s == nil || !s.presence || s.activeOn != cn {
		return
	}
	m := &wire.Member{Client: f.Client, Conn: f.Conn}
	if kind != EventLeave {
		m.Info = f.Info
	}
	c.disp.subEvent(s, Event{Kind: kind, Topic: f.Topic, Member: m})
}

// Presence asks the server who is in topic (protocol 1.1): the number of
// members and, ordered by connection, at most wire.MaxPresenceListed of
// them, each with its client, connection and info. The topic's namespace
// must enable presence (else a *wire.Error with bad_request) and the
// client's token must allow subscribing to it (else forbidden); the client
// need not be subscribed. While the client is disconnected, Presence waits
// for the next connection, and it asks again when the connection ends
// before the answer; ctx bounds it all.
func (c *Client) Presence(ctx context.Context, topic string) (*wire.Presence, error) {
	if err := wire.ValidateTopic(topic); err != nil {
		return nil, err
	}
	for {
		f, err := c.roundTrip(ctx, callPresence, func(id uint64) []byte {
			return wire.AppendPresenceCommand(nil, id, topic)
		})
		switch {
		case err == nil:
			members := f.Members
			if members == nil {
				members = []wire.Member{}
			}
			return &wire.Presence{Topic: topic, Count: f.Count, Members: members}, nil
		case errors.Is(err, ErrConnectionLost):
			continue // asking again changes nothing on the server
		default:
			return nil, err
		}
	}
}

// encodeInfo returns an Enter's info as compacted JSON of at most
// wire.MaxPresenceInfo bytes, nil for no info, or a *wire.Error.
func encodeInfo(info any) ([]byte, error) {
	switch v := info.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if len(bytes.TrimSpace(v)) == 0 {
			return nil, nil
		}
	case []byte:
		if len(bytes.TrimSpace(v)) == 0 {
			return nil, nil
		}
	}
	out, err := encodeData(info, wire.MaxPresenceInfo)
	if err != nil {
		var e *wire.Error
		if errors.As(err, &e) {
			return nil, &wire.Error{Code: e.Code, Message: "info: " + e.Message, Err: e.Err}
		}
		return nil, err
	}
	if string(out) == "null" {
		return nil, nil // the server takes null for no info
	}
	return out, nil
}
