package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/topicast/topicast/sdk/wire"
)

// closeWait bounds how long Close waits for the server to answer the
// client's close frame.
const closeWait = time.Second

// Client is a connection to a topicast server that survives the loss of its
// transport: it reconnects with backoff and resubscribes every topic from
// the last message it delivered. Its methods are goroutine-safe, except that
// Close must not be called from a handler or from Config.OnEvent.
type Client struct {
	cfg  Config
	urls []string
	log  *slog.Logger
	ws   *wsDialer
	wt   *wtDialer
	rtc  *rtcDialer
	disp *dispatcher

	// ctx is cancelled by Close; it bounds the run loop's waits and dials.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the run loop
	closeOnce sync.Once
	// done is closed when the client stops for good (Close, or a close code
	// after which it must not reconnect); err says why.
	done chan struct{}

	// Guarded by mu.
	mu        sync.Mutex
	err       error
	conn      *conn         // nil while disconnected
	connReady chan struct{} // closed once conn is set
	subs      map[string]*Subscription
	calls     map[uint64]*call
	nextID    uint64
}

type callKind uint8

const (
	callSub callKind = iota + 1
	callUnsub
	callPub
	callEnter
	callLeave
	callPresence
)

// call is a command waiting for its reply (ok or error with its id).
type call struct {
	kind callKind
	conn *conn
	sub  *Subscription   // callSub, callEnter, callLeave
	done chan callResult // callUnsub, callPub, callPresence; buffered, receives once
	// gen is sub's presenceGen when a callEnter or callLeave was sent: its
	// answer matters only if no Enter or Leave came since.
	gen uint64
}

type callResult struct {
	frame *serverFrame
	err   error
}

// Dial connects to url (ws:// or wss:// for WebSocket, https:// for
// WebTransport, such as https://127.0.0.1:4433/wt, http:// or https://
// ending in /v1/webrtc for WebRTC, such as http://127.0.0.1:8080/v1/webrtc),
// or to one of cfg.FallbackURLs, trying each once in order, and returns a
// client that keeps a connection up until Close. ctx bounds this first
// connection only.
func Dial(ctx context.Context, url string, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	urls := append([]string{url}, cfg.FallbackURLs...)
	for _, u := range urls {
		if err := checkURL(u); err != nil {
			return nil, err
		}
	}
	c := &Client{
		cfg:       cfg,
		urls:      urls,
		log:       cfg.Logger,
		ws:        newWSDialer(&cfg),
		wt:        newWTDialer(&cfg),
		rtc:       newRTCDialer(&cfg),
		disp:      newDispatcher(cfg.OnEvent),
		done:      make(chan struct{}),
		connReady: make(chan struct{}),
		subs:      make(map[string]*Subscription),
		calls:     make(map[uint64]*call),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	var errs []error
	for i, u := range urls {
		cn, err := c.connect(ctx, u)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		c.wg.Add(1)
		go c.run(cn, i)
		go c.disp.run() // joined by disp.close in Close
		return c, nil
	}
	c.cancel()
	return nil, fmt.Errorf("topicast: dial: %w", errors.Join(errs...))
}

// Close closes the connection (with 1000) and stops the client: calls in
// progress fail with ErrClosed, no handler or OnEvent call starts after
// Close returns, and every goroutine of the client has returned. It waits
// for the handler in progress, so it must not be called from a handler or
// OnEvent (call it from another goroutine there). It returns nil.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.terminate(ErrClosed)
		c.cancel()
		c.wg.Wait()
		c.disp.close()
	})
	return nil
}

// Done is closed when the client has stopped for good: after Close, or
// after the server closed with a code that forbids reconnecting (Err tells
// which).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the client runs, ErrClosed after Close, or the
// *CloseError that stopped it (1009, 4001, 4009).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// terminate records why the client stops, once.
func (c *Client) terminate(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}

// connect makes one connection attempt to u.
func (c *Client) connect(ctx context.Context, u string) (*conn, error) {
	d, err := c.dialerFor(u)
	if err != nil {
		return nil, err
	}
	var token string
	if c.cfg.Token != nil {
		if token, err = c.cfg.Token(ctx); err != nil {
			return nil, fmt.Errorf("topicast: get a token for %s: %w", u, err)
		}
	}
	tc, err := d.dial(ctx, u, token)
	if err != nil {
		return nil, err
	}
	cn := newConn(tc, u)
	if token != "" {
		cn.enqueue(appendHello(nil, token)) // first on the connection
	}
	return cn, nil
}

// run is the client's connection manager: it serves a connection until it
// ends, then reconnects with backoff, until Close or a final close code.
func (c *Client) run(cn *conn, urlIdx int) {
	defer c.wg.Done()
	attempt := 0
	for {
		cause := c.serve(cn)
		c.detach(cn, cause)
		if c.ctx.Err() != nil {
			return
		}
		c.log.LogAttrs(c.ctx, slog.LevelDebug, "topicast: disconnected",
			slog.String("url", cn.url), slog.Any("err", cause))
		var ce *CloseError
		if errors.As(cause, &ce) {
			if !ce.Code.Reconnect() {
				c.terminate(ce)
				c.disp.event(Event{Kind: EventClosed, URL: cn.url, Err: ce})
				return
			}
			if ce.Code == wire.CloseGoingAway {
				urlIdx++ // that server is leaving: try the next one first
			}
		}
		c.disp.event(Event{Kind: EventDisconnected, URL: cn.url, Err: cause})
		if cn.gotFrame.Load() {
			attempt = 0 // the connection worked: start the backoff again
		}
		for {
			if !sleep(c.ctx, backoff(attempt, c.cfg.MinBackoff, c.cfg.MaxBackoff)) {
				return
			}
			attempt++
			u := c.urls[urlIdx%len(c.urls)]
			next, err := c.connect(c.ctx, u)
			if err == nil {
				cn = next
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			if ce := finalRefusal(err); ce != nil {
				// A WebRTC offer refused as a WebSocket session would
				// have been closed (401: 4001): stop as after that close.
				c.terminate(ce)
				c.disp.event(Event{Kind: EventClosed, URL: u, Err: ce})
				return
			}
			c.log.LogAttrs(c.ctx, slog.LevelDebug, "topicast: connection attempt failed",
				slog.String("url", u), slog.Int("attempt", attempt), slog.Any("err", err))
			urlIdx++
		}
	}
}

// finalRefusal returns the *CloseError of a failed connection attempt
// after which the client must not try again (only WebRTC dials, whose
// refusals come as HTTP answers, have one), or nil.
func finalRefusal(err error) *CloseError {
	var ce *CloseError
	if errors.As(err, &ce) && !ce.Code.Reconnect() {
		return ce
	}
	return nil
}

// serve runs cn until it ends or the client closes, and returns the cause.
// It has joined cn's reader and writer when it returns.
func (c *Client) serve(cn *conn) error {
	cn.wg.Add(2)
	go c.readLoop(cn)
	go cn.writeLoop()
	if dr, ok := cn.tc.(datagramReader); ok {
		cn.wg.Add(1)
		go c.datagramLoop(cn, dr)
	}
	defer cn.wg.Wait()
	c.attach(cn)
	tick := time.NewTicker(c.tickEvery())
	defer tick.Stop()
	var lastPing time.Time
	for {
		select {
		case <-cn.done:
			return cn.cause
		case <-c.ctx.Done():
			cn.tc.sendClose(wire.CloseNormal, "")
			t := time.NewTimer(closeWait)
			select {
			case <-cn.done: // the server answered the close
			case <-t.C:
			}
			t.Stop()
			cn.fail(ErrClosed)
			return ErrClosed
		case now := <-tick.C:
			c.heartbeat(cn, now, &lastPing)
			c.retrySubs(cn, now)
		}
	}
}

// tickEvery is the resolution of heartbeats and subscription retries.
func (c *Client) tickEvery() time.Duration {
	d := time.Second
	for _, x := range []time.Duration{c.cfg.PingAfter, c.cfg.SilenceTimeout} {
		if x > 0 && x/4 < d {
			d = x / 4
		}
	}
	return max(d, 5*time.Millisecond)
}

// heartbeat pings a quiet connection and drops a silent one.
func (c *Client) heartbeat(cn *conn, now time.Time, lastPing *time.Time) {
	read := time.Unix(0, cn.lastRead.Load())
	if c.cfg.SilenceTimeout > 0 && now.Sub(read) >= c.cfg.SilenceTimeout {
		cn.fail(ErrServerSilent)
		return
	}
	if c.cfg.PingAfter <= 0 {
		return
	}
	wrote := time.Unix(0, cn.lastWrite.Load())
	quiet := now.Sub(wrote) >= c.cfg.PingAfter || now.Sub(read) >= c.cfg.PingAfter
	if quiet && now.Sub(*lastPing) >= c.cfg.PingAfter/2 {
		cn.enqueue(wire.PingFrame)
		*lastPing = now
	}
}

// attach makes cn the client's connection and sends it every subscription,
// and every enter (the last connection's end left the topics).
func (c *Client) attach(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = cn
	close(c.connReady)
	c.disp.event(Event{Kind: EventConnected, URL: cn.url})
	for _, s := range c.subs {
		c.sendSubLocked(cn, s)
		if s.entered {
			c.sendEnterLocked(cn, s)
		}
	}
	c.log.LogAttrs(c.ctx, slog.LevelDebug, "topicast: connected",
		slog.String("url", cn.url), slog.Int("subscriptions", len(c.subs)))
}

// detach forgets cn: its calls fail (subscriptions and enters are sent
// again on the next connection, where an Enter waiting for its answer gets
// it).
func (c *Client) detach(cn *conn, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == cn {
		c.conn = nil
		c.connReady = make(chan struct{})
	}
	lost := fmt.Errorf("%w: %w", ErrConnectionLost, cause)
	for id, cl := range c.calls {
		if cl.conn != cn {
			continue
		}
		delete(c.calls, id)
		if cl.done != nil {
			cl.done <- callResult{err: lost}
		}
		if cl.kind == callLeave && cl.gen == cl.sub.presenceGen {
			cl.sub.settleOpLocked(nil) // the connection's end left the topic
		}
	}
	for _, s := range c.subs {
		if s.sentOn == cn {
			s.sentOn = nil
		}
		if s.activeOn == cn {
			s.activeOn = nil
		}
		if s.enterOn == cn {
			s.enterOn = nil
		}
	}
}

// newCallLocked registers a command to send on cn and returns its id.
func (c *Client) newCallLocked(cn *conn, kind callKind, s *Subscription) (uint64, *call) {
	c.nextID++
	cl := &call{kind: kind, conn: cn, sub: s}
	switch kind {
	case callUnsub, callPub, callPresence:
		cl.done = make(chan callResult, 1)
	}
	c.calls[c.nextID] = cl
	return c.nextID, cl
}

func (c *Client) dropCall(id uint64) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

// readLoop is the connection's reader goroutine.
func (c *Client) readLoop(cn *conn) {
	defer cn.wg.Done()
	for {
		msg, err := cn.tc.readFrames()
		if err != nil {
			cn.fail(err)
			return
		}
		cn.lastRead.Store(time.Now().UnixNano())
		cn.gotFrame.Store(true)
		wire.EachFrame(msg, func(frame []byte) { c.handleFrame(cn, frame) })
	}
}

// datagramLoop is the connection's datagram reader goroutine. Datagrams
// carry the msg frames of datagram subscriptions.
func (c *Client) datagramLoop(cn *conn, dr datagramReader) {
	defer cn.wg.Done()
	for {
		b, err := dr.readDatagram()
		if err != nil {
			return // the connection is gone: the stream's reader reports why
		}
		cn.lastRead.Store(time.Now().UnixNano())
		f, ok := c.decodeFrame(cn, b)
		if ok && f.Op == wire.OpMsg {
			c.onMsg(cn, f, true)
		}
	}
}

// decodeFrame decodes a server frame, keeping a copy of it for
// Config.KeepFrames.
func (c *Client) decodeFrame(cn *conn, raw []byte) (*serverFrame, bool) {
	f := new(serverFrame)
	if err := json.Unmarshal(raw, f); err != nil {
		c.log.LogAttrs(c.ctx, slog.LevelDebug, "topicast: ignored a server frame that is not JSON",
			slog.String("url", cn.url), slog.Any("err", err))
		return nil, false
	}
	if c.cfg.KeepFrames && f.Op == wire.OpMsg {
		f.raw = bytes.Clone(raw)
	}
	return f, true
}

// handleFrame routes one server frame; it runs on cn's reader.
func (c *Client) handleFrame(cn *conn, raw []byte) {
	f, ok := c.decodeFrame(cn, raw)
	if !ok {
		return
	}
	switch f.Op {
	case wire.OpPing:
		cn.enqueue(wire.PongFrame)
	case wire.OpMsg:
		c.onMsg(cn, f, false)
	case wire.OpOK:
		c.onReply(cn, f, nil)
	case wire.OpError:
		e := f.wireError()
		switch {
		case f.ID != 0:
			c.onReply(cn, f, e)
		case f.Topic != "":
			c.onSubEnded(cn, f, e)
		default:
			c.disp.event(Event{Kind: EventError, Err: e})
		}
	case wire.OpReset:
		c.onReset(cn, f)
	case wire.OpJoin:
		c.onPresenceEvent(cn, f, EventJoin)
	case wire.OpUpdate:
		c.onPresenceEvent(cn, f, EventUpdate)
	case wire.OpLeave:
		c.onPresenceEvent(cn, f, EventLeave)
	}
}

// onMsg hands a delivery to the application unless it is a duplicate: a seq
// at or below the last one delivered in the same epoch. dgram is set for a
// frame that came in a datagram.
func (c *Client) onMsg(cn *conn, f *serverFrame, dgram bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[f.Topic]
	if s == nil || s.activeOn != cn {
		return // not subscribed (any more, or yet) on this connection
	}
	switch {
	case s.datagram:
		// Never older than what was delivered: gaps are expected, and a
		// frame too large for a datagram comes on the stream instead.
		if s.hasPos && f.Epoch == s.epoch && f.Seq <= s.seq {
			return
		}
		if s.hasPos && f.Epoch != s.epoch {
			if f.Epoch == s.prevEpoch {
				return // a late datagram of the epoch the topic left
			}
			s.prevEpoch = s.epoch
			c.disp.event(Event{Kind: EventReset, Topic: s.topic, Epoch: f.Epoch, Seq: f.Seq - 1, Reason: ResetNewEpoch})
		}
	case dgram:
		return // a datagram for a stream subscription: it cannot be ordered
	case s.hasPos:
		switch {
		case f.Epoch != s.epoch:
			// A new epoch without a reset frame: treat it as one.
			c.disp.event(Event{Kind: EventReset, Topic: s.topic, Epoch: f.Epoch, Seq: f.Seq - 1, Reason: ResetNewEpoch})
		case f.Seq <= s.seq:
			return // already delivered (recovery overlaps live delivery)
		case f.Seq != s.seq+1 && !s.latest: // a latest-value one skips by design
			c.disp.event(Event{Kind: EventGap, Topic: s.topic, Epoch: s.epoch, Seq: s.seq})
		}
	}
	if s.delta || f.Delta {
		if !c.applyDeltaLocked(cn, s, f) {
			return
		}
	}
	s.hasPos, s.epoch, s.seq = true, f.Epoch, f.Seq
	c.disp.push(delivery{sub: s, msg: Message{
		Topic: f.Topic, Epoch: f.Epoch, Seq: f.Seq, TS: time.UnixMilli(f.TS), Data: f.Data, Frame: f.raw,
	}})
}

// applyDeltaLocked turns f's data into the message's own when it came as a
// delta, and keeps it as the base of the next. A delta that does not apply
// to the base drops the connection: the next one recovers the message
// whole from the last one delivered. c.mu must be held.
func (c *Client) applyDeltaLocked(cn *conn, s *Subscription, f *serverFrame) bool {
	if f.Delta {
		data, err := applyDelta(s.base, f.Data, c.cfg.MaxReadBytes)
		if err != nil {
			err = fmt.Errorf("topicast: %s seq %d: %w", f.Topic, f.Seq, err)
			c.disp.event(Event{Kind: EventError, Topic: s.topic, Epoch: f.Epoch, Seq: f.Seq, Err: err})
			s.base, s.activeOn = nil, nil // nothing more from cn for s: it resubscribes
			go cn.fail(err)
			return false
		}
		f.Data = data
	}
	s.base = f.Data
	return true
}

// onReset records a topic's new epoch and tells the application.
func (c *Client) onReset(cn *conn, f *serverFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[f.Topic]
	if s == nil || s.activeOn != cn {
		return
	}
	if s.hasPos && s.epoch != f.Epoch {
		s.prevEpoch = s.epoch
	}
	s.hasPos, s.epoch, s.seq = true, f.Epoch, f.Seq
	c.disp.event(Event{Kind: EventReset, Topic: s.topic, Epoch: f.Epoch, Seq: f.Seq, Reason: ResetNewEpoch})
}

// onReply hands an ok or error frame to the call it answers.
func (c *Client) onReply(cn *conn, f *serverFrame, e *wire.Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[f.ID]
	if cl == nil || cl.conn != cn {
		return // abandoned, or a reply to a hello
	}
	delete(c.calls, f.ID)
	switch cl.kind {
	case callSub:
		c.onSubReplyLocked(cn, cl.sub, f, e)
		return
	case callEnter, callLeave:
		c.onPresenceReplyLocked(cn, cl, e)
		return
	}
	if e != nil {
		cl.done <- callResult{err: e}
		return
	}
	cl.done <- callResult{frame: f}
}

// retriable reports whether a subscription refused with code is worth
// asking for again.
func retriable(code wire.ErrorCode) bool {
	switch code {
	case wire.CodeUnavailable, wire.CodeRateLimited, wire.CodeInternal:
		return true
	}
	return false
}

// onSubReplyLocked handles the answer to a sub.
func (c *Client) onSubReplyLocked(cn *conn, s *Subscription, f *serverFrame, e *wire.Error) {
	if c.subs[s.topic] != s {
		return // unsubscribed meanwhile
	}
	if e != nil {
		switch {
		case !s.confirmed:
			// The first answer goes to Subscribe, which gives up.
			delete(c.subs, s.topic)
			s.settleLocked(e)
		case retriable(e.Code):
			s.sentOn = nil
			s.retries++
			s.retryAt = time.Now().Add(backoff(s.retries, c.cfg.MinBackoff, c.cfg.MaxBackoff))
			c.log.LogAttrs(c.ctx, slog.LevelDebug, "topicast: resubscribe refused, will retry",
				slog.String("topic", s.topic), slog.Any("err", e))
		default:
			delete(c.subs, s.topic)
			c.endMembershipLocked(s, e)
			c.disp.event(Event{Kind: EventSubscriptionEnded, Topic: s.topic, Epoch: s.epoch, Seq: s.seq, Err: e})
		}
		return
	}
	s.activeOn = cn
	s.retries = 0
	recovered := f.Recovered != nil && *f.Recovered && f.Epoch == s.epoch
	c.disp.event(Event{Kind: EventSubscribed, Topic: s.topic, Epoch: f.Epoch, Seq: f.Seq, Recovered: recovered})
	switch {
	case s.datagram:
		// Datagram subscriptions do not recover: they go on from the head,
		// never going back.
		if s.hasPos && f.Epoch != s.epoch {
			s.prevEpoch = s.epoch
			c.disp.event(Event{Kind: EventReset, Topic: s.topic, Epoch: f.Epoch, Seq: f.Seq, Reason: ResetNewEpoch})
		}
		if !s.hasPos || f.Epoch != s.epoch || f.Seq > s.seq {
			s.hasPos, s.epoch, s.seq = true, f.Epoch, f.Seq
		}
	case !s.hasPos:
		s.hasPos, s.epoch, s.seq = true, f.Epoch, f.Seq
	case !recovered:
		// The missed messages are gone: go on live after the head.
		s.epoch, s.seq = f.Epoch, f.Seq
		c.disp.event(Event{Kind: EventReset, Topic: s.topic, Epoch: f.Epoch, Seq: f.Seq, Reason: ResetNotRecovered})
	}
	// recovered: the missed messages follow, and onMsg drops any repeat.
	s.settleLocked(nil)
}

// onSubEnded handles an error frame that ends a subscription.
func (c *Client) onSubEnded(cn *conn, f *serverFrame, e *wire.Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[f.Topic]
	if s == nil || (s.activeOn != cn && s.sentOn != cn) {
		return
	}
	delete(c.subs, f.Topic)
	if !s.confirmed {
		s.settleLocked(e)
		return
	}
	c.endMembershipLocked(s, e)
	c.disp.event(Event{Kind: EventSubscriptionEnded, Topic: s.topic, Epoch: s.epoch, Seq: s.seq, Err: e})
}

// sendSubLocked sends s's sub on cn, recovering from its position if it
// has one.
func (c *Client) sendSubLocked(cn *conn, s *Subscription) {
	id, _ := c.newCallLocked(cn, callSub, s)
	s.sentOn = cn
	var since *wire.Position
	if s.hasPos && !s.datagram {
		since = &wire.Position{Epoch: s.epoch, Seq: s.seq}
	}
	cn.enqueue(wire.AppendSubCommand(nil, &wire.Command{Op: wire.OpSub, ID: id, Topic: s.topic, Since: since,
		Datagram: s.datagram, Latest: s.latest, Delta: s.delta, Presence: s.presence}))
}

// retrySubs sends again the subscriptions and the enters the server
// refused for a while.
func (c *Client) retrySubs(cn *conn, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != cn {
		return
	}
	for _, s := range c.subs {
		if s.sentOn != cn && !now.Before(s.retryAt) {
			c.sendSubLocked(cn, s)
		}
		if s.entered && s.enterOn != cn && !now.Before(s.enterRetryAt) {
			c.sendEnterLocked(cn, s)
		}
	}
}

// Publish publishes data to topic through the client's connection (the
// server must allow the client to publish there) and returns where the
// message landed. data is encoded with encoding/json, except json.RawMessage
// and []byte, which must hold JSON already. While the client is
// disconnected, Publish waits for the next connection (bounded by ctx).
//
// Errors: a *wire.Error from the server or from validation (bad topic, data
// over Config.MaxMessage); ErrConnectionLost when the connection ended
// before the answer, in which case the message may or may not have been
// published (Publisher, with its idempotency keys, can retry safely).
func (c *Client) Publish(ctx context.Context, topic string, data any) (wire.PublishResult, error) {
	if err := wire.ValidateTopic(topic); err != nil {
		return wire.PublishResult{}, err
	}
	raw, err := encodeData(data, c.cfg.MaxMessage)
	if err != nil {
		return wire.PublishResult{}, err
	}
	f, err := c.roundTrip(ctx, callPub, func(id uint64) []byte { return appendPub(nil, id, topic, raw) })
	if err != nil {
		return wire.PublishResult{}, err
	}
	return wire.PublishResult{Topic: topic, Epoch: f.Epoch, Seq: f.Seq}, nil
}

// roundTrip sends the command that frame makes with an id of kind's, on the
// client's connection or, while disconnected, on the next one, and returns
// the server's ok frame. An error frame is a *wire.Error; a connection that
// ends first is ErrConnectionLost.
func (c *Client) roundTrip(ctx context.Context, kind callKind, frame func(id uint64) []byte) (*serverFrame, error) {
	var id uint64
	var cl *call
	for cl == nil {
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return nil, err
		}
		if cn := c.conn; cn != nil {
			id, cl = c.newCallLocked(cn, kind, nil)
			cn.enqueue(frame(id))
			c.mu.Unlock()
			break
		}
		ready := c.connReady
		c.mu.Unlock()
		select {
		case <-ready:
		case <-c.done:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	select {
	case r := <-cl.done:
		return r.frame, r.err
	case <-ctx.Done():
		c.dropCall(id)
		return nil, context.Cause(ctx)
	}
}

// encodeData returns data as compacted JSON of at most maxData bytes
// (maxData <= 0: no limit), or a *wire.Error.
func encodeData(data any, maxData int) ([]byte, error) {
	var raw []byte
	switch v := data.(type) {
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, &wire.Error{Code: wire.CodeBadRequest, Message: "data cannot be encoded as JSON", Err: err}
		}
		raw = b
	}
	return wire.CompactData(raw, maxData)
}
