package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport/auth"
)

// Namespace is a topic pattern with options (PROTOCOL.md 1.1, "Namespaces"):
// the first namespace whose pattern matches a topic decides for it, and a
// topic that matches none gets the node's defaults. A nil pointer field
// (or zero size) means the node's setting.
type Namespace struct {
	// Pattern is a topic name, or a prefix followed by "*" (as in tokens).
	Pattern string `json:"pattern"`
	// HistorySize is how many messages a topic keeps; 0 means the node's
	// --history-size, negative keeps none.
	HistorySize int `json:"history_size,omitempty"`
	// HistoryTTL is how long a message is kept; 0 means the node's.
	HistoryTTL time.Duration `json:"history_ttl,omitempty"`
	// MaxMessage bounds a message's data in bytes; 0 means the node's.
	MaxMessage int `json:"max_message,omitempty"`
	// Latest, Delta and Datagram allow those subscription options
	// (default true); ClientPublish allows clients' pub (default true).
	Latest        *bool `json:"latest,omitempty"`
	Delta         *bool `json:"delta,omitempty"`
	Datagram      *bool `json:"datagram,omitempty"`
	ClientPublish *bool `json:"client_publish,omitempty"`
	// Presence allows enter, leave and presence (default false);
	// JoinLeave allows subscriptions with "presence":true, which get the
	// join, update and leave events (default false).
	Presence  bool `json:"presence,omitempty"`
	JoinLeave bool `json:"join_leave,omitempty"`
}

// Namespaces are a node's namespaces, in order. The zero value has none.
// They are read-only once the node runs.
type Namespaces []Namespace

// Validate checks every pattern and option.
func (ns Namespaces) Validate() error {
	var errs []error
	for i, n := range ns {
		if err := auth.ValidatePattern(n.Pattern); err != nil || n.Pattern == "" {
			errs = append(errs, fmt.Errorf("namespace %d: pattern %q is not a topic name or a prefix followed by \"*\"", i+1, n.Pattern))
		}
		if n.HistoryTTL < 0 {
			errs = append(errs, fmt.Errorf("namespace %d (%s): history_ttl must be positive", i+1, n.Pattern))
		}
		if n.MaxMessage < 0 {
			errs = append(errs, fmt.Errorf("namespace %d (%s): max_message must be positive", i+1, n.Pattern))
		}
	}
	return errors.Join(errs...)
}

// For returns the namespace of topic, or nil when none matches.
func (ns Namespaces) For(topic string) *Namespace {
	for i := range ns {
		if auth.Match(ns[i].Pattern, topic) {
			return &ns[i]
		}
	}
	return nil
}

// MaxMessage returns the largest max_message of ns, at least def: the bound
// a decoder applies before it knows the topic.
func (ns Namespaces) MaxMessage(def int) int {
	m := def
	for _, n := range ns {
		m = max(m, n.MaxMessage)
	}
	return m
}

// allowed is what a *bool option says, true when unset.
func allowed(b *bool) bool { return b == nil || *b }

// checkSub returns the error that answers cmd, a sub, when topic's
// namespace forbids one of its options, or nil.
func (ns Namespaces) checkSub(cmd *wire.Command) *wire.Error {
	n := ns.For(cmd.Topic)
	if n == nil {
		return nil
	}
	forbid := func(what string) *wire.Error {
		return &wire.Error{Code: wire.CodeBadRequest, ID: cmd.ID,
			Message: fmt.Sprintf("the namespace %s does not allow %s", n.Pattern, what)}
	}
	switch {
	case cmd.Latest && !allowed(n.Latest):
		return forbid(`"mode":"latest"`)
	case cmd.Delta && !allowed(n.Delta):
		return forbid(`"delta"`)
	case cmd.Datagram && !allowed(n.Datagram):
		return forbid(`"delivery":"datagram"`)
	}
	return nil
}

// CheckPresence returns the error that answers cmd (enter, leave,
// presence, or a sub with "presence":true) when topic's namespace does not
// allow presence, or nil. Presence is off unless a namespace turns it on.
func (ns Namespaces) CheckPresence(cmd *wire.Command) *wire.Error {
	n := ns.For(cmd.Topic)
	what, ok := cmd.Op, n != nil && n.Presence
	if cmd.Op == wire.OpSub {
		what, ok = `"presence":true`, n != nil && n.JoinLeave
	}
	if ok {
		return nil
	}
	msg := fmt.Sprintf("topic %s is in no namespace that allows %s (presence is off by default)", cmd.Topic, what)
	if n != nil {
		msg = fmt.Sprintf("the namespace %s does not allow %s", n.Pattern, what)
	}
	return &wire.Error{Code: wire.CodeBadRequest, ID: cmd.ID, Message: msg}
}

// CheckPublish returns the error that refuses data published to topic,
// or nil: data over the max_message of the topic's namespace, or over
// maxMessage (the node's) when the namespace sets none. The decoders of
// frames and bodies allow the largest of all (MaxMessage) before they know
// the topic.
func (ns Namespaces) CheckPublish(topic string, data []byte, maxMessage int) *wire.Error {
	limit, name := maxMessage, "the node's --max-message"
	if n := ns.For(topic); n != nil && n.MaxMessage > 0 {
		limit, name = n.MaxMessage, "max_message of the namespace "+n.Pattern
	}
	if len(data) > limit {
		return &wire.Error{Code: wire.CodeTooLarge, Topic: topic,
			Message: fmt.Sprintf("data is %d bytes, over the %s (%d)", len(data), name, limit)}
	}
	return nil
}

// clientPublish reports whether clients may pub to topic.
func (ns Namespaces) clientPublish(topic string) (bool, *Namespace) {
	n := ns.For(topic)
	return n == nil || allowed(n.ClientPublish), n
}

// forTopic returns c with topic's namespace's history options in place of
// the node's.
func (c TopicConfig) forTopic(topic string) TopicConfig {
	n := c.Namespaces.For(topic)
	if n == nil {
		return c
	}
	if n.HistorySize != 0 {
		c.HistorySize = n.HistorySize
	}
	if n.HistoryTTL != 0 {
		c.HistoryTTL = n.HistoryTTL
	}
	return c
}
