package wire

import (
	"encoding/json"
	"strconv"
)

// MaxKeyLen is the longest idempotency key in bytes.
const MaxKeyLen = 200

// MaxBatch is the most messages one publish body may carry.
const MaxBatch = 1000

// PublishItem is one message to publish.
type PublishItem struct {
	Topic string
	// Data is compacted JSON.
	Data []byte
	// Key makes the publish idempotent; empty for none.
	Key string
}

// PublishResult is where a published message landed.
type PublishResult struct {
	Topic string `json:"topic"`
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

type rawPublishItem struct {
	Topic *string         `json:"topic"`
	Data  json.RawMessage `json:"data"`
	Key   string          `json:"key"`
}

type rawPublishBody struct {
	rawPublishItem
	Messages *[]rawPublishItem `json:"messages"`
}

// DecodePublishBody parses the body of POST /v1/publish: one message, or a
// batch under "messages". The batch is validated whole: the first bad message
// decides the *Error (CodeBadRequest, CodeForbidden for a sys: topic,
// CodeTooLarge for data over maxData bytes). batch reports the batch form, whose
// answer is {"results":[...]}. System topics are refused unless allowSystem.
func DecodePublishBody(body []byte, maxData int, allowSystem bool) (items []PublishItem, batch bool, err error) {
	if item, ok := decodeSinglePublish(body, maxData, allowSystem); ok {
		return []PublishItem{item}, false, nil
	}
	return decodePublishBodyJSON(body, maxData, allowSystem)
}

// decodePublishBodyJSON is DecodePublishBody with encoding/json: every form
// and every error.
func decodePublishBodyJSON(body []byte, maxData int, allowSystem bool) (items []PublishItem, batch bool, err error) {
	var raw rawPublishBody
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, false, Errorf(CodeBadRequest, "body is not a JSON object of the publish form")
	}
	var raws []rawPublishItem
	if raw.Messages != nil {
		if raw.Topic != nil || len(raw.Data) > 0 {
			return nil, false, Errorf(CodeBadRequest, `give either "messages" or one "topic" and "data", not both`)
		}
		raws, batch = *raw.Messages, true
		if len(raws) == 0 {
			return nil, true, Errorf(CodeBadRequest, "messages is empty")
		}
		if len(raws) > MaxBatch {
			return nil, true, Errorf(CodeBadRequest, "a batch holds at most %d messages", MaxBatch)
		}
	} else {
		raws = []rawPublishItem{raw.rawPublishItem}
	}
	items = make([]PublishItem, len(raws))
	for i, r := range raws {
		where := ""
		if batch {
			where = "messages[" + strconv.Itoa(i) + "]: "
		}
		if r.Topic == nil {
			return nil, batch, Errorf(CodeBadRequest, "%stopic is missing", where)
		}
		if err := ValidateTopic(*r.Topic); err != nil {
			return nil, batch, Errorf(CodeBadRequest, "%s%s", where, err.(*Error).Message)
		}
		if !allowSystem && IsSystemTopic(*r.Topic) {
			return nil, batch, Errorf(CodeForbidden, "%sonly the server publishes to %s topics", where, SystemPrefix)
		}
		if len(r.Data) == 0 {
			return nil, batch, Errorf(CodeBadRequest, "%sdata is missing", where)
		}
		data, err := CompactData(r.Data, maxData)
		if err != nil {
			e := err.(*Error)
			return nil, batch, Errorf(e.Code, "%s%s", where, e.Message)
		}
		if len(r.Key) > MaxKeyLen {
			return nil, batch, Errorf(CodeBadRequest, "%skey is longer than %d bytes", where, MaxKeyLen)
		}
		items[i] = PublishItem{Topic: *r.Topic, Data: data, Key: r.Key}
	}
	return items, batch, nil
}

// ErrorBody is the JSON body of an HTTP error answer.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// AppendErrorBody appends {"error":{"code":..,"message":..}} for e.
func AppendErrorBody(dst []byte, e *Error) []byte {
	dst = append(dst, `{"error":{"code":"`...)
	dst = append(dst, e.Code.String()...)
	dst = append(dst, `","message":`...)
	dst = AppendString(dst, e.Message)
	return append(dst, `}}`...)
}

// AppendPublishResult appends r as JSON, as encoding/json writes it, without
// its reflection: the answer to every single-message publish.
func AppendPublishResult(dst []byte, r PublishResult) []byte {
	dst = append(dst, `{"topic":`...)
	dst = AppendString(dst, r.Topic)
	dst = append(dst, `,"epoch":`...)
	dst = AppendString(dst, r.Epoch)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	return append(dst, '}')
}
