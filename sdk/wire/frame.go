package wire

import (
	"bytes"
	"encoding/json"
	"math"
)

// The pieces of the server frames. The encoders (AppendMsg, AppendSubOK,
// AppendReset, AppendError...) and the parsers of this file (Kind,
// ParseHead, ParseOK, ParseError) are built from the same constants, so a
// change of a frame's shape is made in one place; frame_test.go encodes every
// kind and parses it back.
const (
	opField   = `{"op":"`
	msgKey    = opField + OpMsg + `",` // what tells a msg frame from others
	topicKey  = `"topic":"`
	msgHead   = msgKey + topicKey
	resetHead = opField + OpReset + `",` + topicKey
	okHead    = opField + OpOK + `"`
	errorHead = opField + OpError + `"`
	pingFrame = opField + OpPing + `"}`
	pongFrame = opField + OpPong + `"}`

	idSep          = `,"id":`
	epochSep       = `","epoch":"`
	seqSep         = `","seq":`
	tsSep          = `,"ts":`
	deltaSep       = `,"delta":true`
	dataSep        = `,"data":`
	okTopicSep     = `,"topic":"`
	errTopicSep    = `,"topic":`
	codeSep        = `,"code":"`
	messageSep     = `","message":`
	recoveredTrue  = `,"recovered":true`
	recoveredFalse = `,"recovered":false`
)

// FrameKind is the kind of a server frame.
type FrameKind uint8

// Kinds of server frames.
const (
	FrameOther FrameKind = iota // not a frame of this package's encoders
	FrameMsg                    // AppendMsg
	FrameReset                  // AppendReset
	FrameOK                     // AppendSubOK, AppendPubOK, AppendOK
	FrameError                  // AppendError
	FramePing                   // PingFrame
	FramePong                   // PongFrame
)

var frameKindNames = [...]string{"other", OpMsg, OpReset, OpOK, OpError, OpPing, OpPong}

// String returns the op of the kind ("msg", "ok"...), or "other".
func (k FrameKind) String() string {
	if int(k) < len(frameKindNames) {
		return frameKindNames[k]
	}
	return "other"
}

// Kind classifies a server frame made by this package's encoders by its
// head alone: it is cheap enough to call on every delivery and does not
// allocate. ParseHead, ParseOK and ParseError read the rest.
func Kind(frame []byte) FrameKind {
	if len(frame) < len(opField)+2 || string(frame[:len(opField)]) != opField {
		return FrameOther
	}
	switch frame[len(opField)] {
	case 'm':
		if IsMsg(frame) {
			return FrameMsg
		}
	case 'r':
		if hasPrefix(frame, resetHead) {
			return FrameReset
		}
	case 'o':
		if hasPrefix(frame, okHead) && len(frame) > len(okHead) &&
			(frame[len(okHead)] == ',' || frame[len(okHead)] == '}') {
			return FrameOK
		}
	case 'e':
		if hasPrefix(frame, errorHead) && len(frame) > len(errorHead) && frame[len(errorHead)] == ',' {
			return FrameError
		}
	case 'p':
		switch string(frame) {
		case pingFrame:
			return FramePing
		case pongFrame:
			return FramePong
		}
	}
	return FrameOther
}

// IsMsg reports whether Kind(frame) is FrameMsg, for the hot paths that
// only look for msg frames (it is inlined).
func IsMsg(frame []byte) bool {
	// Spelt out, not hasPrefix: against a constant of this length the
	// compiler compares with two loads instead of calling memequal.
	return len(frame) >= len(msgKey) && string(frame[:len(msgKey)]) == msgKey
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// Head is what a msg or reset frame says besides its data. Topic, Epoch and
// Data alias the frame: copy them to keep them beyond it.
type Head struct {
	// Kind is FrameMsg or FrameReset.
	Kind  FrameKind
	Topic []byte
	Epoch []byte
	Seq   uint64
	// TS is the publish time in Unix milliseconds (msg only).
	TS int64
	// Data is the message's JSON value (msg only). In a delta frame it is
	// the JSON string that holds the delta.
	Data []byte
	// Delta is set for a msg frame whose data is a fossil delta
	// (AppendDeltaMsg).
	Delta bool
}

// ParseHead parses a msg or reset frame as AppendMsg and AppendReset make
// them, and reports false for anything else. It does not allocate.
func ParseHead(frame []byte) (Head, bool) {
	// Straight-line code, not frameReader: SSE and polling parse every
	// frame they deliver.
	var h Head
	var rest []byte
	switch {
	case IsMsg(frame) && len(frame) >= len(msgHead) && string(frame[len(msgKey):len(msgHead)]) == topicKey:
		h.Kind, rest = FrameMsg, frame[len(msgHead):]
	case hasPrefix(frame, resetHead):
		h.Kind, rest = FrameReset, frame[len(resetHead):]
	default:
		return Head{}, false
	}
	var ok bool
	if h.Topic, rest, ok = cutName(rest, epochSep); !ok {
		return Head{}, false
	}
	if h.Epoch, rest, ok = cutName(rest, seqSep); !ok {
		return Head{}, false
	}
	if h.Seq, rest, ok = cutUint(rest); !ok {
		return Head{}, false
	}
	if h.Kind == FrameReset {
		return h, string(rest) == "}"
	}
	if !hasPrefix(rest, tsSep) {
		return Head{}, false
	}
	rest = rest[len(tsSep):]
	neg := len(rest) > 0 && rest[0] == '-'
	if neg {
		rest = rest[1:]
	}
	ts, rest, ok := cutUint(rest)
	switch {
	case !ok:
		return Head{}, false
	case neg && ts != 0 && ts <= 1<<63:
		h.TS = int64(-ts)
	case !neg && ts <= math.MaxInt64:
		h.TS = int64(ts)
	default:
		return Head{}, false
	}
	if hasPrefix(rest, deltaSep) {
		h.Delta, rest = true, rest[len(deltaSep):]
	}
	if !hasPrefix(rest, dataSep) {
		return Head{}, false
	}
	rest = rest[len(dataSep):]
	if len(rest) < 2 || rest[len(rest)-1] != '}' {
		return Head{}, false
	}
	h.Data = rest[:len(rest)-1]
	return h, true
}

// cutName returns what comes before the next quote of b, a topic, epoch or
// code (names need no escaping), when sep follows it, and what follows sep.
func cutName(b []byte, sep string) (name, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '"')
	if i < 0 || !hasPrefix(b[i:], sep) {
		return nil, nil, false
	}
	return b[:i:i], b[i+len(sep):], true
}

// cutUint reads the canonical decimal number (no leading zero) at the
// start of b, and returns what follows it.
func cutUint(b []byte) (n uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b); i++ {
		d := b[i] - '0'
		if d > 9 {
			break
		}
		if n > (math.MaxUint64-9)/10 && (n > math.MaxUint64/10 || uint64(d) > math.MaxUint64%10) {
			return 0, nil, false
		}
		n = n*10 + uint64(d)
	}
	if i == 0 || (i > 1 && b[0] == '0') {
		return 0, nil, false
	}
	return n, b[i:], true
}

// Reply is what an ok frame says. Topic and Epoch alias the frame: copy
// them to keep them beyond it.
type Reply struct {
	// ID is the id of the command answered, 0 if none.
	ID uint64
	// Topic, Epoch and Seq are set in the answer to a sub or a pub
	// (AppendSubOK, AppendPubOK); Topic is nil in others (AppendOK).
	Topic []byte
	Epoch []byte
	Seq   uint64
	// Recovery is whether a sub with since recovered.
	Recovery Recovery
}

// ParseOK parses an ok frame as AppendSubOK, AppendPubOK and AppendOK make
// them, and reports false for anything else. It does not allocate.
func ParseOK(frame []byte) (Reply, bool) {
	var rep Reply
	r := frameReader{b: frame}
	if !r.lit(okHead) {
		return Reply{}, false
	}
	if r.lit(idSep) {
		if rep.ID = r.uint(); rep.ID == 0 {
			return Reply{}, false
		}
	}
	if r.lit(okTopicSep) {
		rep.Topic = r.name()
		r.expect(epochSep)
		rep.Epoch = r.name()
		r.expect(seqSep)
		rep.Seq = r.uint()
		switch {
		case r.lit(recoveredTrue):
			rep.Recovery = Recovered
		case r.lit(recoveredFalse):
			rep.Recovery = NotRecovered
		}
	}
	r.expect("}")
	if !r.end() {
		return Reply{}, false
	}
	return rep, true
}

// ParseError parses an error frame as AppendError makes them, and reports
// false for anything else. An unknown code becomes CodeInternal. It
// allocates the error (errors are rare).
func ParseError(frame []byte) (*Error, bool) {
	r := frameReader{b: frame}
	if !r.lit(errorHead) {
		return nil, false
	}
	e := &Error{}
	if r.lit(idSep) {
		if e.ID = r.uint(); e.ID == 0 {
			return nil, false
		}
	}
	if r.lit(errTopicSep) {
		e.Topic = r.str()
	}
	r.expect(codeSep)
	code := r.name()
	r.expect(messageSep)
	e.Message = r.str()
	r.expect("}")
	if !r.end() {
		return nil, false
	}
	if e.Code = ParseErrorCode(string(code)); e.Code == 0 {
		e.Code = CodeInternal
	}
	return e, true
}

// frameReader reads a frame made by an encoder of this package, front to
// back. Once bad, every read returns zero values.
type frameReader struct {
	b   []byte
	bad bool
}

// lit consumes s if the frame goes on with it.
func (r *frameReader) lit(s string) bool {
	if r.bad || !hasPrefix(r.b, s) {
		return false
	}
	r.b = r.b[len(s):]
	return true
}

// expect consumes s, or makes r bad.
func (r *frameReader) expect(s string) {
	if !r.lit(s) {
		r.bad = true
	}
}

// end reports whether the frame was read whole and well.
func (r *frameReader) end() bool { return !r.bad && len(r.b) == 0 }

// name reads a topic, epoch or code: bytes up to the next quote, which it
// leaves (names need no escaping).
func (r *frameReader) name() []byte {
	if r.bad {
		return nil
	}
	i := bytes.IndexByte(r.b, '"')
	if i < 0 {
		r.bad = true
		return nil
	}
	n := r.b[:i:i]
	r.b = r.b[i:]
	return n
}

func (r *frameReader) uint() uint64 {
	if r.bad {
		return 0
	}
	n, rest, ok := cutUint(r.b)
	if !ok {
		r.bad = true
		return 0
	}
	r.b = rest
	return n
}

// str reads a JSON string as AppendString writes them.
func (r *frameReader) str() string {
	if r.bad || len(r.b) == 0 || r.b[0] != '"' {
		r.bad = true
		return ""
	}
	i := 1
	for ; i < len(r.b) && r.b[i] != '"'; i++ {
		if r.b[i] == '\\' {
			i++
		}
	}
	if i >= len(r.b) {
		r.bad = true
		return ""
	}
	var s string
	if json.Unmarshal(r.b[:i+1], &s) != nil {
		r.bad = true
		return ""
	}
	r.b = r.b[i+1:]
	return s
}

// SubCommand returns the command of a sub of topic from since (nil: no
// recovery): what DecodeCommand makes of AppendSub's frame, for adapters
// that subscribe on their client's behalf (SSE, polling) and hand the
// command to the connection without JSON in between. It answers a *Error
// with CodeBadRequest for a topic that is not valid.
func SubCommand(id uint64, topic string, since *Position) (*Command, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, &Error{Code: CodeBadRequest, Message: err.(*Error).Message, ID: id}
	}
	cmd := &Command{Op: OpSub, ID: id, Topic: topic}
	if since != nil {
		p := *since
		cmd.Since = &p
	}
	return cmd, nil
}
