package nemesis

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hb builds a small history by hand: three nodes, topic "t", subscribers
// 0 (raw, home n1) and 1 (sdk, home n2), each subscribed to "t".
type hb struct {
	h    *History
	at   time.Duration
	conn map[int]Event // the current connection of each subscriber
}

func newHB(mode string) *hb {
	return &hb{conn: make(map[int]Event), h: &History{
		Name: "unit", Mode: mode, Membership: "static", Nodes: []string{"n1", "n2", "n3"}, Topics: []string{"t"},
		Heads: map[string]Pos{},
		Subscribers: []Subscriber{
			{Index: 0, Name: "raw-0", Home: 0, Topics: []string{"t"}},
			{Index: 1, Name: "sdk-1", SDK: true, Home: 1, Topics: []string{"t"}},
		},
	}}
}

func (b *hb) tick() time.Duration {
	b.at += 10 * time.Millisecond
	return b.at
}

func (b *hb) pub(id MsgID, epoch string, seq uint64, o Outcome) *hb {
	p := Publish{ID: id, Topic: "t", Via: ViaHTTPKey, Outcome: o, Start: b.tick(), End: b.tick(), Node: 0, Attempts: 1}
	if o == OutcomeOK {
		p.Epoch, p.Seq = epoch, seq
	}
	b.h.Publishes = append(b.h.Publishes, p)
	return b
}

// acked publishes ids p1-from..p1-to acknowledged at seqs from..to.
func (b *hb) acked(epoch string, from, to uint64) *hb {
	for s := from; s <= to; s++ {
		b.pub(MsgID{1, uint32(s)}, epoch, s, OutcomeOK)
	}
	return b
}

func (b *hb) ev(e Event) *hb {
	e.At = b.tick()
	if e.Kind == EvConnect {
		b.conn[e.Sub] = e
	} else if c, ok := b.conn[e.Sub]; ok && e.Conn == 0 {
		e.Conn, e.Node = c.Conn, c.Node
	}
	if e.Topic == "" && e.Kind != EvConnect && e.Kind != EvClose {
		e.Topic = "t"
	}
	b.h.Events = append(b.h.Events, e)
	return b
}

func (b *hb) connect(sub, conn, node int) *hb {
	return b.ev(Event{Kind: EvConnect, Sub: sub, Conn: conn, Node: node})
}

func (b *hb) closed(sub, conn, node int) *hb {
	return b.ev(Event{Kind: EvClose, Sub: sub, Conn: conn, Node: node})
}

func (b *hb) ok(sub int, epoch string, head uint64, rec Recovered) *hb {
	return b.ev(Event{Kind: EvOK, Sub: sub, Epoch: epoch, Seq: head, Recovered: rec})
}

func (b *hb) reset(sub int, epoch string, seq uint64) *hb {
	return b.ev(Event{Kind: EvReset, Sub: sub, Epoch: epoch, Seq: seq})
}

// msgs delivers seqs from..to of epoch, carrying p1-<seq>.
func (b *hb) msgs(sub int, epoch string, from, to uint64) *hb {
	for s := from; s <= to; s++ {
		b.msgID(sub, epoch, s, MsgID{1, uint32(s)})
	}
	return b
}

func (b *hb) msgID(sub int, epoch string, seq uint64, id MsgID) *hb {
	return b.ev(Event{Kind: EvMsg, Sub: sub, Epoch: epoch, Seq: seq, ID: id})
}

func (b *hb) head(epoch string, seq uint64) *hb {
	b.h.Heads["t"] = Pos{epoch, seq}
	return b
}

// only keeps subscriber 0.
func (b *hb) only() *hb {
	b.h.Subscribers = b.h.Subscribers[:1]
	return b
}

func counts(r *Result) map[ViolationKind]int {
	out := make(map[ViolationKind]int)
	for k, n := range r.Counts {
		if n > 0 {
			out[k] = n
		}
	}
	return out
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     *hb
		want  map[ViolationKind]int
		check func(t *testing.T, r *Result)
	}{
		{
			name: "clean run",
			b: newHB(ModeRedis).acked("E", 1, 3).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 3).
				connect(1, 1, 1).ok(1, "E", 0, RecAbsent).msgs(1, "E", 1, 3).head("E", 3),
			want: map[ViolationKind]int{},
			check: func(t *testing.T, r *Result) {
				require.Equal(t, 2, r.Converged)
				require.Equal(t, 6, r.Deliveries)
				require.Equal(t, 3, r.Publishes[OutcomeOK])
			},
		},
		{
			name: "reconnect recovered and gapless",
			b: newHB(ModeRedis).only().acked("E", 1, 5).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 2).
				closed(0, 1, 0).connect(0, 2, 1).ok(0, "E", 4, RecTrue).msgs(0, "E", 3, 5).head("E", 5),
			want: map[ViolationKind]int{},
		},
		{
			name: "seq jump loses the message in between",
			b: newHB(ModeMemory).only().acked("E", 1, 3).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).
				msgs(0, "E", 1, 1).msgs(0, "E", 3, 3).head("E", 3),
			want: map[ViolationKind]int{Silent: 1, Lost: 1},
		},
		{
			name: "ok recovered then nothing (restarted node)",
			b: newHB(ModeMemory).only().acked("E", 1, 5).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 2).
				closed(0, 1, 0).connect(0, 2, 0).ok(0, "E", 2, RecTrue).head("E", 5),
			want: map[ViolationKind]int{Lost: 3, NonConverged: 1},
			check: func(t *testing.T, r *Result) {
				v := r.Examples[Lost][0]
				require.Equal(t, uint64(3), v.From)
				require.Equal(t, uint64(5), v.To)
				require.Contains(t, v.Detail, "raw-0")
				require.Contains(t, v.Detail, "conn 2 on n1")
				require.Contains(t, r.Examples[NonConverged][0].Detail, "ends at E:2, head E:5")
			},
		},
		{
			name: "stuck below the head of an old epoch",
			b: newHB(ModeMemory).only().acked("E", 1, 2).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 1).
				acked("F", 1, 1).head("F", 1),
			want: map[ViolationKind]int{Lost: 1, NonConverged: 1},
		},
		{
			name: "unacknowledged seq below the head is missed too",
			b: newHB(ModeMemory).only().acked("E", 1, 1).pub(MsgID{2, 1}, "", 0, OutcomeIndeterminate).
				connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 1).head("E", 2),
			want: map[ViolationKind]int{LostUnacked: 1, NonConverged: 1},
		},
		{
			name: "reset announced without Redis",
			b: newHB(ModeMemory).only().acked("E", 1, 3).acked("F", 1, 2).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).
				msgs(0, "E", 1, 2).reset(0, "F", 0).msgs(0, "F", 1, 2).head("F", 2),
			want:  map[ViolationKind]int{},
			check: func(t *testing.T, r *Result) { require.Equal(t, 1, r.Resets) },
		},
		{
			name: "reset with Redis",
			b: newHB(ModeRedis).only().acked("E", 1, 3).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).
				msgs(0, "E", 1, 2).reset(0, "F", 0).head("F", 0),
			want: map[ViolationKind]int{ResetWithRedis: 1, Lost: 1},
		},
		{
			name: "recovered false without Redis",
			b: newHB(ModeMemory).only().acked("E", 1, 6).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 1).
				closed(0, 1, 0).connect(0, 2, 1).ok(0, "E", 5, RecFalse).msgs(0, "E", 6, 6).head("E", 6),
			want:  map[ViolationKind]int{},
			check: func(t *testing.T, r *Result) { require.Equal(t, 1, r.NotRecovered) },
		},
		{
			name: "recovered false with Redis",
			b: newHB(ModeRedis).only().acked("E", 1, 6).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 1).
				closed(0, 1, 0).connect(0, 2, 1).ok(0, "E", 5, RecFalse).msgs(0, "E", 6, 6).head("E", 6),
			want: map[ViolationKind]int{ResetWithRedis: 1, Lost: 4},
		},
		{
			name: "silent epoch change",
			b: newHB(ModeMemory).only().acked("E", 1, 1).acked("F", 2, 2).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).
				msgs(0, "E", 1, 1).msgs(0, "F", 2, 2).head("F", 2),
			want: map[ViolationKind]int{Silent: 1},
		},
		{
			name: "recovered true in another epoch",
			b: newHB(ModeMemory).only().acked("E", 1, 1).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 1).
				closed(0, 1, 0).connect(0, 2, 1).ok(0, "F", 0, RecTrue).head("F", 0),
			want: map[ViolationKind]int{Silent: 1},
		},
		{
			name: "duplicate receipt",
			b: newHB(ModeRedis).only().acked("E", 1, 2).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 2).
				msgs(0, "E", 2, 2).head("E", 2),
			want: map[ViolationKind]int{Duplicated: 1},
		},
		{
			name: "reordered",
			b: newHB(ModeRedis).only().acked("E", 1, 3).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 1).
				msgs(0, "E", 3, 3).msgs(0, "E", 2, 2).head("E", 3),
			want: map[ViolationKind]int{Silent: 1, Reordered: 1},
		},
		{
			name: "message older than the subscription's head",
			b: newHB(ModeRedis).only().acked("E", 1, 3).connect(0, 1, 0).ok(0, "E", 2, RecAbsent).msgs(0, "E", 3, 3).
				msgs(0, "E", 1, 1).head("E", 3),
			want: map[ViolationKind]int{Reordered: 1},
		},
		{
			name: "conflicting",
			b: newHB(ModeRedis).only().acked("E", 1, 1).pub(MsgID{2, 1}, "", 0, OutcomeIndeterminate).
				connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgID(0, "E", 1, MsgID{2, 1}).head("E", 1),
			want: map[ViolationKind]int{Conflicting: 1},
		},
		{
			name: "failed publish delivered",
			b: newHB(ModeRedis).only().pub(MsgID{1, 1}, "", 0, OutcomeFailed).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).
				msgs(0, "E", 1, 1).head("E", 1),
			want: map[ViolationKind]int{Unexpected: 1},
		},
		{
			name: "message never published",
			b:    newHB(ModeRedis).only().connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 1).head("E", 1),
			want: map[ViolationKind]int{Unexpected: 1},
		},
		{
			name: "indeterminate publish numbered twice",
			b: newHB(ModeRedis).only().pub(MsgID{1, 1}, "", 0, OutcomeIndeterminate).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).
				msgID(0, "E", 1, MsgID{1, 1}).msgID(0, "E", 2, MsgID{1, 1}).head("E", 2),
			want: map[ViolationKind]int{Duplicated: 1},
		},
		{
			name: "acknowledged publish numbered again",
			b: newHB(ModeMemory).only().acked("E", 1, 1).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 1).
				msgID(0, "E", 2, MsgID{1, 1}).head("E", 2),
			want: map[ViolationKind]int{Duplicated: 1},
		},
		{
			name: "renumbered in a new epoch without Redis",
			b: newHB(ModeMemory).only().pub(MsgID{1, 1}, "", 0, OutcomeIndeterminate).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).
				msgID(0, "E", 1, MsgID{1, 1}).reset(0, "F", 0).msgID(0, "F", 1, MsgID{1, 1}).head("F", 1),
			want:  map[ViolationKind]int{},
			check: func(t *testing.T, r *Result) { require.Equal(t, 1, r.Renumbered) },
		},
		{
			name: "sdk reports a failed recovery as a reset",
			b: newHB(ModeMemory).acked("E", 1, 4).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 4).
				connect(1, 1, 1).ok(1, "E", 0, RecAbsent).msgs(1, "E", 1, 1).closed(1, 1, 1).
				connect(1, 2, 2).ok(1, "E", 3, RecAbsent).reset(1, "E", 3).msgs(1, "E", 4, 4).head("E", 4),
			want:  map[ViolationKind]int{},
			check: func(t *testing.T, r *Result) { require.Equal(t, 1, r.Resets) },
		},
		{
			name: "announcement behind the subscriber, then repeats",
			b: newHB(ModeMemory).only().acked("E", 1, 5).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 3).
				closed(0, 1, 0).connect(0, 2, 1).ok(0, "E", 1, RecFalse).msgs(0, "E", 3, 3).msgs(0, "E", 5, 5).head("E", 5),
			// 2 is not lost (received before), 3 is a repeat, 4 is skipped.
			want: map[ViolationKind]int{Duplicated: 1, Silent: 1, Lost: 1},
			check: func(t *testing.T, r *Result) {
				require.Contains(t, r.Examples[Silent][0].Detail, "1 of seqs 4..4 never received")
			},
		},
		{
			name: "missing range partly acknowledged",
			b: newHB(ModeRedis).only().acked("E", 1, 2).pub(MsgID{2, 1}, "", 0, OutcomeIndeterminate).acked("E", 4, 5).
				connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 1).head("E", 5),
			want: map[ViolationKind]int{Lost: 3, LostUnacked: 1, NonConverged: 1},
			check: func(t *testing.T, r *Result) {
				require.Len(t, r.Examples[Lost], 1)
				require.Empty(t, r.Examples[LostUnacked]) // shown with the lost ones
				require.Contains(t, r.Examples[Lost][0].Detail, "E:2..5 never received (3 acked, 1 not)")
			},
		},
		{
			name: "a message landing after the final head binds nobody",
			b: newHB(ModeRedis).acked("E", 1, 2).pub(MsgID{2, 1}, "", 0, OutcomeIndeterminate).
				connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 2).
				connect(1, 1, 1).ok(1, "E", 0, RecAbsent).msgs(1, "E", 1, 2).msgID(1, "E", 3, MsgID{2, 1}).head("E", 2),
			want:  map[ViolationKind]int{},
			check: func(t *testing.T, r *Result) { require.Equal(t, 2, r.Converged) },
		},
		{
			name: "an acknowledged message above a stale final head still binds",
			b: newHB(ModeRedis).only().acked("E", 1, 3).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 2).
				head("E", 2),
			want: map[ViolationKind]int{Lost: 1},
		},
		{
			name: "subscriber that never got an ok",
			b:    newHB(ModeMemory).only().acked("E", 1, 1).connect(0, 1, 0).head("E", 1),
			want: map[ViolationKind]int{NonConverged: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(tc.b.h)
			require.Equal(t, tc.want, counts(r), "report:\n%s", Report(tc.b.h, r))
			require.Equal(t, len(tc.want) > 0, r.Failed())
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestCheckDiverged(t *testing.T) {
	b := newHB(ModeMemory).only().acked("E", 1, 2).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 2)
	b.h.NodeHeads = map[string]map[string]Pos{
		"n1": {"t": {"F", 7}},
		"n2": {"t": {"E", 2}},
		"n3": {"t": {"E", 2}},
	}
	b.h.Heads = MajorityHeads(b.h.NodeHeads)
	require.Equal(t, Pos{"E", 2}, b.h.Heads["t"])
	r := Check(b.h)
	require.Equal(t, map[ViolationKind]int{Diverged: 1}, counts(r))
	require.Contains(t, r.Examples[Diverged][0].Detail, "n1 F:7, n2 E:2, n3 E:2")

	// A late publish landing while the nodes were asked: one answers the
	// head after it. That is no divergence; another epoch, or a position
	// past the late head, still is.
	b.h.NodeHeads["n1"]["t"] = Pos{"E", 3}
	b.h.HeadsAfter = map[string]Pos{"t": {"E", 3}}
	require.Empty(t, counts(Check(b.h)))
	b.h.NodeHeads["n1"]["t"] = Pos{"E", 4}
	require.Equal(t, map[ViolationKind]int{Diverged: 1}, counts(Check(b.h)))
	b.h.NodeHeads["n1"]["t"] = Pos{"F", 3}
	b.h.HeadsAfter = map[string]Pos{"t": {"F", 3}}
	require.Equal(t, map[ViolationKind]int{Diverged: 1}, counts(Check(b.h)))
	b.h.HeadsAfter = nil

	// Concurrent epochs: E acknowledged until 0.5 s, F from 0.1 s to 2 s.
	b.h.Publishes = []Publish{
		{ID: MsgID{1, 1}, Topic: "t", Outcome: OutcomeOK, Epoch: "E", Seq: 1, End: 0},
		{ID: MsgID{1, 2}, Topic: "t", Outcome: OutcomeOK, Epoch: "E", Seq: 2, End: 3 * time.Second},
		{ID: MsgID{2, 1}, Topic: "t", Outcome: OutcomeOK, Epoch: "F", Seq: 7, End: 100 * time.Millisecond},
		{ID: MsgID{2, 2}, Topic: "t", Outcome: OutcomeOK, Epoch: "F", Seq: 8, End: 2 * time.Second},
	}
	r = Check(b.h)
	require.Len(t, r.Concurrent, 1)
	require.Contains(t, r.Concurrent[0], "E [0.00s-3.00s] and F [0.10s-2.00s]")
}

func TestMajorityHeads(t *testing.T) {
	require.Equal(t, map[string]Pos{"a": {"E", 3}, "b": {"X", 9}}, MajorityHeads(map[string]map[string]Pos{
		"n1": {"a": {"E", 3}, "b": {"X", 9}},
		"n2": {"a": {"E", 3}, "b": {"X", 8}},
		"n3": {"a": {"F", 1}},
	}))
}

func TestCheckRecovery(t *testing.T) {
	b := newHB(ModeRedis).acked("E", 1, 3).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).
		connect(1, 1, 1).ok(1, "E", 0, RecAbsent).head("E", 3)
	start := b.tick()
	b.h.Faults = append(b.h.Faults, Fault{Index: 1, Kind: "kill", Desc: "kill n1", Nodes: []int{0}, Start: start, End: start + time.Second})
	b.closed(0, 1, 0).connect(0, 2, 1).ok(0, "E", 0, RecTrue)
	b.msgs(1, "E", 1, 3).msgs(0, "E", 1, 3)
	r := Check(b.h)
	require.False(t, r.Failed(), Report(b.h, r))
	require.Len(t, r.Recoveries, 1)
	rc := r.Recoveries[0]
	require.Equal(t, 1, rc.Watched) // only raw-0 was on n1
	require.Equal(t, 0, rc.Never)
	// closed, connect, ok, three msgs of sdk-1, then its first msg: 7 ticks.
	require.Equal(t, []time.Duration{70 * time.Millisecond}, rc.Times)
}

func TestHistoryJSONL(t *testing.T) {
	b := newHB(ModeMemory).acked("E", 1, 2).pub(MsgID{3, 9}, "", 0, OutcomeFailed).connect(0, 1, 0).
		ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 2).ev(Event{Kind: EvError, Sub: 0, Conn: 1, Text: `{"op":"error"}`}).
		closed(0, 1, 0).connect(0, 2, 1).ok(0, "E", 2, RecTrue).head("E", 2)
	b.h.Faults = []Fault{{Index: 1, Kind: "pause", Desc: "pause n1", Nodes: []int{0}, Start: time.Second, End: 2 * time.Second}}
	b.h.Seed, b.h.Duration = 42, 3*time.Second
	var buf bytes.Buffer
	require.NoError(t, b.h.WriteJSONL(&buf))
	h, err := ReadJSONL(&buf)
	require.NoError(t, err)
	require.Equal(t, b.h.Publishes, h.Publishes)
	require.Equal(t, b.h.Events, h.Events)
	require.Equal(t, b.h.Faults, h.Faults)
	require.Equal(t, b.h.Subscribers, h.Subscribers)
	require.Equal(t, b.h.Heads, h.Heads)
	require.Equal(t, uint64(42), h.Seed)
	require.Equal(t, counts(Check(b.h)), counts(Check(h)))
}

func TestReport(t *testing.T) {
	b := newHB(ModeMemory).only().acked("E", 1, 5).connect(0, 1, 0).ok(0, "E", 0, RecAbsent).msgs(0, "E", 1, 2).
		closed(0, 1, 0).connect(0, 2, 0).ok(0, "E", 2, RecTrue).head("E", 5)
	b.h.Faults = []Fault{{Index: 1, Kind: "kill", Desc: "kill -9 n1", Nodes: []int{0}, Start: 20 * time.Millisecond, End: 50 * time.Millisecond}}
	out := Report(b.h, Check(b.h))
	for _, want := range []string{"verdict: FAIL (lost 3, non-converged 1)", "lost                   3", "E:3..5 never received (3 acked, 0 not)",
		"#1 kill -9 n1", "publishes: 5: ok 5"} {
		require.True(t, strings.Contains(out, want), "missing %q in:\n%s", want, out)
	}
}

func TestMsgID(t *testing.T) {
	for _, id := range []MsgID{{}, {1, 0}, {12, 345}} {
		got, err := ParseMsgID(id.String())
		require.NoError(t, err)
		require.Equal(t, id, got)
	}
	for _, bad := range []string{"x1-2", "p1", "p-1", "p1-x"} {
		_, err := ParseMsgID(bad)
		require.Error(t, err, bad)
	}
}

// BenchmarkCheck judges a history the size of a 20-minute run: 30
// subscribers on 3 of 10 topics, 20,000 messages per topic, every tenth
// subscriber missing every hundredth message.
func BenchmarkCheck(b *testing.B) {
	const topics, perTopic, subs = 10, 20000, 30
	h := &History{Name: "bench", Mode: ModeRedis, Nodes: []string{"n1", "n2", "n3"}, Heads: map[string]Pos{}}
	for t := range topics {
		topic := fmt.Sprintf("t%d", t)
		h.Topics = append(h.Topics, topic)
		h.Heads[topic] = Pos{"E", perTopic}
		for s := uint64(1); s <= perTopic; s++ {
			h.Publishes = append(h.Publishes, Publish{ID: MsgID{uint32(t + 1), uint32(s)}, Topic: topic, Via: ViaHTTPKey,
				Outcome: OutcomeOK, Epoch: "E", Seq: s, End: time.Duration(s) * time.Millisecond})
		}
	}
	at := time.Duration(0)
	for i := range subs {
		m := Subscriber{Index: i, Name: fmt.Sprint(i), Home: i % 3}
		h.Events = append(h.Events, Event{At: at, Kind: EvConnect, Sub: i, Conn: 1, Node: i % 3})
		for k := range 3 {
			topic := h.Topics[(i+3*k)%topics]
			m.Topics = append(m.Topics, topic)
			h.Events = append(h.Events, Event{At: at, Kind: EvOK, Sub: i, Conn: 1, Node: i % 3, Topic: topic, Epoch: "E"})
		}
		h.Subscribers = append(h.Subscribers, m)
	}
	for s := uint64(1); s <= perTopic; s++ {
		at = time.Duration(s) * time.Millisecond
		for _, m := range h.Subscribers {
			for k, topic := range m.Topics {
				if m.Index%10 == 0 && s%100 == 0 {
					continue
				}
				t := (m.Index + 3*k) % topics
				h.Events = append(h.Events, Event{At: at, Kind: EvMsg, Sub: m.Index, Conn: 1, Node: m.Home, Topic: topic, Epoch: "E",
					Seq: s, ID: MsgID{uint32(t + 1), uint32(s)}})
			}
		}
	}
	b.ReportMetric(float64(len(h.Events)), "events")
	b.ResetTimer()
	for b.Loop() {
		r := Check(h)
		if r.Counts[Lost] == 0 {
			b.Fatal("no loss found")
		}
	}
}
