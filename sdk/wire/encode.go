package wire

import (
	"strconv"
	"unicode/utf8"
)

// Frames without variable parts. Callers must not modify them.
var (
	PingFrame = []byte(pingFrame)
	PongFrame = []byte(pongFrame)
)

// AppendMsg appends a msg frame. data must be compacted JSON (CompactData);
// topic and epoch must be valid names (no escaping is needed for them).
func AppendMsg(dst []byte, topic, epoch string, seq uint64, tsMillis int64, data []byte) []byte {
	dst = appendMsgHead(dst, topic, epoch, seq, tsMillis)
	dst = append(dst, dataSep...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// appendMsgHead appends a msg frame up to its "ts" value.
func appendMsgHead(dst []byte, topic, epoch string, seq uint64, tsMillis int64) []byte {
	dst = append(dst, msgHead...)
	dst = append(dst, topic...)
	dst = append(dst, epochSep...)
	dst = append(dst, epoch...)
	dst = append(dst, seqSep...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, tsSep...)
	return strconv.AppendInt(dst, tsMillis, 10)
}

// AppendDeltaMsg appends the msg frame of a delta subscription
// (PROTOCOL.md 1.1): "delta":true and, as data, delta (a fossil delta of
// this message's data against the previous message's) as a JSON string.
// delta must be valid UTF-8, so that the string holds its bytes as they
// are: ValidDelta tells.
func AppendDeltaMsg(dst []byte, topic, epoch string, seq uint64, tsMillis int64, delta []byte) []byte {
	dst = appendMsgHead(dst, topic, epoch, seq, tsMillis)
	dst = append(dst, deltaSep...)
	dst = append(dst, dataSep...)
	dst = AppendString(dst, string(delta))
	return append(dst, '}')
}

// ValidDelta reports whether delta can travel in a JSON string as it is
// (valid UTF-8): a fossil delta copies literal bytes of the new data, and a
// copy may cut a character in two.
func ValidDelta(delta []byte) bool { return utf8.Valid(delta) }

// MsgFrameLen returns the length AppendMsg will add, for sizing buffers.
func MsgFrameLen(topic, epoch string, seq uint64, data []byte) int {
	return 64 + len(topic) + len(epoch) + len(data)
}

// Recovery says whether a sub reply carries "recovered" and its value.
type Recovery uint8

// Values of Recovery.
const (
	RecoveryNone Recovery = iota // the sub had no since: no "recovered" field
	Recovered                    // "recovered":true
	NotRecovered                 // "recovered":false
)

// AppendSubOK appends the ok frame that answers a sub.
func AppendSubOK(dst []byte, id uint64, topic, epoch string, seq uint64, rec Recovery) []byte {
	dst = appendOKHead(dst, id)
	dst = append(dst, okTopicSep...)
	dst = append(dst, topic...)
	dst = append(dst, epochSep...)
	dst = append(dst, epoch...)
	dst = append(dst, seqSep...)
	dst = strconv.AppendUint(dst, seq, 10)
	switch rec {
	case Recovered:
		dst = append(dst, recoveredTrue...)
	case NotRecovered:
		dst = append(dst, recoveredFalse...)
	}
	return append(dst, '}')
}

// AppendPubOK appends the ok frame that answers a pub.
func AppendPubOK(dst []byte, id uint64, topic, epoch string, seq uint64) []byte {
	return AppendSubOK(dst, id, topic, epoch, seq, RecoveryNone)
}

// AppendOK appends the ok frame that answers unsub, hello and refresh.
func AppendOK(dst []byte, id uint64) []byte {
	return append(appendOKHead(dst, id), '}')
}

func appendOKHead(dst []byte, id uint64) []byte {
	dst = append(dst, okHead...)
	if id != 0 {
		dst = append(dst, idSep...)
		dst = strconv.AppendUint(dst, id, 10)
	}
	return dst
}

// AppendReset appends a reset frame: the topic continues in a new epoch.
func AppendReset(dst []byte, topic, epoch string, seq uint64) []byte {
	dst = append(dst, resetHead...)
	dst = append(dst, topic...)
	dst = append(dst, epochSep...)
	dst = append(dst, epoch...)
	dst = append(dst, seqSep...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, '}')
}

// AppendError appends an error frame for e: with "id" when e answers a
// command, with "topic" when it ends a subscription.
func AppendError(dst []byte, e *Error) []byte {
	dst = append(dst, errorHead...)
	if e.ID != 0 {
		dst = append(dst, idSep...)
		dst = strconv.AppendUint(dst, e.ID, 10)
	}
	if e.Topic != "" {
		dst = append(dst, errTopicSep...)
		dst = AppendString(dst, e.Topic)
	}
	dst = append(dst, codeSep...)
	dst = append(dst, e.Code.String()...)
	dst = append(dst, messageSep...)
	dst = AppendString(dst, e.Message)
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendSub appends a client's sub frame, with since when it is not nil.
// Adapters that subscribe on a client's behalf (SSE, polling) feed it to the
// connection actor.
func AppendSub(dst []byte, id uint64, topic string, since *Position) []byte {
	return AppendSubCommand(dst, &Command{Op: OpSub, ID: id, Topic: topic, Since: since})
}

// AppendSubCommand appends cmd, a sub, as the frame a client would send:
// its id, topic, since, delivery and mode.
func AppendSubCommand(dst []byte, cmd *Command) []byte {
	dst = append(dst, `{"op":"sub","id":`...)
	dst = strconv.AppendUint(dst, cmd.ID, 10)
	dst = append(dst, `,"topic":`...)
	dst = AppendString(dst, cmd.Topic)
	if cmd.Since != nil {
		dst = append(dst, `,"since":{"epoch":`...)
		dst = AppendString(dst, cmd.Since.Epoch)
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, cmd.Since.Seq, 10)
		dst = append(dst, '}')
	}
	if cmd.Datagram {
		dst = append(dst, `,"delivery":"`+DeliveryDatagram+`"`...)
	}
	if cmd.Latest {
		dst = append(dst, `,"mode":"`+ModeLatest+`"`...)
	}
	if cmd.Delta {
		dst = append(dst, `,"delta":"`+DeltaFossil+`"`...)
	}
	if cmd.Presence {
		dst = append(dst, `,"presence":true`...)
	}
	return append(dst, '}')
}

// AppendCloseFrame appends the frame that announces a close over a
// transport without close codes of its own (WebRTC data channels): an
// error frame with no id and no topic whose code is the close code's name,
// {"op":"error","code":"slow_consumer","message":"..."}.
func AppendCloseFrame(dst []byte, code DisconnectCode, reason string) []byte {
	dst = append(dst, errorHead...)
	dst = append(dst, codeSep...)
	dst = append(dst, code.String()...)
	dst = append(dst, messageSep...)
	dst = AppendString(dst, reason)
	return append(dst, '}')
}

// ParseCloseFrame parses a frame made by AppendCloseFrame, and reports
// false for anything else (an error that answers a command or ends a
// subscription, say).
func ParseCloseFrame(frame []byte) (code DisconnectCode, reason string, ok bool) {
	r := frameReader{b: frame}
	if !r.lit(errorHead) || !r.lit(codeSep) {
		return 0, "", false
	}
	name := r.name()
	r.expect(messageSep)
	reason = r.str()
	r.expect("}")
	if !r.end() {
		return 0, "", false
	}
	code, ok = ParseDisconnectCode(string(name))
	return code, reason, ok
}
