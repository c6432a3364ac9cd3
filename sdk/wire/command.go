package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
)

// Ops of client and server frames.
const (
	OpHello   = "hello"
	OpSub     = "sub"
	OpUnsub   = "unsub"
	OpPub     = "pub"
	OpRefresh = "refresh"
	OpPing    = "ping"
	OpPong    = "pong"
	OpOK      = "ok"
	OpMsg     = "msg"
	OpReset   = "reset"
	OpError   = "error"

	// Presence (PROTOCOL.md 1.1). OpLeave is a client's command and, sent
	// by the server to presence subscribers, a member's event.
	OpEnter    = "enter"
	OpLeave    = "leave"
	OpPresence = "presence"
	OpJoin     = "join"
	OpUpdate   = "update"
)

// MaxPresenceInfo is the largest info of an enter, compacted, in bytes.
const MaxPresenceInfo = 1024

// DeliveryDatagram asks for live messages as WebTransport datagrams.
const DeliveryDatagram = "datagram"

// DeltaFossil asks for messages as fossil deltas of the one before, when
// smaller (PROTOCOL.md 1.1, "delta":"fossil").
const DeltaFossil = "fossil"

// ModeLatest asks for a latest-value subscription (PROTOCOL.md 1.1): when
// the client falls behind, only the newest undelivered message waits.
const ModeLatest = "latest"

// Position names a message: the epoch of its topic and its seq.
type Position struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// Command is a decoded client frame.
type Command struct {
	Op    string
	ID    uint64
	Topic string
	Token string
	// Since is set when a sub asks to recover.
	Since *Position
	// Datagram is true for a sub with "delivery":"datagram".
	Datagram bool
	// Latest is true for a sub with "mode":"latest".
	Latest bool
	// Delta is true for a sub with "delta":"fossil".
	Delta bool
	// Data is the compacted JSON value of a pub.
	Data []byte
	// Presence is true for a sub with "presence":true: the subscriber
	// also gets the topic's join, update and leave events.
	Presence bool
	// Info is the compacted JSON info of an enter; nil without one.
	Info []byte
}

type rawCommand struct {
	Op       string          `json:"op"`
	ID       json.RawMessage `json:"id"`
	Topic    string          `json:"topic"`
	Token    string          `json:"token"`
	Since    *rawPosition    `json:"since"`
	Delivery string          `json:"delivery"`
	Mode     string          `json:"mode"`
	Delta    string          `json:"delta"`
	Data     json.RawMessage `json:"data"`
	Presence bool            `json:"presence"`
	Info     json.RawMessage `json:"info"`
}

type rawPosition struct {
	Epoch *string          `json:"epoch"`
	Seq   *json.RawMessage `json:"seq"`
}

// DecodeCommand parses one client frame. A frame that cannot be used answers
// a *Error with CodeBadRequest (or CodeTooLarge for data over maxData bytes),
// carrying the frame's id when it could be read. maxData <= 0 means no limit.
func DecodeCommand(frame []byte, maxData int) (*Command, error) {
	if cmd, ok := decodeFastPub(frame, maxData); ok {
		return cmd, nil
	}
	return decodeCommandJSON(frame, maxData)
}

// decodeCommandJSON is DecodeCommand with encoding/json: every op and every
// error.
func decodeCommandJSON(frame []byte, maxData int) (*Command, error) {
	var raw rawCommand
	if err := json.Unmarshal(frame, &raw); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return nil, Errorf(CodeBadRequest, "field %q has the wrong type", typeErr.Field)
		}
		return nil, &Error{Code: CodeBadRequest, Message: "frame is not a JSON object", Err: ErrMalformed}
	}
	cmd := &Command{Op: raw.Op, Topic: raw.Topic, Token: raw.Token}
	if len(raw.ID) > 0 && !bytes.Equal(raw.ID, []byte("null")) {
		id, ok := parseUint(raw.ID)
		if !ok || id == 0 {
			return nil, Errorf(CodeBadRequest, "id must be a positive integer")
		}
		cmd.ID = id
	}
	fail := func(code ErrorCode, msg string) (*Command, error) {
		return nil, &Error{Code: code, Message: msg, ID: cmd.ID}
	}
	switch raw.Op {
	case OpHello, OpRefresh:
		if raw.Op == OpRefresh && raw.Token == "" {
			return fail(CodeBadRequest, "refresh needs a token")
		}
	case OpPing, OpPong:
	case OpSub:
		if err := ValidateTopic(raw.Topic); err != nil {
			return fail(CodeBadRequest, err.(*Error).Message)
		}
		if raw.Since != nil {
			if raw.Since.Epoch == nil || raw.Since.Seq == nil {
				return fail(CodeBadRequest, "since needs epoch and seq")
			}
			seq, ok := parseUint(*raw.Since.Seq)
			if !ok {
				return fail(CodeBadRequest, "since.seq must be an unsigned integer")
			}
			cmd.Since = &Position{Epoch: *raw.Since.Epoch, Seq: seq}
		}
		switch raw.Delivery {
		case "", "stream":
		case DeliveryDatagram:
			cmd.Datagram = true
		default:
			return fail(CodeBadRequest, `delivery must be "datagram" or absent`)
		}
		switch raw.Mode {
		case "":
		case ModeLatest:
			cmd.Latest = true
		default:
			return fail(CodeBadRequest, `mode must be "latest" or absent`)
		}
		switch raw.Delta {
		case "":
		case DeltaFossil:
			if cmd.Latest || cmd.Datagram {
				return fail(CodeBadRequest, `delta does not combine with mode "latest" or delivery "datagram"`)
			}
			cmd.Delta = true
		default:
			return fail(CodeBadRequest, `delta must be "fossil" or absent`)
		}
		cmd.Presence = raw.Presence
	case OpEnter:
		if err := ValidateTopic(raw.Topic); err != nil {
			return fail(CodeBadRequest, err.(*Error).Message)
		}
		if len(raw.Info) > 0 && !bytes.Equal(raw.Info, []byte("null")) {
			info, err := CompactData(raw.Info, MaxPresenceInfo)
			if err != nil {
				e := err.(*Error)
				return fail(e.Code, "info: "+e.Message)
			}
			cmd.Info = info
		}
	case OpLeave, OpPresence:
		if err := ValidateTopic(raw.Topic); err != nil {
			return fail(CodeBadRequest, err.(*Error).Message)
		}
	case OpUnsub:
		if err := ValidateTopic(raw.Topic); err != nil {
			return fail(CodeBadRequest, err.(*Error).Message)
		}
	case OpPub:
		if err := ValidateTopic(raw.Topic); err != nil {
			return fail(CodeBadRequest, err.(*Error).Message)
		}
		if len(raw.Data) == 0 {
			return fail(CodeBadRequest, "pub needs data")
		}
		data, err := CompactData(raw.Data, maxData)
		if err != nil {
			e := err.(*Error)
			return fail(e.Code, e.Message)
		}
		cmd.Data = data
	case "":
		return fail(CodeBadRequest, "op is missing")
	default:
		return fail(CodeBadRequest, "unknown op "+quoteShort(raw.Op))
	}
	return cmd, nil
}

// CompactData validates a JSON value and returns it compacted (insignificant
// white space removed, nothing re-ordered). It answers CodeTooLarge when the
// compacted value is longer than maxData bytes (maxData <= 0: no limit).
func CompactData(data []byte, maxData int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(data))
	if err := json.Compact(&buf, data); err != nil {
		return nil, Errorf(CodeBadRequest, "data is not valid JSON")
	}
	if maxData > 0 && buf.Len() > maxData {
		return nil, Errorf(CodeTooLarge, "data is %d bytes, over the limit of %d", buf.Len(), maxData)
	}
	return buf.Bytes(), nil
}

func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// PeekID returns the id of a client frame without decoding it, or 0: for
// answering a frame that is refused before it is parsed (rate limits). It
// reads the first "id": at the top of the object and may be fooled by a
// crafted frame, which then only gets its error without an id.
func PeekID(frame []byte) uint64 {
	i := bytes.Index(frame, []byte(`"id":`))
	if i < 0 {
		return 0
	}
	rest := bytes.TrimLeft(frame[i+len(`"id":`):], " \t")
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	id, ok := parseUint(rest[:end])
	if !ok {
		return 0
	}
	return id
}

// quoteShort quotes s for an error message, cut to 32 bytes.
func quoteShort(s string) string {
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return string(AppendString(nil, s))
}

// EachFrame calls fn with every non-empty line of msg, without its line end.
// A WebSocket message or a stream chunk may carry several frames.
func EachFrame(msg []byte, fn func(frame []byte)) {
	for len(msg) > 0 {
		i := bytes.IndexByte(msg, '\n')
		var line []byte
		if i < 0 {
			line, msg = msg, nil
		} else {
			line, msg = msg[:i], msg[i+1:]
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(bytes.TrimSpace(line)) > 0 {
			fn(line)
		}
	}
}
