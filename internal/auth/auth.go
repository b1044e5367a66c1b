package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/chatgateway/gateway/internal/httperr"
	"github.com/chatgateway/gateway/protocol"
)

// LocalUser is the user every caller is with "-auth none".
const LocalUser = "local"

// Caller is who made a request, as the user hook names them.
type Caller struct {
	// User is the caller's user id.
	User string
	// Claims are the claims of the caller's token, for the agents' allow
	// lists; nil without a token ("-auth none"). They must not be changed.
	Claims map[string]any
}

// None returns the hook for "-auth none": every request is made by user,
// with no claims. It never fails.
func None(user string) func(*http.Request) (Caller, error) {
	return func(*http.Request) (Caller, error) { return Caller{User: user}, nil }
}

// callerKey is the context key under which WithCaller stores the caller.
type callerKey struct{}

// WithCaller returns a copy of ctx that carries c as the caller.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller stored by WithCaller (or Middleware); the
// zero Caller when ctx carries none.
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// UserFrom returns the user id of CallerFrom(ctx), or "" when ctx carries
// no caller.
func UserFrom(ctx context.Context) string {
	return CallerFrom(ctx).User
}

// Middleware asks callerFn for the caller of every request. On success the
// request goes on with the caller in its context (see CallerFrom); on
// failure it is answered by Reject and the next handler is not called.
func Middleware(callerFn func(*http.Request) (Caller, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := callerFn(r)
			if err != nil {
				Reject(w, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), c)))
		})
	}
}

// Reject answers a request whose caller could not be authenticated with
// Refusal(err): 401, "WWW-Authenticate: Bearer" and the body
// {"error":{"code":"unauthorized","message":…}}, or, for a caller that
// Throttle refused, 429 rate_limited with Retry-After.
func Reject(w http.ResponseWriter, err error) {
	pe := Refusal(err)
	if pe.Code == protocol.CodeRateLimited {
		httperr.Write(w, slog.Default(), pe) // logs nothing: pe is a *protocol.Error
		return
	}
	w.Header().Set("WWW-Authenticate", "Bearer")
	httperr.WriteJSON(w, http.StatusUnauthorized, httperr.Body{Error: pe})
}

// Refusal is the wire error that Reject answers err with: err's own when
// it is an unauthorized *protocol.Error (whose messages are safe to show)
// or a rate_limited one (Throttle's); for any other error a generic
// unauthorized one, so that nothing internal leaks.
func Refusal(err error) *protocol.Error {
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeUnauthorized && pe.Code != protocol.CodeRateLimited {
		pe = protocol.Errorf(protocol.CodeUnauthorized, "authentication failed")
	}
	return pe
}
