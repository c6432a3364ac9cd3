package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/sdk/wire"
)

// nopConn is a transportConn that sends nowhere.
type nopConn struct{}

func (nopConn) readFrames() ([]byte, error)           { return nil, ErrClosed }
func (nopConn) writeFrames([][]byte) error            { return nil }
func (nopConn) sendClose(wire.DisconnectCode, string) {}
func (nopConn) abort()                                {}

// TestDatagramNeverOlder feeds a datagram subscription late, repeated and
// reordered frames, from datagrams and from the stream, across epochs and
// a reconnection: the application sees seqs only grow within an epoch,
// and an epoch it left never comes back.
func TestDatagramNeverOlder(t *testing.T) {
	c := &Client{
		ctx:   context.Background(),
		log:   slog.New(slog.DiscardHandler),
		subs:  make(map[string]*Subscription),
		calls: make(map[uint64]*call),
		disp:  newDispatcher(func(Event) {}),
	}
	cn := newConn(nopConn{}, "test")
	newSub := func(topic string, dgram bool) *Subscription {
		s := &Subscription{c: c, topic: topic, handler: func(Message) {}, datagram: dgram, ready: make(chan struct{})}
		c.subs[topic] = s
		return s
	}
	confirm := func(cn *conn, s *Subscription, epoch string, head uint64) {
		c.mu.Lock()
		c.sendSubLocked(cn, s)
		id := c.nextID
		c.mu.Unlock()
		c.onReply(cn, &serverFrame{Op: wire.OpOK, ID: id, Topic: s.topic, Epoch: epoch, Seq: head}, nil)
	}
	msg := func(cn *conn, topic, epoch string, seq uint64, dgram bool) {
		c.onMsg(cn, &serverFrame{Op: wire.OpMsg, Topic: topic, Epoch: epoch, Seq: seq}, dgram)
	}

	pos := newSub("pos", true)
	confirm(cn, pos, "e1", 10)
	msg(cn, "pos", "e1", 9, true)
	msg(cn, "pos", "e1", 12, true)
	msg(cn, "pos", "e1", 11, true)
	msg(cn, "pos", "e1", 12, false) // a repeat, over the stream
	msg(cn, "pos", "e1", 15, false) // too large for a datagram: no gap event
	c.onReset(cn, &serverFrame{Op: wire.OpReset, Topic: "pos", Epoch: "e2", Seq: 0})
	msg(cn, "pos", "e1", 16, true) // late, from the epoch left
	msg(cn, "pos", "e2", 2, true)
	msg(cn, "pos", "e3", 1, true) // a new epoch without a reset frame
	msg(cn, "pos", "e2", 3, true)

	// A datagram for a stream subscription is not delivered.
	scores := newSub("scores", false)
	confirm(cn, scores, "s1", 0)
	msg(cn, "scores", "s1", 1, true)
	msg(cn, "scores", "s1", 1, false)

	// After a reconnection the subscription goes on from the head, without
	// since, and never goes back.
	cn2 := newConn(nopConn{}, "test")
	confirm(cn2, pos, "e3", 5)
	require.Equal(t, fmt.Sprintf(`{"op":"sub","id":%d,"topic":"pos","delivery":"datagram"}`, c.nextID), string(cn2.queue[0]))
	msg(cn, "pos", "e3", 7, true) // from the old connection
	msg(cn2, "pos", "e3", 4, true)
	msg(cn2, "pos", "e3", 6, true)

	var got []string
	for _, d := range c.disp.queue {
		if d.sub == nil {
			got = append(got, fmt.Sprintf("%s %s %s:%d", d.ev.Kind, d.ev.Topic, d.ev.Epoch, d.ev.Seq))
		} else {
			got = append(got, fmt.Sprintf("msg %s %s:%d", d.msg.Topic, d.msg.Epoch, d.msg.Seq))
		}
	}
	require.Equal(t, []string{
		"subscribed pos e1:10",
		"msg pos e1:12",
		"msg pos e1:15",
		"reset pos e2:0",
		"msg pos e2:2",
		"reset pos e3:0",
		"msg pos e3:1",
		"subscribed scores s1:0",
		"msg scores s1:1",
		"subscribed pos e3:5",
		"msg pos e3:6",
	}, got)
}
