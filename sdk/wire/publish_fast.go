package wire

// decodeFastPublish is DecodePublishBody's fast path for the common bodies:
// one message, {"topic":"t","data":<JSON>[,"key":"k"]}, or a batch of them,
// {"messages":[...]}, keys spelled exactly so, each once, in any order,
// topic and key without escapes. It answers only what it accepts (ok);
// anything else, an error included, goes to the encoding/json path, which
// owns every error message and the rarer forms (escapes, keys in other
// cases, unknown or repeated fields). FuzzDecodePublishBody checks that
// both paths agree on every body the fast one accepts.
func decodeFastPublish(body []byte, maxData int, allowSystem bool) (items []PublishItem, batch, ok bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false, false
	}
	name, next, ok := plainString(body, skipSpace(body, i+1))
	if !ok || string(name) != "messages" {
		item, end, ok := parsePublishObject(body, i, "", maxData, allowSystem)
		if !ok || skipSpace(body, end) != len(body) {
			return nil, false, false
		}
		return []PublishItem{item}, false, true
	}
	i = skipSpace(body, next)
	if i >= len(body) || body[i] != ':' {
		return nil, true, false
	}
	i = skipSpace(body, i+1)
	if i >= len(body) || body[i] != '[' {
		return nil, true, false
	}
	i = skipSpace(body, i+1)
	items = make([]PublishItem, 0, 16)
	prevTopic := ""
	for {
		item, end, ok := parsePublishObject(body, i, prevTopic, maxData, allowSystem)
		if !ok || len(items) == MaxBatch {
			return nil, true, false
		}
		items = append(items, item)
		prevTopic = item.Topic
		i = skipSpace(body, end)
		if i >= len(body) {
			return nil, true, false
		}
		if body[i] == ']' {
			break
		}
		if body[i] != ',' {
			return nil, true, false
		}
		i = skipSpace(body, i+1)
	}
	i = skipSpace(body, i+1)
	if i >= len(body) || body[i] != '}' || skipSpace(body, i+1) != len(body) {
		return nil, true, false
	}
	return items, true, true
}

// parsePublishObject reads one message object at body[i] as
// decodeFastPublish takes them, checked as CheckPublishItem checks, and
// returns it and the index after its '}'. A topic equal to prevTopic
// shares its string: a batch's messages often go to one topic.
func parsePublishObject(body []byte, i int, prevTopic string, maxData int, allowSystem bool) (PublishItem, int, bool) {
	var item PublishItem
	// A field seen is non-nil: plainString and skipValue return slices of
	// body, empty or not.
	var topic, key, data []byte
	if i >= len(body) || body[i] != '{' {
		return item, i, false
	}
	i = skipSpace(body, i+1)
	for {
		name, next, ok := plainString(body, i)
		if !ok {
			return item, i, false
		}
		i = skipSpace(body, next)
		if i >= len(body) || body[i] != ':' {
			return item, i, false
		}
		i = skipSpace(body, i+1)
		switch string(name) {
		case "topic":
			if topic != nil {
				return item, i, false
			}
			topic, i, ok = plainString(body, i)
		case "key":
			if key != nil {
				return item, i, false
			}
			key, i, ok = plainString(body, i)
		case "data":
			if data != nil {
				return item, i, false
			}
			start := i
			i, ok = skipValue(body, i)
			data = body[start:i]
		default:
			return item, i, false
		}
		if !ok {
			return item, i, false
		}
		i = skipSpace(body, i)
		if i >= len(body) {
			return item, i, false
		}
		if body[i] == '}' {
			break
		}
		if body[i] != ',' {
			return item, i, false
		}
		i = skipSpace(body, i+1)
	}
	if topic == nil || len(data) == 0 || len(key) > MaxKeyLen {
		return item, i, false
	}
	if string(topic) == prevTopic {
		item.Topic = prevTopic
	} else {
		item.Topic = string(topic)
	}
	if ValidateTopic(item.Topic) != nil || (!allowSystem && IsSystemTopic(item.Topic)) {
		return item, i, false
	}
	compact, err := CompactData(data, maxData)
	if err != nil {
		return item, i, false
	}
	item.Data, item.Key = compact, string(key)
	return item, i + 1, true
}

// decodeFastPub is DecodeCommand's fast path for the frame a publishing
// client sends most, {"op":"pub","id":N,"topic":"t","data":<JSON>}: keys
// spelled exactly so, each once, in any order, op and topic without
// escapes, id digits only (or absent). It answers only what it accepts;
// anything else, an error included, goes to encoding/json. FuzzDecodeCommand
// checks both paths agree on every frame the fast one accepts.
func decodeFastPub(frame []byte, maxData int) (*Command, bool) {
	var op, id, topic, data []byte
	i := skipSpace(frame, 0)
	if i >= len(frame) || frame[i] != '{' {
		return nil, false
	}
	i = skipSpace(frame, i+1)
	for {
		name, next, ok := plainString(frame, i)
		if !ok {
			return nil, false
		}
		i = skipSpace(frame, next)
		if i >= len(frame) || frame[i] != ':' {
			return nil, false
		}
		i = skipSpace(frame, i+1)
		var field *[]byte
		str := false // a string without escapes; else any value
		switch string(name) {
		case "op":
			field, str = &op, true
		case "topic":
			field, str = &topic, true
		case "id":
			field = &id
		case "data":
			field = &data
		default:
			return nil, false
		}
		if *field != nil {
			return nil, false
		}
		if str {
			*field, i, ok = plainString(frame, i)
		} else {
			start := i
			i, ok = skipValue(frame, i)
			*field = frame[start:i]
		}
		if !ok {
			return nil, false
		}
		i = skipSpace(frame, i)
		if i >= len(frame) {
			return nil, false
		}
		if frame[i] == '}' {
			break
		}
		if frame[i] != ',' {
			return nil, false
		}
		i = skipSpace(frame, i+1)
	}
	if skipSpace(frame, i+1) != len(frame) || string(op) != OpPub || topic == nil || len(data) == 0 {
		return nil, false
	}
	cmd := &Command{Op: OpPub, Topic: string(topic)}
	if id != nil {
		n, ok := parseUint(id)
		if !ok || n == 0 {
			return nil, false
		}
		cmd.ID = n
	}
	if ValidateTopic(cmd.Topic) != nil {
		return nil, false
	}
	compact, err := CompactData(data, maxData)
	if err != nil {
		return nil, false
	}
	cmd.Data = compact
	return cmd, true
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
