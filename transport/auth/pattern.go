package auth

import (
	"errors"
	"strings"

	"github.com/topicast/topicast/sdk/wire"
)

// Patterns is a list of topic patterns; a topic is allowed when one of them
// matches it. A nil or empty list allows nothing.
type Patterns []string

// Allow reports whether one of the patterns matches topic.
func (p Patterns) Allow(topic string) bool {
	for _, pat := range p {
		if Match(pat, topic) {
			return true
		}
	}
	return false
}

// Match reports whether pattern matches topic: a pattern ending in "*"
// matches every topic that starts with what comes before the "*"; any
// other pattern matches only itself. An empty pattern matches nothing.
func Match(pattern, topic string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(topic, prefix)
	}
	return pattern != "" && pattern == topic
}

// ValidatePattern checks that p is a topic name, or a prefix of one
// followed by "*" ("*" alone matches every topic).
func ValidatePattern(p string) error {
	if p == "*" {
		return nil
	}
	name, wild := strings.CutSuffix(p, "*")
	if strings.Contains(name, "*") {
		return errors.New(`pattern "` + short(p) + `": "*" may only end a pattern`)
	}
	if wild {
		// A prefix need not be a whole topic, but must be made of topic
		// characters and leave room for one more.
		if len(name) >= wire.MaxTopicLen || wire.ValidateTopic(name) != nil {
			return errors.New(`pattern "` + short(p) + `" is not a topic prefix followed by "*"`)
		}
		return nil
	}
	if wire.ValidateTopic(p) != nil {
		return errors.New(`pattern "` + short(p) + `" is not a topic name`)
	}
	return nil
}

func short(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
