package nemesis

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// MsgID names a published message: its publisher (from 1) and that
// publisher's counter. Every message's data carries it, so the checker can
// tell which publish a delivery is. The zero MsgID means unknown.
type MsgID struct {
	P uint32
	N uint32
}

// IsZero reports whether id is unknown.
func (id MsgID) IsZero() bool { return id == MsgID{} }

// String formats id as "p<publisher>-<counter>", "?" when unknown.
func (id MsgID) String() string {
	if id.IsZero() {
		return "?"
	}
	return "p" + strconv.FormatUint(uint64(id.P), 10) + "-" + strconv.FormatUint(uint64(id.N), 10)
}

// ParseMsgID parses what String returns.
func ParseMsgID(s string) (MsgID, error) {
	if s == "?" || s == "" {
		return MsgID{}, nil
	}
	p, n, ok := strings.Cut(strings.TrimPrefix(s, "p"), "-")
	if !ok || !strings.HasPrefix(s, "p") {
		return MsgID{}, fmt.Errorf("nemesis: bad message id %q", s)
	}
	pi, err1 := strconv.ParseUint(p, 10, 32)
	ni, err2 := strconv.ParseUint(n, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return MsgID{}, fmt.Errorf("nemesis: bad message id %q: %w", s, err)
	}
	return MsgID{P: uint32(pi), N: uint32(ni)}, nil
}

// MarshalText implements encoding.TextMarshaler.
func (id MsgID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *MsgID) UnmarshalText(b []byte) error {
	v, err := ParseMsgID(string(b))
	*id = v
	return err
}

// Outcome is what a publisher learnt of one publish.
type Outcome uint8

// Outcomes of a publish, in Jepsen's terms.
const (
	// OutcomeOK: acknowledged with an (epoch, seq).
	OutcomeOK Outcome = iota + 1
	// OutcomeFailed: a definite refusal (a 4xx other than 408 and 429, a
	// WebSocket error frame that is not unavailable or internal, or a
	// connection that could not be made before sending): it must never be
	// delivered.
	OutcomeFailed
	// OutcomeIndeterminate: a timeout, a lost connection, a 5xx, 408, 429
	// or unavailable: it may have been published, at most once.
	OutcomeIndeterminate
)

var outcomeNames = map[Outcome]string{OutcomeOK: "ok", OutcomeFailed: "failed", OutcomeIndeterminate: "indeterminate"}

func (o Outcome) String() string {
	if s, ok := outcomeNames[o]; ok {
		return s
	}
	return "outcome_" + strconv.Itoa(int(o))
}

// MarshalText implements encoding.TextMarshaler.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *Outcome) UnmarshalText(b []byte) error {
	for k, v := range outcomeNames {
		if v == string(b) {
			*o = k
			return nil
		}
	}
	return fmt.Errorf("nemesis: bad outcome %q", b)
}

// Ways a message is published.
const (
	ViaHTTPKey = "http-key" // POST /v1/publish with key = the message id, retried on other nodes
	ViaHTTP    = "http"     // POST /v1/publish without key, tried once
	ViaWS      = "ws"       // a pub frame on a publisher's WebSocket, tried once
)

// Publish is one message a publisher tried to publish, and what it learnt.
type Publish struct {
	ID      MsgID   `json:"id"`
	Topic   string  `json:"topic"`
	Via     string  `json:"via"`
	Outcome Outcome `json:"outcome"`
	// Epoch and Seq: where it landed, when acknowledged.
	Epoch string `json:"epoch,omitempty"`
	Seq   uint64 `json:"seq,omitempty"`
	// Start and End: since the start of the run.
	Start time.Duration `json:"start"`
	End   time.Duration `json:"end"`
	// Node answered it (or was tried last); -1 when none was reached.
	Node     int    `json:"node"`
	Attempts int    `json:"attempts"`
	Err      string `json:"err,omitempty"`
}

// EventKind says what a subscriber's Event records.
type EventKind uint8

// Kinds of Event.
const (
	// EvConnect: connection Conn of the subscriber is up, on Node.
	EvConnect EventKind = iota + 1
	// EvOK: the server answered a sub of Topic: Epoch and Seq are the head,
	// Recovered says whether the gap since the position sent was filled.
	EvOK
	// EvMsg: a delivery of Topic (Epoch, Seq) carrying message ID.
	EvMsg
	// EvReset: the server announced a new position (Epoch, Seq) for Topic.
	EvReset
	// EvGap: the Go SDK reported a gap after (Epoch, Seq) of Topic (raw
	// clients never record it; the checker judges the messages instead).
	EvGap
	// EvError: an error frame; Text holds it.
	EvError
	// EvClose: connection Conn ended; Code is the WebSocket close code (0
	// when the connection broke without one, -1 when the subscriber closed
	// it), Text the error.
	EvClose
)

var eventNames = map[EventKind]string{
	EvConnect: "connect", EvOK: "ok", EvMsg: "msg", EvReset: "reset", EvGap: "gap", EvError: "error", EvClose: "close",
}

func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return "event_" + strconv.Itoa(int(k))
}

// MarshalText implements encoding.TextMarshaler.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *EventKind) UnmarshalText(b []byte) error {
	for kk, v := range eventNames {
		if v == string(b) {
			*k = kk
			return nil
		}
	}
	return fmt.Errorf("nemesis: bad event kind %q", b)
}

// Recovered is the recovered field of an ok frame, which may be absent.
type Recovered int8

// Values of Recovered.
const (
	RecAbsent Recovered = iota // no since was sent (or the SDK did not say)
	RecFalse
	RecTrue
)

func (r Recovered) String() string {
	switch r {
	case RecFalse:
		return "false"
	case RecTrue:
		return "true"
	}
	return "absent"
}

// MarshalText implements encoding.TextMarshaler.
func (r Recovered) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Recovered) UnmarshalText(b []byte) error {
	switch string(b) {
	case "false":
		*r = RecFalse
	case "true":
		*r = RecTrue
	case "absent", "":
		*r = RecAbsent
	default:
		return fmt.Errorf("nemesis: bad recovered %q", b)
	}
	return nil
}

// Event is one thing a subscriber saw, in the order it saw them.
type Event struct {
	At        time.Duration `json:"at"`
	Kind      EventKind     `json:"kind"`
	Sub       int           `json:"sub"`
	Conn      int           `json:"conn,omitempty"`
	Node      int           `json:"node"`
	Topic     string        `json:"topic,omitempty"`
	Epoch     string        `json:"epoch,omitempty"`
	Seq       uint64        `json:"seq,omitempty"`
	ID        MsgID         `json:"id,omitzero"`
	Recovered Recovered     `json:"recovered,omitzero"`
	Code      int           `json:"code,omitempty"`
	Text      string        `json:"text,omitempty"`
}

// Subscriber describes one subscribing client of a run.
type Subscriber struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	SDK   bool   `json:"sdk,omitempty"`
	// Home is the node it connects to first.
	Home   int      `json:"home"`
	Topics []string `json:"topics"`
}

// Fault is one fault the nemesis injected.
type Fault struct {
	Index int    `json:"index"`
	Kind  string `json:"kind"`
	Desc  string `json:"desc"`
	// Nodes are the affected nodes (whose subscribers the recovery time
	// watches).
	Nodes []int `json:"nodes"`
	// Start is the injection, End the heal (since the start of the run).
	Start time.Duration `json:"start"`
	End   time.Duration `json:"end"`
}

// Pos is a position in a topic.
type Pos struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.Epoch, p.Seq) }

// Mode values of History.
const (
	ModeRedis  = "redis"
	ModeMemory = "memory"
)

// History is everything a run recorded: what publishers sent and learnt,
// what every subscriber saw, the faults, and the topics' final heads. The
// checker judges it; a failed run writes it as JSON lines.
type History struct {
	Name       string        `json:"name"`
	Mode       string        `json:"mode"`       // ModeRedis or ModeMemory
	Membership string        `json:"membership"` // static or etcd
	Seed       uint64        `json:"seed"`
	Nodes      []string      `json:"nodes"`
	Topics     []string      `json:"topics"`
	Started    time.Time     `json:"started"`
	Duration   time.Duration `json:"duration"`
	// Heads are the topics' (epoch, head) at the end (the answer most
	// nodes gave), asked once the publishers had stopped and while the
	// subscribers still ran: what each of them should have reached. A topic
	// no node answered is missing.
	Heads map[string]Pos `json:"heads"`
	// HeadsAfter are the same once the subscribers had stopped; a topic
	// whose head moved meanwhile got a late publish (reported, not judged).
	HeadsAfter map[string]Pos `json:"heads_after,omitempty"`
	// NodeHeads holds each node's own answer (node name, then topic);
	// nodes that disagree at the end have diverged.
	NodeHeads map[string]map[string]Pos `json:"node_heads,omitempty"`
	// NodeNotes says, per node, what the harness saw of it at the end
	// (members it sees, readiness).
	NodeNotes map[string]string `json:"node_notes,omitempty"`

	Subscribers []Subscriber `json:"-"`
	Publishes   []Publish    `json:"-"`
	Events      []Event      `json:"-"`
	Faults      []Fault      `json:"-"`
}

// NodeName names node i, or "-".
func (h *History) NodeName(i int) string {
	if i >= 0 && i < len(h.Nodes) {
		return h.Nodes[i]
	}
	return "-"
}

// jsonLine is one line of a history file: exactly one field is set.
type jsonLine struct {
	Run   *History    `json:"run,omitempty"`
	Sub   *Subscriber `json:"sub,omitempty"`
	Fault *Fault      `json:"fault,omitempty"`
	Pub   *Publish    `json:"pub,omitempty"`
	Event *Event      `json:"ev,omitempty"`
}

// WriteJSONL writes h as JSON lines: the run, then subscribers, faults,
// publishes and events.
func (h *History) WriteJSONL(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(jsonLine{Run: h}); err != nil {
		return err
	}
	for i := range h.Subscribers {
		if err := enc.Encode(jsonLine{Sub: &h.Subscribers[i]}); err != nil {
			return err
		}
	}
	for i := range h.Faults {
		if err := enc.Encode(jsonLine{Fault: &h.Faults[i]}); err != nil {
			return err
		}
	}
	for i := range h.Publishes {
		if err := enc.Encode(jsonLine{Pub: &h.Publishes[i]}); err != nil {
			return err
		}
	}
	for i := range h.Events {
		if err := enc.Encode(jsonLine{Event: &h.Events[i]}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadJSONL reads what WriteJSONL wrote.
func ReadJSONL(r io.Reader) (*History, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 16<<20)
	var h *History
	for line := 1; sc.Scan(); line++ {
		var l jsonLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("nemesis: history line %d: %w", line, err)
		}
		if l.Run != nil {
			h = l.Run
			continue
		}
		if h == nil {
			return nil, fmt.Errorf("nemesis: history line %d comes before the run line", line)
		}
		switch {
		case l.Sub != nil:
			h.Subscribers = append(h.Subscribers, *l.Sub)
		case l.Fault != nil:
			h.Faults = append(h.Faults, *l.Fault)
		case l.Pub != nil:
			h.Publishes = append(h.Publishes, *l.Pub)
		case l.Event != nil:
			h.Events = append(h.Events, *l.Event)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("nemesis: empty history")
	}
	return h, nil
}
