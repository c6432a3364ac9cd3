package wire

import "strconv"

// History is what a topic retains after a seq: the body of GET /v1/history.
type History struct {
	Topic     string
	Epoch     string
	Head      uint64
	Truncated bool
	// Frames are msg frames, oldest first.
	Frames [][]byte
}

// AppendJSON appends the JSON body of GET /v1/history.
func (h *History) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"topic":`...)
	dst = AppendString(dst, h.Topic)
	dst = append(dst, `,"epoch":`...)
	dst = AppendString(dst, h.Epoch)
	dst = append(dst, `,"head":`...)
	dst = strconv.AppendUint(dst, h.Head, 10)
	dst = append(dst, `,"truncated":`...)
	dst = strconv.AppendBool(dst, h.Truncated)
	dst = append(dst, `,"messages":[`...)
	for i, f := range h.Frames {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f...)
	}
	return append(dst, "]}"...)
}
