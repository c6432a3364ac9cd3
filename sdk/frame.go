package sdk

import (
	"encoding/json"
	"strconv"

	"github.com/topicast/topicast/sdk/wire"
)

// serverFrame is a decoded server frame; each op uses some of the fields.
type serverFrame struct {
	Op        string `json:"op"`
	ID        uint64 `json:"id"`
	Topic     string `json:"topic"`
	Epoch     string `json:"epoch"`
	Seq       uint64 `json:"seq"`
	TS        int64  `json:"ts"`
	Recovered *bool  `json:"recovered"`
	Delta     bool   `json:"delta"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	// Data is copied out of the read buffer by encoding/json.
	Data json.RawMessage `json:"data"`
	// Client, Conn and Info: the member of a join, update or leave event.
	Client string          `json:"client"`
	Conn   string          `json:"conn"`
	Info   json.RawMessage `json:"info"`
	// Count and Members: the answer to a presence command.
	Count   int           `json:"count"`
	Members []wire.Member `json:"members"`
	// raw is a copy of a msg frame, with Config.KeepFrames.
	raw []byte
}

// wireError returns the *wire.Error an error frame carries.
func (f *serverFrame) wireError() *wire.Error {
	return &wire.Error{Code: wire.ParseErrorCode(f.Code), Message: f.Message, ID: f.ID, Topic: f.Topic}
}

// appendCmdHead appends {"op":"<op>" and the id, if any.
func appendCmdHead(dst []byte, op string, id uint64) []byte {
	dst = append(dst, `{"op":"`...)
	dst = append(dst, op...)
	dst = append(dst, '"')
	if id != 0 {
		dst = append(dst, `,"id":`...)
		dst = strconv.AppendUint(dst, id, 10)
	}
	return dst
}

// appendUnsub appends an unsub frame.
func appendUnsub(dst []byte, id uint64, topic string) []byte {
	dst = appendCmdHead(dst, wire.OpUnsub, id)
	dst = append(dst, `,"topic":`...)
	dst = wire.AppendString(dst, topic)
	return append(dst, '}')
}

// appendPub appends a pub frame; data must be compacted JSON.
func appendPub(dst []byte, id uint64, topic string, data []byte) []byte {
	dst = appendCmdHead(dst, wire.OpPub, id)
	dst = append(dst, `,"topic":`...)
	dst = wire.AppendString(dst, topic)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// appendHello appends a hello frame carrying token.
func appendHello(dst []byte, token string) []byte {
	dst = appendCmdHead(dst, wire.OpHello, 0)
	dst = append(dst, `,"token":`...)
	dst = wire.AppendString(dst, token)
	return append(dst, '}')
}
