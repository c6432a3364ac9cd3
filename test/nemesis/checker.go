package nemesis

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ViolationKind names a class of anomaly the checker looks for.
type ViolationKind string

// Kinds of violation, in Jepsen's vocabulary where it has a word.
const (
	// Conflicting: one (topic, epoch, seq) acknowledged or delivered with two
	// different messages.
	Conflicting ViolationKind = "conflicting"
	// Lost: an acknowledged message that a subscriber should have received
	// and never did.
	Lost ViolationKind = "lost"
	// LostUnacked: the same for a message no publisher saw acknowledged
	// (it was numbered: a seq below a head the server reported).
	LostUnacked ViolationKind = "lost-unacked"
	// Duplicated: a subscriber received one (topic, epoch, seq) twice, or
	// one message was numbered twice.
	Duplicated ViolationKind = "duplicated"
	// Reordered: within an epoch, a subscriber received a seq lower than
	// one it had before (other than an exact duplicate).
	Reordered ViolationKind = "reordered"
	// Silent: a subscriber's seq jumped forward within an epoch, or its
	// epoch changed, with no reset or recovered:false announcing it.
	Silent ViolationKind = "silent-discontinuity"
	// Unexpected: a delivered message whose publish failed for certain, or
	// that no publisher sent.
	Unexpected ViolationKind = "unexpected"
	// NonConverged: a subscriber that did not end at its topic's head.
	NonConverged ViolationKind = "non-converged"
	// ResetWithRedis: an announced discontinuity (reset, recovered:false)
	// with durable history, where none is allowed.
	ResetWithRedis ViolationKind = "reset-with-redis"
	// Diverged: at the end, with every fault healed and no publish in
	// flight, nodes answer different (epoch, head) for one topic.
	Diverged ViolationKind = "diverged"
)

// ViolationKinds lists every kind, in report order.
var ViolationKinds = []ViolationKind{
	Lost, LostUnacked, Duplicated, Reordered, Silent, Conflicting, Unexpected, NonConverged, ResetWithRedis, Diverged,
}

// maxExamples bounds the violations kept per kind (all are counted).
const maxExamples = 100

// LateAfter is how long after its publish ended a message's first
// delivery counts as late (reported, allowed).
const LateAfter = 10 * time.Second

// Violation is one anomaly, or one run of them (a range of seqs).
type Violation struct {
	Kind ViolationKind
	// Sub is the subscriber's index, -1 when it concerns no subscriber.
	Sub   int
	Topic string
	Epoch string
	// From and To bound the seqs concerned (equal for one).
	From, To uint64
	// Count is how many it counts for (messages, receipts, streams).
	Count int
	// Node is the node the subscriber was on at At, -1 if none.
	Node int
	// At is when it happened or should have, since the start of the run.
	At     time.Duration
	Detail string
	// countOnly: counted, but not kept as an example (another violation
	// shows the same thing).
	countOnly bool
}

// Recovery sums up, for one kind of fault, the time from each injection to
// the first message received again by each subscriber that was connected
// to an affected node at the injection.
type Recovery struct {
	Kind    string
	Faults  int
	Watched int // (fault, subscriber) pairs
	Never   int // of them, no message ever came again
	Times   []time.Duration
}

// Result is the checker's verdict on a History.
type Result struct {
	Counts   map[ViolationKind]int
	Examples map[ViolationKind][]Violation
	// ByNode, ByTopic and ByFault break each kind's count down by the node
	// the subscriber was on, the topic, and the last fault injected before
	// it ("#3 kill -9 n2", or "before any fault").
	ByNode  map[ViolationKind]map[string]int
	ByTopic map[ViolationKind]map[string]int
	ByFault map[ViolationKind]map[string]int
	// Concurrent lists the topics with two epochs acknowledged at the same
	// time (a split brain; without Redis a partition allows it, as long as
	// it ends with the partition).
	Concurrent []string

	Publishes map[Outcome]int
	ByVia     map[string]map[Outcome]int
	// Deliveries counts msg events; Streams the (subscriber, topic) pairs,
	// Converged those that ended at their topic's head.
	Deliveries int
	Streams    int
	Converged  int
	// Announced discontinuities: reset frames and ok with recovered:false
	// (allowed without Redis).
	Resets       int
	NotRecovered int
	// Renumbered: messages numbered in two epochs of a topic (a retried
	// publish after the topic restarted without durable history; allowed
	// without Redis).
	Renumbered int
	// Late counts messages first delivered more than LateAfter after their
	// publish ended (answered or given up); LateMax is the worst, LateWorst
	// describes it.
	Late        int
	LateMax     time.Duration
	LateWorst   string
	ErrorFrames int
	// ErrorSamples are the first error frames, with who got them, when and
	// where: an error frame is rare enough that each one deserves a look.
	ErrorSamples []string
	Connections  int
	Recoveries   []Recovery
}

// Failed reports whether any violation was found.
func (r *Result) Failed() bool {
	for _, n := range r.Counts {
		if n > 0 {
			return true
		}
	}
	return false
}

func (r *Result) add(v Violation, fault string, node string) {
	if v.Count == 0 {
		v.Count = 1
	}
	r.Counts[v.Kind] += v.Count
	if !v.countOnly && len(r.Examples[v.Kind]) < maxExamples {
		r.Examples[v.Kind] = append(r.Examples[v.Kind], v)
	}
	inc := func(m map[ViolationKind]map[string]int, key string) {
		if m[v.Kind] == nil {
			m[v.Kind] = make(map[string]int)
		}
		m[v.Kind][key] += v.Count
	}
	inc(r.ByFault, fault)
	if node != "" {
		inc(r.ByNode, node)
	}
	if v.Topic != "" {
		inc(r.ByTopic, v.Topic)
	}
}

// add records a violation, with the node the subscriber was on and the
// fault before it.
func (c *checker) add(v Violation) {
	v.Node = -1
	node := ""
	if v.Sub >= 0 {
		if ci, _ := c.connAtInfo(v.Sub, v.At); ci.conn != 0 {
			v.Node = ci.node
			node = c.h.NodeName(ci.node)
		}
	}
	fault := "before any fault"
	for i := range c.h.Faults {
		if f := &c.h.Faults[i]; f.Start <= v.At {
			fault = fmt.Sprintf("#%d %s", f.Index, f.Desc)
		}
	}
	c.res.add(v, fault, node)
}

// tpos names a message of a topic.
type tpos struct {
	topic string
	epoch string
	seq   uint64
}

// recv is one receipt of a message by a subscriber.
type recv struct {
	at   time.Duration
	conn int
	node int
	n    int // times received
}

// segment is a stretch of a stream in one epoch with no announced
// discontinuity: every seq in (from, to] must be received.
type segment struct {
	epoch    string
	from, to uint64
}

// stream is one subscriber's view of one topic.
type stream struct {
	sub   *Subscriber
	topic string

	hasPos bool
	pos    Pos
	// first is the position of the first ok (where obligations start).
	first    Pos
	segs     []segment
	received map[string]map[uint64]*recv
	sorted   map[string][]uint64 // sortedSeqs
	maxRecv  map[string]uint64
	lastEv   *Event // last event of this stream
	lastMsg  *Event
	lastOK   *Event
}

func (s *stream) startSegment(p Pos) {
	s.segs = append(s.segs, segment{epoch: p.Epoch, from: p.Seq, to: p.Seq})
	s.hasPos, s.pos = true, p
}

func (s *stream) seg() *segment { return &s.segs[len(s.segs)-1] }

// sortedSeqs returns the seqs received in epoch, in order (computed once,
// after the walk).
func (s *stream) sortedSeqs(epoch string) []uint64 {
	if s.sorted == nil {
		s.sorted = make(map[string][]uint64)
	}
	if q, ok := s.sorted[epoch]; ok {
		return q
	}
	q := make([]uint64, 0, len(s.received[epoch]))
	for seq := range s.received[epoch] {
		q = append(q, seq)
	}
	slices.Sort(q)
	s.sorted[epoch] = q
	return q
}

// checker holds the state of one Check.
type checker struct {
	h   *History
	res *Result

	pubs  map[MsgID]*Publish
	acked map[tpos]MsgID
	// known is the message of each position, from acks and deliveries;
	// conflicts lists the positions seen with several.
	known     map[tpos]MsgID
	conflicts map[tpos][]string
	positions map[MsgID][]tpos
	// firstSeen is when each message was first delivered.
	firstSeen map[MsgID]time.Duration
	// heads is the highest seq known per topic and epoch; maxAcked the
	// highest acknowledged.
	heads    map[string]map[string]uint64
	maxAcked map[string]map[string]uint64
	streams  map[int]map[string]*stream
	// conns: per subscriber, its connections in order.
	conns map[int][]connInfo
	// end is the end of the run.
	end time.Duration
}

type connInfo struct {
	conn       int
	node       int
	start, end time.Duration // end -1: open at the end
	code       int
	text       string
}

// Check judges a history. It is a pure function of h.
func Check(h *History) *Result {
	c := &checker{
		h: h,
		res: &Result{
			Counts:    make(map[ViolationKind]int),
			Examples:  make(map[ViolationKind][]Violation),
			Publishes: make(map[Outcome]int),
			ByVia:     make(map[string]map[Outcome]int),
			ByNode:    make(map[ViolationKind]map[string]int),
			ByTopic:   make(map[ViolationKind]map[string]int),
			ByFault:   make(map[ViolationKind]map[string]int),
		},
		pubs:      make(map[MsgID]*Publish),
		acked:     make(map[tpos]MsgID),
		known:     make(map[tpos]MsgID),
		conflicts: make(map[tpos][]string),
		positions: make(map[MsgID][]tpos),
		firstSeen: make(map[MsgID]time.Duration),
		heads:     make(map[string]map[string]uint64),
		maxAcked:  make(map[string]map[string]uint64),
		streams:   make(map[int]map[string]*stream),
		conns:     make(map[int][]connInfo),
	}
	for _, k := range ViolationKinds {
		c.res.Counts[k] = 0
	}
	c.end = h.Duration
	if n := len(h.Events); n > 0 {
		c.end = max(c.end, h.Events[n-1].At)
	}
	c.publishes()
	c.walk()
	c.finish()
	c.numbering()
	c.diverged()
	c.concurrent()
	c.late()
	c.recoveries()
	return c.res
}

// late counts the messages first delivered long after their publish
// ended.
func (c *checker) late() {
	for id, at := range c.firstSeen {
		p := c.pubs[id]
		if p == nil || at-p.End <= LateAfter {
			continue
		}
		c.res.Late++
		if d := at - p.End; d > c.res.LateMax {
			c.res.LateMax = d
			c.res.LateWorst = fmt.Sprintf("%s (%s via %s on %s, %s at %s) first delivered at %s", id, p.Topic, p.Via,
				c.h.NodeName(p.Node), p.Outcome, fmtDur(p.End), fmtDur(at))
		}
	}
}

// diverged compares the nodes' answers for each topic at the end. Answers
// that all lie between the head and the head after the subscribers stopped
// are no divergence: a late publish (a request still retried by the node
// that took it) landed while the nodes were being asked, and the report
// names it among the late publishes.
func (c *checker) diverged() {
	for _, topic := range c.h.Topics {
		var parts []string
		seen := make(map[Pos]bool)
		for _, name := range c.h.Nodes {
			if p, ok := c.h.NodeHeads[name][topic]; ok {
				seen[p] = true
				parts = append(parts, name+" "+p.String())
			}
		}
		if len(seen) > 1 && !c.movedWhileAsked(topic, seen) {
			c.add(Violation{Kind: Diverged, Sub: -1, Topic: topic, At: c.end,
				Detail: fmt.Sprintf("%s: nodes answer %s", topic, strings.Join(parts, ", "))})
		}
	}
}

// movedWhileAsked reports whether every answer in seen lies between the
// topic's head and its head after the subscribers stopped, in one epoch.
func (c *checker) movedWhileAsked(topic string, seen map[Pos]bool) bool {
	head, after := c.h.Heads[topic], c.h.HeadsAfter[topic]
	if after.Epoch == "" || after.Epoch != head.Epoch || after.Seq <= head.Seq {
		return false
	}
	for p := range seen {
		if p.Epoch != head.Epoch || p.Seq < head.Seq || p.Seq > after.Seq {
			return false
		}
	}
	return true
}

// concurrent finds epochs of a topic acknowledged in overlapping spans of
// time (more than a second).
func (c *checker) concurrent() {
	type span struct{ first, last time.Duration }
	spans := make(map[string]map[string]*span)
	for i := range c.h.Publishes {
		p := &c.h.Publishes[i]
		if p.Outcome != OutcomeOK {
			continue
		}
		m := spans[p.Topic]
		if m == nil {
			m = make(map[string]*span)
			spans[p.Topic] = m
		}
		if s := m[p.Epoch]; s == nil {
			m[p.Epoch] = &span{p.End, p.End}
		} else {
			s.first, s.last = min(s.first, p.End), max(s.last, p.End)
		}
	}
	topics := make([]string, 0, len(spans))
	for t := range spans {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, t := range topics {
		var overlaps []string
		for e1, s1 := range spans[t] {
			for e2, s2 := range spans[t] {
				if e1 < e2 && min(s1.last, s2.last)-max(s1.first, s2.first) > time.Second {
					overlaps = append(overlaps, fmt.Sprintf("%s [%s-%s] and %s [%s-%s]", e1, fmtDur(s1.first), fmtDur(s1.last),
						e2, fmtDur(s2.first), fmtDur(s2.last)))
				}
			}
		}
		if len(overlaps) > 0 {
			slices.Sort(overlaps)
			c.res.Concurrent = append(c.res.Concurrent, t+": "+strings.Join(overlaps, "; "))
		}
	}
}

// MajorityHeads picks, per topic, the answer most nodes gave (the highest
// seq among equals): the heads subscribers should reach.
func MajorityHeads(nodeHeads map[string]map[string]Pos) map[string]Pos {
	votes := make(map[string]map[Pos]int)
	for _, hs := range nodeHeads {
		for topic, p := range hs {
			if votes[topic] == nil {
				votes[topic] = make(map[Pos]int)
			}
			votes[topic][p]++
		}
	}
	out := make(map[string]Pos)
	for topic, vs := range votes {
		var best Pos
		bestN := 0
		for p, n := range vs {
			if n > bestN || n == bestN && (p.Seq > best.Seq || p.Seq == best.Seq && p.Epoch < best.Epoch) {
				best, bestN = p, n
			}
		}
		out[topic] = best
	}
	return out
}

func (c *checker) seeHead(topic, epoch string, seq uint64) {
	m := c.heads[topic]
	if m == nil {
		m = make(map[string]uint64)
		c.heads[topic] = m
	}
	if seq > m[epoch] {
		m[epoch] = seq
	} else if _, ok := m[epoch]; !ok {
		m[epoch] = seq
	}
}

// headOf is the head of a topic's epoch at the end. For the final epoch,
// the final head (or a higher acknowledged seq): a message that lands
// after it was taken, when the subscribers are stopping, binds nobody.
// For an older epoch, the highest seq known in it.
func (c *checker) headOf(topic, epoch string) uint64 {
	if f, ok := c.h.Heads[topic]; ok && f.Epoch == epoch {
		return max(f.Seq, c.maxAcked[topic][epoch])
	}
	return c.heads[topic][epoch]
}

// number records that message id was seen at p (acknowledged or
// delivered), by who.
func (c *checker) number(p tpos, id MsgID, who string) {
	if id.IsZero() {
		return
	}
	prev, ok := c.known[p]
	switch {
	case !ok:
		c.known[p] = id
		c.positions[id] = append(c.positions[id], p)
	case prev != id:
		if len(c.conflicts[p]) == 0 {
			c.conflicts[p] = append(c.conflicts[p], prev.String()+" (first seen)")
		}
		c.conflicts[p] = append(c.conflicts[p], id.String()+" "+who)
		if !slices.Contains(c.positions[id], p) {
			c.positions[id] = append(c.positions[id], p)
		}
	}
}

func (c *checker) publishes() {
	for i := range c.h.Publishes {
		p := &c.h.Publishes[i]
		c.pubs[p.ID] = p
		c.res.Publishes[p.Outcome]++
		m := c.res.ByVia[p.Via]
		if m == nil {
			m = make(map[Outcome]int)
			c.res.ByVia[p.Via] = m
		}
		m[p.Outcome]++
		if p.Outcome == OutcomeOK {
			tp := tpos{p.Topic, p.Epoch, p.Seq}
			c.acked[tp] = p.ID
			c.number(tp, p.ID, "acked to "+p.ID.String())
			c.seeHead(p.Topic, p.Epoch, p.Seq)
			if c.maxAcked[p.Topic] == nil {
				c.maxAcked[p.Topic] = make(map[string]uint64)
			}
			c.maxAcked[p.Topic][p.Epoch] = max(c.maxAcked[p.Topic][p.Epoch], p.Seq)
		}
	}
	for topic, hd := range c.h.Heads {
		c.seeHead(topic, hd.Epoch, hd.Seq)
	}
}

func (c *checker) sub(i int) *Subscriber {
	for k := range c.h.Subscribers {
		if c.h.Subscribers[k].Index == i {
			return &c.h.Subscribers[k]
		}
	}
	return &Subscriber{Index: i, Name: fmt.Sprintf("sub-%d", i), Home: -1}
}

func (c *checker) stream(e *Event) *stream {
	m := c.streams[e.Sub]
	if m == nil {
		m = make(map[string]*stream)
		c.streams[e.Sub] = m
	}
	s := m[e.Topic]
	if s == nil {
		s = &stream{sub: c.sub(e.Sub), topic: e.Topic, received: make(map[string]map[uint64]*recv),
			maxRecv: make(map[string]uint64)}
		m[e.Topic] = s
	}
	return s
}

// walk follows every stream through its events.
func (c *checker) walk() {
	for i := range c.h.Events {
		e := &c.h.Events[i]
		switch e.Kind {
		case EvConnect:
			c.res.Connections++
			c.conns[e.Sub] = append(c.conns[e.Sub], connInfo{conn: e.Conn, node: e.Node, start: e.At, end: -1})
			continue
		case EvClose:
			cs := c.conns[e.Sub]
			for k := len(cs) - 1; k >= 0; k-- {
				if cs[k].conn == e.Conn && cs[k].end < 0 {
					cs[k].end, cs[k].code, cs[k].text = e.At, e.Code, e.Text
					break
				}
			}
			continue
		case EvError:
			c.res.ErrorFrames++
			if len(c.res.ErrorSamples) < maxErrorSamples {
				c.res.ErrorSamples = append(c.res.ErrorSamples, fmt.Sprintf("at %s: %s conn %d on %s: %s",
					fmtDur(e.At), c.subName(c.sub(e.Sub)), e.Conn, c.h.NodeName(e.Node), e.Text))
			}
			continue
		case EvGap:
			continue // the messages tell
		}
		s := c.stream(e)
		switch e.Kind {
		case EvOK:
			c.onOK(s, e)
		case EvReset:
			c.res.Resets++
			c.seeHead(e.Topic, e.Epoch, e.Seq)
			c.announced(s, e, "reset")
			s.startSegment(Pos{e.Epoch, e.Seq})
		case EvMsg:
			c.onMsg(s, e)
		}
		s.lastEv = e
	}
}

// maxErrorSamples bounds the error frames a report quotes.
const maxErrorSamples = 5

func (c *checker) announced(s *stream, e *Event, what string) {
	if c.h.Mode != ModeRedis {
		return
	}
	c.add(Violation{Kind: ResetWithRedis, Sub: s.sub.Index, Topic: s.topic, Epoch: e.Epoch, From: e.Seq, To: e.Seq, At: e.At,
		Detail: fmt.Sprintf("%s: %s to %s:%d, was at %s; %s", c.subName(s.sub), what, e.Epoch, e.Seq, s.pos, c.around(s.sub, e.At))})
}

func (c *checker) onOK(s *stream, e *Event) {
	c.seeHead(e.Topic, e.Epoch, e.Seq)
	defer func() { s.lastOK = e }()
	p := Pos{e.Epoch, e.Seq}
	if !s.hasPos {
		s.first = p
		s.startSegment(p)
		return
	}
	switch e.Recovered {
	case RecFalse:
		c.res.NotRecovered++
		c.announced(s, e, "ok recovered:false")
		s.startSegment(p)
	case RecTrue, RecAbsent:
		if e.Recovered == RecAbsent && s.sub.SDK {
			// The SDK reports a failed recovery as an EventReset that
			// follows.
			return
		}
		if e.Epoch != s.pos.Epoch {
			c.add(Violation{Kind: Silent, Sub: s.sub.Index, Topic: s.topic, Epoch: e.Epoch, From: e.Seq, To: e.Seq, At: e.At,
				Detail: fmt.Sprintf("%s: ok recovered:%s in epoch %s while at %s; %s", c.subName(s.sub), e.Recovered,
					e.Epoch, s.pos, c.around(s.sub, e.At))})
			s.startSegment(p)
		}
	}
}

func (c *checker) onMsg(s *stream, e *Event) {
	c.res.Deliveries++
	tp := tpos{e.Topic, e.Epoch, e.Seq}
	c.number(tp, e.ID, "delivered to "+c.subName(s.sub))
	if _, ok := c.firstSeen[e.ID]; !ok && !e.ID.IsZero() {
		c.firstSeen[e.ID] = e.At
	}
	c.seeHead(e.Topic, e.Epoch, e.Seq)
	defer func() { s.lastMsg = e }()
	rs := s.received[e.Epoch]
	if rs == nil {
		rs = make(map[uint64]*recv)
		s.received[e.Epoch] = rs
	}
	if r := rs[e.Seq]; r != nil {
		r.n++
		// A repeat after an announcement that went back (a head below what
		// the subscriber had) still moves the stream on.
		if s.hasPos && e.Epoch == s.pos.Epoch && e.Seq > s.pos.Seq {
			s.pos.Seq = e.Seq
			if sg := s.seg(); sg.epoch == e.Epoch && e.Seq > sg.to {
				sg.to = e.Seq
			}
		}
		c.add(Violation{Kind: Duplicated, Sub: s.sub.Index, Topic: s.topic, Epoch: e.Epoch, From: e.Seq, To: e.Seq, At: e.At,
			Detail: fmt.Sprintf("%s: %s:%d (%s) received again at %s on %s conn %d, first at %s on %s conn %d", c.subName(s.sub),
				e.Epoch, e.Seq, e.ID, fmtDur(e.At), c.h.NodeName(e.Node), e.Conn, fmtDur(r.at), c.h.NodeName(r.node), r.conn)})
		return
	}
	rs[e.Seq] = &recv{at: e.At, conn: e.Conn, node: e.Node, n: 1}
	maxBefore := s.maxRecv[e.Epoch]
	s.maxRecv[e.Epoch] = max(maxBefore, e.Seq)
	switch {
	case !s.hasPos:
		// A message before any ok: the subscription's start is unknown.
		s.first = Pos{e.Epoch, e.Seq - 1}
		s.startSegment(s.first)
	case e.Epoch != s.pos.Epoch:
		c.add(Violation{Kind: Silent, Sub: s.sub.Index, Topic: s.topic, Epoch: e.Epoch, From: e.Seq, To: e.Seq, At: e.At,
			Detail: fmt.Sprintf("%s: %s:%d after %s, no reset (on %s conn %d at %s); %s", c.subName(s.sub), e.Epoch, e.Seq,
				s.pos, c.h.NodeName(e.Node), e.Conn, fmtDur(e.At), c.around(s.sub, e.At))})
		s.startSegment(Pos{e.Epoch, e.Seq - 1})
	case e.Seq <= s.pos.Seq:
		c.add(Violation{Kind: Reordered, Sub: s.sub.Index, Topic: s.topic, Epoch: e.Epoch, From: e.Seq, To: e.Seq, At: e.At,
			Detail: fmt.Sprintf("%s: %s:%d after %s (highest received %d) on %s conn %d at %s", c.subName(s.sub), e.Epoch,
				e.Seq, s.pos, maxBefore, c.h.NodeName(e.Node), e.Conn, fmtDur(e.At))})
		return
	case e.Seq > s.pos.Seq+1:
		// Skipped seqs the subscriber already had (before an announcement
		// that went back) are no gap.
		missing := 0
		for q := s.pos.Seq + 1; q < e.Seq; q++ {
			if rs[q] == nil {
				missing++
			}
		}
		if missing > 0 {
			c.add(Violation{Kind: Silent, Sub: s.sub.Index, Topic: s.topic, Epoch: e.Epoch, From: s.pos.Seq + 1, To: e.Seq - 1, At: e.At,
				Detail: fmt.Sprintf("%s: %s:%d after %s, %d of seqs %d..%d never received (on %s conn %d at %s); %s", c.subName(s.sub),
					e.Epoch, e.Seq, s.pos, missing, s.pos.Seq+1, e.Seq-1, c.h.NodeName(e.Node), e.Conn, fmtDur(e.At), c.around(s.sub, e.At))})
		}
	}
	s.pos = Pos{e.Epoch, e.Seq}
	if sg := s.seg(); sg.epoch == e.Epoch && e.Seq > sg.to {
		sg.to = e.Seq
	}
}

// finish closes every stream: obligations to the end, losses,
// convergence.
func (c *checker) finish() {
	subs := slices.Clone(c.h.Subscribers)
	slices.SortFunc(subs, func(a, b Subscriber) int { return cmp.Compare(a.Index, b.Index) })
	for _, sub := range subs {
		for _, topic := range sub.Topics {
			c.res.Streams++
			s := c.streams[sub.Index][topic]
			if s == nil {
				s = &stream{sub: c.sub(sub.Index), topic: topic, received: make(map[string]map[uint64]*recv), maxRecv: make(map[string]uint64)}
			}
			c.finishStream(s)
		}
	}
}

func (c *checker) finishStream(s *stream) {
	head, known := c.h.Heads[s.topic]
	if s.hasPos {
		if sg := s.seg(); sg.epoch == s.pos.Epoch {
			sg.to = max(sg.to, c.headOf(s.topic, sg.epoch))
		}
	}
	// Obligations, per epoch: a bitmap of the seqs that must be received.
	must := make(map[string][]bool)
	oblige := func(epoch string, from, to uint64) {
		if to <= from {
			return
		}
		b := must[epoch]
		if uint64(len(b)) <= to {
			b = append(b, make([]bool, int(to)+1-len(b))...)
			must[epoch] = b
		}
		for q := from + 1; q <= to; q++ {
			b[q] = true
		}
	}
	for _, sg := range s.segs {
		oblige(sg.epoch, sg.from, sg.to)
	}
	if c.h.Mode == ModeRedis && s.hasPos {
		// Subscribed before the first publish: every message of every epoch.
		for epoch := range c.heads[s.topic] {
			from := uint64(0)
			if epoch == s.first.Epoch {
				from = s.first.Seq
			}
			oblige(epoch, from, c.headOf(s.topic, epoch))
		}
	}
	epochs := make([]string, 0, len(must))
	for e := range must {
		epochs = append(epochs, e)
	}
	slices.Sort(epochs)
	for _, epoch := range epochs {
		b := must[epoch]
		rs := s.received[epoch]
		for q := uint64(1); q < uint64(len(b)); q++ {
			if !b[q] || rs[q] != nil {
				continue
			}
			// A run of missing seqs [q, r].
			r := q
			for r+1 < uint64(len(b)) && b[r+1] && rs[r+1] == nil {
				r++
			}
			c.lost(s, epoch, q, r)
			q = r
		}
	}
	// A subscriber past the head has a message that landed after the head
	// was taken: it is not behind.
	if known && s.hasPos && s.pos.Epoch == head.Epoch && s.pos.Seq >= head.Seq {
		c.res.Converged++
		return
	}
	var at time.Duration
	if s.lastEv != nil {
		at = s.lastEv.At
	}
	headStr := "unknown (no node answered)"
	if known {
		headStr = head.String()
	}
	pos := "nothing"
	if s.hasPos {
		pos = s.pos.String()
	}
	c.add(Violation{Kind: NonConverged, Sub: s.sub.Index, Topic: s.topic, Epoch: s.pos.Epoch, From: s.pos.Seq, To: head.Seq, At: at,
		Detail: fmt.Sprintf("%s: ends at %s, head %s; %s; %s", c.subName(s.sub), pos, headStr, c.lastOf(s), c.connAt(s.sub.Index, c.end))})
}

// lost reports the seqs from..to of epoch that s never received: as Lost
// for those acknowledged, LostUnacked for the others.
func (c *checker) lost(s *stream, epoch string, from, to uint64) {
	acked, firstAcked := 0, uint64(0)
	for q := from; q <= to; q++ {
		if _, ok := c.acked[tpos{s.topic, epoch, q}]; ok {
			if acked == 0 {
				firstAcked = q
			}
			acked++
		}
	}
	unacked := int(to-from+1) - acked
	// When should they have come: the first acknowledgement, or the
	// receipt of the message before them.
	var at time.Duration
	var via string
	if id, ok := c.acked[tpos{s.topic, epoch, firstAcked}]; ok && acked > 0 {
		if p := c.pubs[id]; p != nil {
			at = p.End
			via = fmt.Sprintf("; %d:%s acked at %s by %s (via %s)", firstAcked, id, fmtDur(p.End), c.h.NodeName(p.Node), p.Via)
		}
	}
	rs := s.received[epoch]
	seqs := s.sortedSeqs(epoch)
	before, after := "nothing before", "nothing after"
	i, _ := slices.BinarySearch(seqs, from)
	if i > 0 {
		q := seqs[i-1]
		r := rs[q]
		at = max(at, r.at)
		before = fmt.Sprintf("before: %d at %s on %s conn %d", q, fmtDur(r.at), c.h.NodeName(r.node), r.conn)
	}
	if j, _ := slices.BinarySearch(seqs, to+1); j < len(seqs) {
		q := seqs[j]
		r := rs[q]
		after = fmt.Sprintf("after: %d at %s on %s conn %d", q, fmtDur(r.at), c.h.NodeName(r.node), r.conn)
	}
	rng := fmt.Sprint(from)
	if to > from {
		rng = fmt.Sprintf("%d..%d", from, to)
	}
	v := Violation{Kind: Lost, Sub: s.sub.Index, Topic: s.topic, Epoch: epoch, From: from, To: to, Count: acked, At: at,
		Detail: fmt.Sprintf("%s: %s %s:%s never received (%d acked, %d not); %s, %s%s; then %s; in the end %s, %s", c.subName(s.sub),
			s.topic, epoch, rng, acked, unacked, before, after, via, c.around(s.sub, at), c.lastOf(s), c.connAt(s.sub.Index, c.end))}
	if acked > 0 {
		c.add(v)
	}
	if unacked > 0 {
		v.Kind, v.Count, v.countOnly = LostUnacked, unacked, acked > 0
		c.add(v)
	}
}

// numbering checks each message against its publish: numbered at most
// once, and only if not failed.
func (c *checker) numbering() {
	tps := make([]tpos, 0, len(c.conflicts))
	for tp := range c.conflicts {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(a, b tpos) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.epoch, b.epoch), cmp.Compare(a.seq, b.seq))
	})
	for _, tp := range tps {
		c.add(Violation{Kind: Conflicting, Sub: -1, Topic: tp.topic, Epoch: tp.epoch, From: tp.seq, To: tp.seq,
			Detail: fmt.Sprintf("%s %s:%d carries %s", tp.topic, tp.epoch, tp.seq, strings.Join(c.conflicts[tp], ", "))})
	}
	ids := make([]MsgID, 0, len(c.positions))
	for id := range c.positions {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b MsgID) int { return cmp.Or(cmp.Compare(a.P, b.P), cmp.Compare(a.N, b.N)) })
	for _, id := range ids {
		ps := c.positions[id]
		p := c.pubs[id]
		switch {
		case p == nil:
			c.add(Violation{Kind: Unexpected, Sub: -1, Topic: ps[0].topic, Epoch: ps[0].epoch, From: ps[0].seq, To: ps[0].seq,
				Detail: fmt.Sprintf("%s at %s %s:%d was never published", id, ps[0].topic, ps[0].epoch, ps[0].seq)})
		case p.Outcome == OutcomeFailed:
			c.add(Violation{Kind: Unexpected, Sub: -1, Topic: ps[0].topic, Epoch: ps[0].epoch, From: ps[0].seq, To: ps[0].seq, At: p.End,
				Detail: fmt.Sprintf("%s failed (%s via %s on %s: %s) but is at %s %s:%d", id, fmtDur(p.End), p.Via,
					c.h.NodeName(p.Node), p.Err, ps[0].topic, ps[0].epoch, ps[0].seq)})
		}
		if len(ps) < 2 {
			continue
		}
		// Numbered more than once: allowed without Redis only when each
		// numbering is in another epoch (the key died with the topic).
		epochs := make(map[string]bool)
		same := false
		for _, q := range ps {
			if epochs[q.epoch] || q.topic != ps[0].topic {
				same = true
			}
			epochs[q.epoch] = true
		}
		var where []string
		for _, q := range ps {
			where = append(where, fmt.Sprintf("%s %s:%d", q.topic, q.epoch, q.seq))
		}
		if c.h.Mode != ModeRedis && !same {
			c.res.Renumbered += len(ps) - 1
			continue
		}
		outcome := "never published"
		var at time.Duration
		if p != nil {
			outcome = fmt.Sprintf("%s via %s, %d attempts", p.Outcome, p.Via, p.Attempts)
			at = p.Start // the faults around the publish are what numbered it twice
		}
		c.add(Violation{Kind: Duplicated, Sub: -1, Topic: ps[0].topic, Epoch: ps[0].epoch, From: ps[0].seq, To: ps[0].seq,
			At: at, Count: len(ps) - 1, Detail: fmt.Sprintf("%s (%s) numbered %d times: %s", id, outcome, len(ps), strings.Join(where, ", "))})
	}
}

// recoveries measures, per fault, the time to the next message of the
// subscribers that were on an affected node.
func (c *checker) recoveries() {
	byKind := make(map[string]*Recovery)
	var order []string
	msgTimes := make(map[int][]time.Duration)
	for i := range c.h.Events {
		if e := &c.h.Events[i]; e.Kind == EvMsg {
			msgTimes[e.Sub] = append(msgTimes[e.Sub], e.At)
		}
	}
	for _, ts := range msgTimes {
		slices.Sort(ts)
	}
	firstMsgAfter := func(sub int, t time.Duration) (time.Duration, bool) {
		ts := msgTimes[sub]
		i, found := slices.BinarySearch(ts, t)
		for found && i < len(ts) && ts[i] == t {
			i++
		}
		if i < len(ts) {
			return ts[i] - t, true
		}
		return 0, false
	}
	for _, f := range c.h.Faults {
		r := byKind[f.Kind]
		if r == nil {
			r = &Recovery{Kind: f.Kind}
			byKind[f.Kind] = r
			order = append(order, f.Kind)
		}
		r.Faults++
		for _, sub := range c.h.Subscribers {
			ci, ok := c.connAtInfo(sub.Index, f.Start)
			if !ok || !slices.Contains(f.Nodes, ci.node) {
				continue
			}
			r.Watched++
			if d, ok := firstMsgAfter(sub.Index, f.Start); ok {
				r.Times = append(r.Times, d)
			} else {
				r.Never++
			}
		}
		slices.Sort(r.Times)
	}
	for _, k := range order {
		c.res.Recoveries = append(c.res.Recoveries, *byKind[k])
	}
}

// connAtInfo returns the subscriber's connection open at t.
func (c *checker) connAtInfo(sub int, t time.Duration) (connInfo, bool) {
	cs := c.conns[sub]
	for k := len(cs) - 1; k >= 0; k-- {
		if cs[k].start <= t {
			if cs[k].end < 0 || cs[k].end >= t {
				return cs[k], true
			}
			return cs[k], false
		}
	}
	return connInfo{}, false
}

// connAt describes the subscriber's connection at t.
func (c *checker) connAt(sub int, t time.Duration) string {
	ci, open := c.connAtInfo(sub, t)
	switch {
	case ci.conn == 0:
		return "no connection yet"
	case open:
		return fmt.Sprintf("conn %d on %s since %s", ci.conn, c.h.NodeName(ci.node), fmtDur(ci.start))
	default:
		return fmt.Sprintf("conn %d on %s closed at %s (code %d %s)", ci.conn, c.h.NodeName(ci.node), fmtDur(ci.end), ci.code, ci.text)
	}
}

// around describes a subscriber's connection at t and the faults near t.
func (c *checker) around(sub *Subscriber, t time.Duration) string {
	return c.connAt(sub.Index, t) + "; " + c.faultsNear(t)
}

// faultsNear names the faults active within 10 s before t (or the last
// one before it).
func (c *checker) faultsNear(t time.Duration) string {
	var near []string
	var last *Fault
	for i := range c.h.Faults {
		f := &c.h.Faults[i]
		if f.Start > t+time.Second {
			break
		}
		last = f
		if f.End >= t-10*time.Second || f.End == 0 {
			near = append(near, describeFault(f))
		}
	}
	switch {
	case len(near) > 0:
		return "faults: " + strings.Join(near, ", ")
	case last != nil:
		return "after " + describeFault(last)
	}
	return "no fault before"
}

func describeFault(f *Fault) string {
	return fmt.Sprintf("#%d %s [%s-%s]", f.Index, f.Desc, fmtDur(f.Start), fmtDur(f.End))
}

// lastOf describes the stream's last message and last ok.
func (c *checker) lastOf(s *stream) string {
	var parts []string
	if m := s.lastMsg; m != nil {
		parts = append(parts, fmt.Sprintf("last msg %s:%d at %s on %s conn %d", m.Epoch, m.Seq, fmtDur(m.At), c.h.NodeName(m.Node), m.Conn))
	} else {
		parts = append(parts, "no msg")
	}
	if o := s.lastOK; o != nil {
		parts = append(parts, fmt.Sprintf("last ok %s:%d recovered:%s at %s on %s conn %d", o.Epoch, o.Seq, o.Recovered,
			fmtDur(o.At), c.h.NodeName(o.Node), o.Conn))
	}
	return strings.Join(parts, ", ")
}

func (c *checker) subName(s *Subscriber) string {
	kind := "raw"
	if s.SDK {
		kind = "sdk"
	}
	return fmt.Sprintf("%s (%s, home %s)", s.Name, kind, c.h.NodeName(s.Home))
}

// fmtDur prints a time since the start of the run, or a duration.
func fmtDur(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
