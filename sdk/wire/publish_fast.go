package wire

// decodeSinglePublish is DecodePublishBody's fast path for the common body,
// one message: {"topic":"t","data":<JSON>[,"key":"k"]}, keys spelled
// exactly so, each once, in any order, topic and key without escapes. It
// answers only what it accepts (ok); anything else, an error included, goes
// to the encoding/json path, which owns every error message and the rarer
// forms (batches, escapes, keys in other cases, unknown or repeated fields).
// FuzzDecodePublishBody checks that both paths agree on every body the fast
// one accepts.
func decodeSinglePublish(body []byte, maxData int, allowSystem bool) (PublishItem, bool) {
	var item PublishItem
	// A field seen is non-nil: plainString and skipValue return slices of
	// body, empty or not.
	var topic, key, data []byte
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return item, false
	}
	i = skipSpace(body, i+1)
	for {
		name, next, ok := plainString(body, i)
		if !ok {
			return item, false
		}
		i = skipSpace(body, next)
		if i >= len(body) || body[i] != ':' {
			return item, false
		}
		i = skipSpace(body, i+1)
		switch string(name) {
		case "topic":
			if topic != nil {
				return item, false
			}
			topic, i, ok = plainString(body, i)
		case "key":
			if key != nil {
				return item, false
			}
			key, i, ok = plainString(body, i)
		case "data":
			if data != nil {
				return item, false
			}
			start := i
			i, ok = skipValue(body, i)
			data = body[start:i]
		default:
			return item, false
		}
		if !ok {
			return item, false
		}
		i = skipSpace(body, i)
		if i >= len(body) {
			return item, false
		}
		if body[i] == '}' {
			break
		}
		if body[i] != ',' {
			return item, false
		}
		i = skipSpace(body, i+1)
	}
	if skipSpace(body, i+1) != len(body) || topic == nil || len(data) == 0 || len(key) > MaxKeyLen {
		return item, false
	}
	item.Topic = string(topic)
	if ValidateTopic(item.Topic) != nil || (!allowSystem && IsSystemTopic(item.Topic)) {
		return item, false
	}
	compact, err := CompactData(data, maxData)
	if err != nil {
		return item, false
	}
	item.Data, item.Key = compact, string(key)
	return item, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// plainString reads a JSON string at b[i] that needs no decoding: printable
// ASCII without '\' (other strings take the slow path). It returns the
// bytes between the quotes and the index after the closing one.
func plainString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return nil, i, false
		}
	}
	return nil, i, false
}

// skipValue returns the index after the JSON value at b[i]: it finds where
// the value ends without checking it, which CompactData does after.
func skipValue(b []byte, i int) (int, bool) {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			i++
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(b) {
				return len(b), false // an escape may have stepped past the end
			}
			i++ // the closing quote
			if depth == 0 {
				return i, true
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i, true // a number or literal ended with its object
			}
			depth--
			if depth == 0 {
				return i + 1, true
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i, true
			}
		}
		i++
	}
	return i, depth == 0
}
