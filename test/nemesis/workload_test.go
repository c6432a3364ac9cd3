package nemesis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
)

// recorder collects a run's history as it happens. Its methods are
// goroutine-safe; each event's time is taken under the lock, so the order
// of the events is the order of their times.
type recorder struct {
	start time.Time

	mu      sync.Mutex
	events  []Event
	pubs    []Publish
	strings map[string]string // interned topics and epochs
}

func newRecorder(start time.Time) *recorder {
	return &recorder{start: start, strings: make(map[string]string)}
}

func (r *recorder) since() time.Duration { return time.Since(r.start) }

func (r *recorder) internLocked(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := r.strings[s]; ok {
		return v
	}
	r.strings[s] = s
	return s
}

func (r *recorder) event(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.At = time.Since(r.start)
	e.Topic, e.Epoch = r.internLocked(e.Topic), r.internLocked(e.Epoch)
	r.events = append(r.events, e)
}

func (r *recorder) publish(p Publish) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p.Topic, p.Epoch = r.internLocked(p.Topic), r.internLocked(p.Epoch)
	r.pubs = append(r.pubs, p)
}

// count returns how many events were recorded (a measure of progress).
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// serverFrame is what subscribers and publishers decode of a server frame.
type serverFrame struct {
	Op        string `json:"op"`
	ID        uint64 `json:"id"`
	Topic     string `json:"topic"`
	Epoch     string `json:"epoch"`
	Seq       uint64 `json:"seq"`
	Recovered *bool  `json:"recovered"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Data      struct {
		ID MsgID `json:"id"`
	} `json:"data"`
}

func recovered(b *bool) Recovered {
	switch {
	case b == nil:
		return RecAbsent
	case *b:
		return RecTrue
	}
	return RecFalse
}

// messageData is the data of message id: its id and its send time.
func messageData(id MsgID) string {
	return fmt.Sprintf(`{"id":%q,"ts":%d}`, id.String(), time.Now().UnixNano())
}

// --- publishers -----------------------------------------------------------

// Publisher settings.
const (
	publishDeadline = 10 * time.Second // a keyed publish is retried until then
	attemptTimeout  = 3 * time.Second  // one HTTP attempt
	wsReplyTimeout  = 5 * time.Second  // a pub frame's answer
	maxInFlight     = 64               // per publisher; more ticks are skipped
)

// publishers runs cfg.publishers goroutines publishing at about rate
// messages per second in total, until stop is closed (or maxCount each).
// It returns when every publish in flight has ended.
func (r *nemesisRun) publishers(ctx context.Context, stop <-chan struct{}, rate, count, maxCount int) {
	var wg sync.WaitGroup
	every := time.Duration(count) * time.Second / time.Duration(rate)
	for p := 1; p <= count; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.publisher(ctx, stop, uint32(p), every, maxCount)
		}()
	}
	wg.Wait()
}

func (r *nemesisRun) publisher(ctx context.Context, stop <-chan struct{}, p uint32, every time.Duration, maxCount int) {
	ws := &wsPublisher{r: r}
	defer ws.close()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	sem := make(chan struct{}, maxInFlight)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := uint32(1); int(n) <= maxCount; {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			continue // too many in flight: the nodes are stuck, skip a beat
		}
		id := MsgID{P: p, N: n}
		n++
		topic := r.topics[rand.IntN(len(r.topics))]
		via := ViaHTTPKey
		switch x := rand.Float64(); {
		case x < 0.1:
			via = ViaWS
		case x < 0.2:
			via = ViaHTTP
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-sem }()
			pub := Publish{ID: id, Topic: topic, Via: via, Start: r.rec.since(), Node: -1}
			data := messageData(id)
			if via == ViaWS {
				ws.publish(ctx, &pub, data)
			} else {
				r.publishHTTP(ctx, &pub, data, via == ViaHTTPKey)
			}
			pub.End = r.rec.since()
			r.rec.publish(pub)
		}()
	}
}

// liveNodes lists the nodes that are not down, from a random one.
func (r *nemesisRun) liveNodes() []int {
	var out []int
	off := rand.IntN(len(r.nodes))
	for k := range r.nodes {
		i := (off + k) % len(r.nodes)
		if r.nodes[i].getState() != nodeDown {
			out = append(out, i)
		}
	}
	return out
}

// publishHTTP publishes with POST /v1/publish: with the message's id as
// key, retried on the other nodes until publishDeadline; without, once.
func (r *nemesisRun) publishHTTP(ctx context.Context, p *Publish, data string, keyed bool) {
	deadline := time.Now().Add(publishDeadline)
	body := map[string]any{"topic": p.Topic, "data": json.RawMessage(data)}
	if keyed {
		body["key"] = p.ID.String()
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // plain data
	}
	uncertain := false
	for attempt := 0; ; attempt++ {
		live := r.liveNodes()
		if len(live) > 0 {
			n := live[attempt%len(live)]
			p.Attempts++
			p.Node = n
			status, resp, err := r.postPublish(ctx, n, b, min(attemptTimeout, time.Until(deadline)))
			switch {
			case err == nil && status == http.StatusOK:
				var res struct {
					Epoch string `json:"epoch"`
					Seq   uint64 `json:"seq"`
				}
				if err := json.Unmarshal(resp, &res); err != nil {
					p.Outcome, p.Err = OutcomeIndeterminate, "bad answer: "+string(resp)
					return
				}
				p.Outcome, p.Epoch, p.Seq, p.Err = OutcomeOK, res.Epoch, res.Seq, ""
				return
			case err == nil && status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
				p.Outcome, p.Err = OutcomeFailed, fmt.Sprintf("%d %s", status, bytes.TrimSpace(resp))
				if uncertain {
					p.Outcome = OutcomeIndeterminate
				}
				return
			case err == nil:
				p.Err = fmt.Sprintf("%d %s", status, bytes.TrimSpace(resp))
			default:
				p.Err = err.Error()
			}
			uncertain = true
		}
		if !keyed || time.Now().After(deadline) || ctx.Err() != nil {
			p.Outcome = OutcomeIndeterminate
			if !uncertain {
				p.Outcome, p.Err = OutcomeFailed, "no node to send to"
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *nemesisRun) postPublish(ctx context.Context, n int, body []byte, d time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.nodes[n].httpAddr+"/v1/publish", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// wsPublisher publishes with pub frames on one WebSocket connection,
// opened to a live node when needed. Its methods are goroutine-safe.
type wsPublisher struct {
	r *nemesisRun

	mu      sync.Mutex
	cur     *wsPubConn
	nextID  uint64
	readers sync.WaitGroup
}

type wsPubConn struct {
	c    *testutil.WSClient
	node int
	// Guarded by wsPublisher.mu.
	pending map[uint64]chan wsReply
	closed  bool
}

type wsReply struct {
	f   serverFrame
	err error
}

func (w *wsPublisher) conn(ctx context.Context) (*wsPubConn, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur != nil {
		return w.cur, nil
	}
	live := w.r.liveNodes()
	if len(live) == 0 {
		return nil, errors.New("no live node")
	}
	n := live[0]
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := testutil.DialWS(dctx, w.r.nodes[n].wsURL(), 0)
	if err != nil {
		return nil, err
	}
	pc := &wsPubConn{c: c, node: n, pending: make(map[uint64]chan wsReply)}
	w.cur = pc
	w.readers.Add(1)
	go func() {
		defer w.readers.Done()
		c.Read(func(frame []byte) {
			var f serverFrame
			if err := json.Unmarshal(frame, &f); err != nil || f.ID == 0 {
				return
			}
			w.mu.Lock()
			ch := pc.pending[f.ID]
			delete(pc.pending, f.ID)
			w.mu.Unlock()
			if ch != nil {
				ch <- wsReply{f: f}
			}
		})
		w.mu.Lock()
		defer w.mu.Unlock()
		pc.closed = true
		if w.cur == pc {
			w.cur = nil
		}
		for id, ch := range pc.pending {
			ch <- wsReply{err: fmt.Errorf("connection lost (close %d, %v)", c.CloseCode, c.Err)}
			delete(pc.pending, id)
		}
	}()
	return pc, nil
}

// publish sends one pub frame, once.
func (w *wsPublisher) publish(ctx context.Context, p *Publish, data string) {
	pc, err := w.conn(ctx)
	if err != nil {
		p.Outcome, p.Err = OutcomeFailed, "not sent: "+err.Error()
		return
	}
	ch := make(chan wsReply, 1)
	w.mu.Lock()
	if pc.closed {
		w.mu.Unlock()
		p.Outcome, p.Err = OutcomeFailed, "not sent: connection lost"
		return
	}
	w.nextID++
	id := w.nextID
	pc.pending[id] = ch
	w.mu.Unlock()
	p.Node, p.Attempts = pc.node, 1
	if err := pc.c.Send(fmt.Sprintf(`{"op":"pub","id":%d,"topic":%q,"data":%s}`, id, p.Topic, data)); err != nil {
		p.Outcome, p.Err = OutcomeIndeterminate, err.Error()
		pc.c.Close()
		return
	}
	timer := time.NewTimer(wsReplyTimeout)
	defer timer.Stop()
	select {
	case rep := <-ch:
		switch {
		case rep.err != nil:
			p.Outcome, p.Err = OutcomeIndeterminate, rep.err.Error()
		case rep.f.Op == "ok":
			p.Outcome, p.Epoch, p.Seq = OutcomeOK, rep.f.Epoch, rep.f.Seq
		case rep.f.Code == "unavailable" || rep.f.Code == "internal" || rep.f.Code == "rate_limited":
			p.Outcome, p.Err = OutcomeIndeterminate, rep.f.Code+": "+rep.f.Message
		default:
			p.Outcome, p.Err = OutcomeFailed, rep.f.Code+": "+rep.f.Message
		}
	case <-timer.C:
		// A client would give up on a connection that does not answer:
		// the next pub goes to a live node on a new one.
		p.Outcome, p.Err = OutcomeIndeterminate, "no answer in "+wsReplyTimeout.String()
		w.mu.Lock()
		delete(pc.pending, id)
		w.mu.Unlock()
		pc.c.Close()
	case <-ctx.Done():
		p.Outcome, p.Err = OutcomeIndeterminate, ctx.Err().Error()
	}
}

func (w *wsPublisher) close() {
	w.mu.Lock()
	if w.cur != nil {
		w.cur.c.Close()
	}
	w.mu.Unlock()
	w.readers.Wait()
}

// --- subscribers ----------------------------------------------------------

// subscriber is a raw or SDK client that records what it sees.
type subscriber interface {
	meta() Subscriber
	// position returns where the subscriber is in topic.
	position(topic string) (Pos, bool)
}

// Close codes the harness records for connections it closed itself.
const (
	closeByClient = -1
)

// rawSub is a WebSocket client written against the protocol: it records
// every frame (duplicates included), and reconnects on its own, rotating
// through the nodes and going back to its home node when it is up, with
// since = its last position per topic.
type rawSub struct {
	r  *nemesisRun
	m  Subscriber
	id int // its subscriber index
	// patient subscribers stay on a silent node; the others leave it after
	// silenceTimeout.
	patient bool
	// subscribed is closed once the first connection's subs are answered.
	subscribed chan struct{}
	lastFrame  atomic.Int64 // unix ns
	// nudge asks it to go back home now (its home node is back).
	nudge chan struct{}

	mu  sync.Mutex
	pos map[string]Pos
}

// Raw subscriber settings.
const (
	pingEvery      = 2 * time.Second
	silenceTimeout = 6 * time.Second
	dialTimeout    = 3 * time.Second
)

func (s *rawSub) meta() Subscriber { return s.m }

func (s *rawSub) position(topic string) (Pos, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pos[topic]
	return p, ok
}

// goHome asks the subscriber to reconnect to its home node now, if it is
// elsewhere.
func (s *rawSub) goHome() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// run connects until ctx ends. After a broken connection it tries the same
// node once more (as the SDK does); after a failed dial or a 1001 (going
// away) it moves to the next node.
func (s *rawSub) run(ctx context.Context) {
	next, conn := s.m.Home, 0
	var once sync.Once
	for ctx.Err() == nil {
		n := next
		next = (n + 1) % len(s.r.nodes)
		if s.r.nodes[n].getState() == nodeDown {
			sleepCtx(ctx, 50*time.Millisecond)
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		c, err := testutil.DialWS(dctx, s.r.nodes[n].wsURL(), 0)
		cancel()
		if err != nil {
			sleepCtx(ctx, time.Duration(100+rand.IntN(200))*time.Millisecond)
			continue
		}
		conn++
		s.r.rec.event(Event{Kind: EvConnect, Sub: s.id, Conn: conn, Node: n})
		s.lastFrame.Store(time.Now().UnixNano())
		pending := make(map[string]bool)
		var sendErr error
		for i, topic := range s.m.Topics {
			pending[topic] = true
			if sendErr = c.Send(s.subFrame(i)); sendErr != nil {
				break
			}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Read(func(f []byte) {
				if i, ok := s.onFrame(f, conn, n, pending, &once); ok {
					// The server refused a sub (unavailable while the
					// topic cannot be reached): a client subscribes again,
					// as the SDK does, from where it is.
					time.AfterFunc(subRetryDelay, func() { _ = c.Send(s.subFrame(i)) })
				}
			})
		}()
		why, home := s.watch(ctx, c, n, done)
		<-done
		code, text := int(c.CloseCode), why
		if why == "" {
			text = fmt.Sprintf("%s %v", c.CloseReason, c.Err)
		} else {
			code = closeByClient
		}
		s.r.rec.event(Event{Kind: EvClose, Sub: s.id, Conn: conn, Node: n, Code: code, Text: strings.TrimSpace(text)})
		switch {
		case home:
			next = s.m.Home
		default:
			if why == "" && c.CloseCode != wire.DisconnectCode(1001) {
				next = n // broken: the same node once more
			}
			sleepCtx(ctx, time.Duration(50+rand.IntN(150))*time.Millisecond)
		}
	}
}

// watch pings the server, and closes the connection when ctx ends, when
// the server is silent too long (unless patient), or, now and then, to go
// back home. It returns why it closed ("" when the server did) and
// whether to go home.
func (s *rawSub) watch(ctx context.Context, c *testutil.WSClient, n int, done <-chan struct{}) (string, bool) {
	tick := time.NewTicker(pingEvery / 4)
	defer tick.Stop()
	lastPing := time.Now()
	for {
		select {
		case <-done:
			return "", false
		case <-ctx.Done():
			c.Close()
			return "end of run", false
		case <-s.nudge:
			if n != s.m.Home {
				c.Close()
				return "going home (node back)", true
			}
			continue
		case <-tick.C:
		}
		if time.Since(lastPing) >= pingEvery {
			lastPing = time.Now()
			_ = c.Send(`{"op":"ping"}`) // a dead connection ends the reader anyway
		}
		if !s.patient && time.Since(time.Unix(0, s.lastFrame.Load())) > silenceTimeout {
			c.Close()
			return "server silent", false
		}
		if n != s.m.Home && s.r.nodes[s.m.Home].getState() == nodeUp && rand.IntN(10) == 0 {
			c.Close()
			return "going home", true
		}
	}
}

// subFrame is the sub of the subscriber's i-th topic, from its position.
func (s *rawSub) subFrame(i int) string {
	topic := s.m.Topics[i]
	frame := fmt.Sprintf(`{"op":"sub","id":%d,"topic":%q`, i+1, topic)
	if p, ok := s.position(topic); ok {
		frame += fmt.Sprintf(`,"since":{"epoch":%q,"seq":%d}`, p.Epoch, p.Seq)
	}
	return frame + "}"
}

// subRetryDelay is how long a raw subscriber waits before it subscribes
// again to a topic whose sub the server refused.
const subRetryDelay = 500 * time.Millisecond

// onFrame records a frame. It returns the index of the topic to subscribe
// to again when the frame is an error answering that topic's sub.
func (s *rawSub) onFrame(f []byte, conn, n int, pending map[string]bool, once *sync.Once) (retry int, again bool) {
	s.lastFrame.Store(time.Now().UnixNano())
	var fr serverFrame
	if err := json.Unmarshal(f, &fr); err != nil {
		s.r.rec.event(Event{Kind: EvError, Sub: s.id, Conn: conn, Node: n, Text: "undecodable: " + string(f)})
		return 0, false
	}
	e := Event{Sub: s.id, Conn: conn, Node: n, Topic: fr.Topic, Epoch: fr.Epoch, Seq: fr.Seq}
	p := Pos{fr.Epoch, fr.Seq}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, has := s.pos[fr.Topic]
	switch fr.Op {
	case "msg":
		e.Kind, e.ID = EvMsg, fr.Data.ID
		if !has || cur.Epoch != p.Epoch || p.Seq > cur.Seq {
			s.pos[fr.Topic] = p
		}
	case "ok":
		if fr.Topic == "" {
			return 0, false
		}
		e.Kind, e.Recovered = EvOK, recovered(fr.Recovered)
		if !has || e.Recovered != RecTrue {
			s.pos[fr.Topic] = p
		}
		if pending[fr.Topic] {
			delete(pending, fr.Topic)
			if len(pending) == 0 {
				once.Do(func() { close(s.subscribed) })
			}
		}
	case "reset":
		e.Kind = EvReset
		s.pos[fr.Topic] = p
	case "pong", "ping":
		return 0, false
	case "error":
		e.Kind, e.Text = EvError, string(f)
		if i := int(fr.ID) - 1; fr.ID > 0 && i < len(s.m.Topics) && fr.Code == "unavailable" {
			e.Topic = s.m.Topics[i]
			retry, again = i, true
		}
	default:
		e.Kind, e.Text = EvError, string(f)
	}
	s.r.rec.event(e)
	return retry, again
}

// sdkSub is a Go SDK client: it reconnects and recovers by itself, and
// hands over messages without duplicates; it records what the SDK hands
// it.
type sdkSub struct {
	r  *nemesisRun
	m  Subscriber
	id int
	c  *sdk.Client

	mu   sync.Mutex
	pos  map[string]Pos
	conn int
	node int
}

func (s *sdkSub) meta() Subscriber { return s.m }

func (s *sdkSub) position(topic string) (Pos, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pos[topic]
	return p, ok
}

// dial connects to the home node (the others as fallbacks, in rotation)
// and subscribes.
func (s *sdkSub) dial(ctx context.Context) error {
	var urls []string
	for k := range s.r.nodes {
		urls = append(urls, s.r.nodes[(s.m.Home+k)%len(s.r.nodes)].wsURL())
	}
	c, err := sdk.Dial(ctx, urls[0], sdk.Config{
		FallbackURLs:   urls[1:],
		MinBackoff:     50 * time.Millisecond,
		MaxBackoff:     time.Second,
		DialTimeout:    dialTimeout,
		PingAfter:      pingEvery,
		SilenceTimeout: silenceTimeout,
		OnEvent:        s.onEvent,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", s.m.Name, err)
	}
	s.c = c
	for _, topic := range s.m.Topics {
		if _, err := c.Subscribe(ctx, topic, s.onMessage); err != nil {
			return fmt.Errorf("%s: subscribe %s: %w", s.m.Name, topic, err)
		}
	}
	return nil
}

func (s *sdkSub) nodeOf(url string) int {
	for i, n := range s.r.nodes {
		if n.wsURL() == url {
			return i
		}
	}
	return -1
}

func (s *sdkSub) onEvent(ev sdk.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := Event{Sub: s.id, Conn: s.conn, Node: s.node, Topic: ev.Topic, Epoch: ev.Epoch, Seq: ev.Seq}
	switch ev.Kind {
	case sdk.EventConnected:
		s.conn++
		s.node = s.nodeOf(ev.URL)
		e.Kind, e.Conn, e.Node = EvConnect, s.conn, s.node
	case sdk.EventDisconnected:
		e.Kind = EvClose
		var ce *sdk.CloseError
		if errors.As(ev.Err, &ce) {
			e.Code = int(ce.Code)
		}
		if ev.Err != nil {
			e.Text = ev.Err.Error()
		}
	case sdk.EventSubscribed:
		e.Kind = EvOK
		if ev.Recovered {
			e.Recovered = RecTrue
		}
		if _, ok := s.pos[ev.Topic]; !ok {
			s.pos[ev.Topic] = Pos{ev.Epoch, ev.Seq}
		}
	case sdk.EventReset:
		e.Kind, e.Text = EvReset, ev.Reason
		s.pos[ev.Topic] = Pos{ev.Epoch, ev.Seq}
	case sdk.EventGap:
		e.Kind = EvGap
	default:
		e.Kind, e.Text = EvError, ev.String()
	}
	s.r.rec.event(e)
}

func (s *sdkSub) onMessage(m sdk.Message) {
	var d struct {
		ID MsgID `json:"id"`
	}
	_ = json.Unmarshal(m.Data, &d) // an unknown id is the checker's to report
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pos[m.Topic] = Pos{m.Epoch, m.Seq}
	s.r.rec.event(Event{Kind: EvMsg, Sub: s.id, Conn: s.conn, Node: s.node, Topic: m.Topic, Epoch: m.Epoch, Seq: m.Seq, ID: d.ID})
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
