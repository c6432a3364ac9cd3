package transport

import (
	"net/http"
	"slices"
	"strings"

	"github.com/topicast/topicast/sdk/wire"
)

// HTTP helpers shared by the adapters that serve plain HTTP requests (SSE,
// polling, the publish API), so they read requests and answer errors alike.

// RequestToken returns the client's token from ?token= or
// "Authorization: Bearer <token>", or "".
func RequestToken(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	t, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return t
}

// CheckTopicRequest checks what a streaming or polling request needs before
// anything else: an allowed Origin (checkOrigin may be nil), a valid topic=
// list of at most maxTopics, and the caller's authorization of those topics
// (authorize may be nil). It answers the topics, or the *wire.Error to send.
func CheckTopicRequest(r *http.Request, checkOrigin func(*http.Request) bool, maxTopics int,
	authorize func(*http.Request, []string) error) ([]string, error) {
	if r.Header.Get("Origin") != "" && checkOrigin != nil && !checkOrigin(r) {
		return nil, wire.Errorf(wire.CodeForbidden, "origin not allowed")
	}
	topics, err := RequestTopics(r.URL.Query()["topic"], maxTopics)
	if err != nil {
		return nil, err
	}
	if authorize != nil {
		if err := authorize(r, topics); err != nil {
			return nil, err
		}
	}
	return topics, nil
}

// RequestTopics validates the topic= values of a request: at least one, at
// most max, each a valid name; repeats are dropped. It answers a *wire.Error
// with CodeBadRequest.
func RequestTopics(values []string, max int) ([]string, error) {
	if len(values) == 0 {
		return nil, wire.Errorf(wire.CodeBadRequest, "topic is missing: give one or more topic= parameters")
	}
	topics := make([]string, 0, len(values))
	for _, t := range values {
		if err := wire.ValidateTopic(t); err != nil {
			return nil, err
		}
		if !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	if len(topics) > max {
		return nil, wire.Errorf(wire.CodeBadRequest, "a request takes at most %d topics, not %d", max, len(topics))
	}
	return topics, nil
}

// WriteHTTPError answers err as {"error":{"code","message"}} with its
// status; errors that are not protocol errors become "internal".
func WriteHTTPError(w http.ResponseWriter, err error) {
	e := wire.AsError(err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.Code.HTTPStatus())
	_, _ = w.Write(wire.AppendErrorBody(nil, e)) // the client may be gone
}
