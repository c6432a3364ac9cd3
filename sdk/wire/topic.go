package wire

import "strings"

// MaxTopicLen is the longest topic name in bytes.
const MaxTopicLen = 200

// SystemPrefix starts the topics that only the server publishes to.
const SystemPrefix = "sys:"

// ValidateTopic checks a topic name: 1 to 200 bytes of A-Z a-z 0-9 _ - . : /.
// It answers a *Error with CodeBadRequest.
func ValidateTopic(topic string) error {
	if topic == "" {
		return Errorf(CodeBadRequest, "topic is missing")
	}
	if len(topic) > MaxTopicLen {
		return Errorf(CodeBadRequest, "topic is longer than %d bytes", MaxTopicLen)
	}
	for i := 0; i < len(topic); i++ {
		if !topicByte[topic[i]] {
			return Errorf(CodeBadRequest, "topic has a byte outside A-Z a-z 0-9 _ - . : / at offset %d", i)
		}
	}
	return nil
}

// IsSystemTopic reports whether topic belongs to the server.
func IsSystemTopic(topic string) bool { return strings.HasPrefix(topic, SystemPrefix) }

var topicByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_-.:/" {
		t[c] = true
	}
	return t
}()
