package wire

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrorCode is the code of an error frame or an HTTP error body.
type ErrorCode uint8

// Error codes of the protocol. The zero value is not a valid code.
const (
	CodeBadRequest ErrorCode = iota + 1
	CodeUnauthorized
	CodeForbidden
	CodeTooLarge
	CodeRateLimited
	CodeUnavailable
	CodeInternal
)

var errorCodeNames = [...]string{
	CodeBadRequest:   "bad_request",
	CodeUnauthorized: "unauthorized",
	CodeForbidden:    "forbidden",
	CodeTooLarge:     "too_large",
	CodeRateLimited:  "rate_limited",
	CodeUnavailable:  "unavailable",
	CodeInternal:     "internal",
}

// String returns the code as it appears on the wire, such as "bad_request".
func (c ErrorCode) String() string {
	if int(c) < len(errorCodeNames) && errorCodeNames[c] != "" {
		return errorCodeNames[c]
	}
	return "internal"
}

// ParseErrorCode returns the code named s, or CodeInternal for an unknown name.
func ParseErrorCode(s string) ErrorCode {
	for i, n := range errorCodeNames {
		if n == s {
			return ErrorCode(i)
		}
	}
	return CodeInternal
}

// HTTPStatus returns the HTTP status that answers an error with this code.
func (c ErrorCode) HTTPStatus() int {
	switch c {
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Error is a protocol error: what an error frame or an HTTP error body carries.
// Match it with errors.As.
type Error struct {
	Code    ErrorCode
	Message string
	// ID is the id of the command the error answers, 0 if none.
	ID uint64
	// Topic is set when the error ends a subscription without a command.
	Topic string
	// Err is the cause, if any: ErrMalformed for a frame that is not JSON.
	Err error
}

// ErrMalformed is the cause of the *Error for a frame that is not a JSON
// object: the protocol closes such a connection with 4009.
var ErrMalformed = errors.New("topicast: malformed frame")

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	return "topicast: " + e.Code.String() + ": " + e.Message
}

// Errorf returns a *Error with the code and a formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as a *Error. Errors that are not protocol errors become
// CodeInternal with a generic message: their details belong in logs only.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// DisconnectCode is a WebSocket close code, and the same number as a
// WebTransport session error code.
type DisconnectCode uint16

// Close codes of the protocol.
//
// Clients reconnect (with backoff, recovering with since) after 1001, 4008
// and 4029; they must not reconnect unchanged after 1009, 4001 and 4009.
const (
	CloseNormal        DisconnectCode = 1000
	CloseGoingAway     DisconnectCode = 1001
	CloseTooLarge      DisconnectCode = 1009
	CloseUnauthorized  DisconnectCode = 4001
	CloseSlowConsumer  DisconnectCode = 4008
	CloseProtocolError DisconnectCode = 4009
	CloseRateLimited   DisconnectCode = 4029
)

// String names the code for logs and metrics.
func (c DisconnectCode) String() string {
	switch c {
	case CloseNormal:
		return "normal"
	case CloseGoingAway:
		return "going_away"
	case CloseTooLarge:
		return "too_large"
	case CloseUnauthorized:
		return "unauthorized"
	case CloseSlowConsumer:
		return "slow_consumer"
	case CloseProtocolError:
		return "protocol_error"
	case CloseRateLimited:
		return "rate_limited"
	default:
		return fmt.Sprintf("code_%d", uint16(c))
	}
}

// Reconnect reports whether a client should reconnect after this code.
func (c DisconnectCode) Reconnect() bool {
	switch c {
	case CloseTooLarge, CloseUnauthorized, CloseProtocolError:
		return false
	}
	return true
}

// ParseDisconnectCode returns the close code named name (as String names
// them), and false for a name that is not one of the protocol's codes.
func ParseDisconnectCode(name string) (DisconnectCode, bool) {
	for _, c := range [...]DisconnectCode{CloseNormal, CloseGoingAway, CloseTooLarge, CloseUnauthorized,
		CloseSlowConsumer, CloseProtocolError, CloseRateLimited} {
		if c.String() == name {
			return c, true
		}
	}
	return 0, false
}
