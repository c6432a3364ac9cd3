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
	if items, batch, ok := decodeFastPublish(body, maxData, allowSystem); ok {
		return items, batch, nil
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
	} else {
		raws = []rawPublishItem{raw.rawPublishItem}
	}
	items = make([]PublishItem, len(raws))
	for i, r := range raws {
		if r.Topic != nil { // a missing topic is an empty one: "topic is missing"
			items[i].Topic = *r.Topic
		}
		items[i].Data, items[i].Key = r.Data, r.Key
	}
	if err := CheckPublishItems(items, batch, maxData, allowSystem); err != nil {
		return nil, batch, err
	}
	return items, batch, nil
}

// CheckPublishItems validates the messages of one publish with
// CheckPublishItem and compacts their data in place. For a batch (at most
// MaxBatch, checked too) the first bad message decides the error, whose
// message starts with "messages[i]: ".
func CheckPublishItems(items []PublishItem, batch bool, maxData int, allowSystem bool) error {
	if batch {
		if err := CheckBatchLen(len(items)); err != nil {
			return err
		}
	}
	for i := range items {
		item, err := CheckPublishItem(items[i], maxData, allowSystem)
		if err != nil {
			if !batch {
				return err
			}
			e := err.(*Error)
			return Errorf(e.Code, "messages[%d]: %s", i, e.Message)
		}
		items[i] = item
	}
	return nil
}

// CheckPublishItem validates one message to publish, given as values (the
// gRPC API) or read from a publish body, and returns it with its data
// compacted. It is the one check of every publish API: a *Error with
// CodeBadRequest (bad topic, data not JSON, key too long), CodeForbidden
// (a sys: topic unless allowSystem) or CodeTooLarge (data over maxData).
func CheckPublishItem(it PublishItem, maxData int, allowSystem bool) (PublishItem, error) {
	if err := ValidateTopic(it.Topic); err != nil {
		return PublishItem{}, err
	}
	if !allowSystem && IsSystemTopic(it.Topic) {
		return PublishItem{}, Errorf(CodeForbidden, "only the server publishes to %s topics", SystemPrefix)
	}
	if len(it.Data) == 0 {
		return PublishItem{}, Errorf(CodeBadRequest, "data is missing")
	}
	data, err := CompactData(it.Data, maxData)
	if err != nil {
		return PublishItem{}, err
	}
	if len(it.Key) > MaxKeyLen {
		return PublishItem{}, Errorf(CodeBadRequest, "key is longer than %d bytes", MaxKeyLen)
	}
	return PublishItem{Topic: it.Topic, Data: data, Key: it.Key}, nil
}

// CheckBatchLen checks the number of messages of a batch, as
// DecodePublishBody does for "messages".
func CheckBatchLen(n int) error {
	if n == 0 {
		return Errorf(CodeBadRequest, "messages is empty")
	}
	if n > MaxBatch {
		return Errorf(CodeBadRequest, "a batch holds at most %d messages", MaxBatch)
	}
	return nil
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
