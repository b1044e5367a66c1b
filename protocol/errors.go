package protocol

import (
	"errors"
	"fmt"
)

// Error codes carried by error frames and HTTP error bodies.
const (
	CodeBadRequest   = "bad_request"
	CodeUnknownType  = "unknown_type"
	CodeTooLarge     = "too_large"
	CodeNotFound     = "not_found"
	CodeForbidden    = "forbidden"
	CodeUnauthorized = "unauthorized"
	CodeRateLimited  = "rate_limited"
	CodeBusy         = "busy"
	CodeModelError   = "model_error"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
	// CodeMethodNotAllowed and CodeUnsupportedMediaType occur only over
	// HTTP: a method the path does not serve, and a state-changing request
	// whose body is not declared as JSON.
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnsupportedMediaType = "unsupported_media_type"
)

// Error is the wire form of every failure: a stable code and a message safe
// to show a user. It is also a Go error, so the gateway's packages return it
// (wrapped or not) and the transports map it with AsError.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfterMS is set with CodeRateLimited: how long to wait before
	// the next request is allowed.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
}

// Error implements the error interface.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError finds the *Error in err's chain. Anything else becomes an
// "internal" error whose message reveals nothing; callers log err itself.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// HTTPStatus is the HTTP status that fits an error code.
func HTTPStatus(code string) int {
	switch code {
	case CodeBadRequest, CodeUnknownType:
		return 400
	case CodeUnauthorized:
		return 401
	case CodeForbidden:
		return 403
	case CodeNotFound:
		return 404
	case CodeMethodNotAllowed:
		return 405
	case CodeTooLarge:
		return 413
	case CodeUnsupportedMediaType:
		return 415
	case CodeRateLimited:
		return 429
	case CodeBusy, CodeUnavailable:
		return 503
	case CodeModelError:
		return 502
	default:
		return 500
	}
}
