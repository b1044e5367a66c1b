package auth

import (
	"context"
	"errors"
	"net/http"

	"github.com/chatgateway/gateway/internal/httperr"
	"github.com/chatgateway/gateway/protocol"
)

// LocalUser is the user every caller is with "-auth none".
const LocalUser = "local"

// None returns the hook for "-auth none": every request is made by user.
// It never fails.
func None(user string) func(*http.Request) (string, error) {
	return func(*http.Request) (string, error) { return user, nil }
}

// userKey is the context key under which WithUser stores the user id.
type userKey struct{}

// WithUser returns a copy of ctx that carries user as the caller's id.
func WithUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

// UserFrom returns the user id stored by WithUser (or Middleware), or ""
// when ctx carries none.
func UserFrom(ctx context.Context) string {
	user, _ := ctx.Value(userKey{}).(string)
	return user
}

// Middleware asks userFn for the caller of every request. On success the
// request goes on with the user id in its context (see UserFrom); on
// failure it is answered by Reject and the next handler is not called.
func Middleware(userFn func(*http.Request) (string, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, err := userFn(r)
			if err != nil {
				Reject(w, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithUser(r.Context(), user)))
		})
	}
}

// Reject answers a request whose caller could not be authenticated: 401,
// "WWW-Authenticate: Bearer" and the body
// {"error":{"code":"unauthorized","message":…}}. The message is err's when
// err is an unauthorized *protocol.Error (whose messages are safe to show);
// any other error gets a generic message so that nothing internal leaks.
func Reject(w http.ResponseWriter, err error) {
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeUnauthorized {
		pe = protocol.Errorf(protocol.CodeUnauthorized, "authentication failed")
	}
	w.Header().Set("WWW-Authenticate", "Bearer")
	httperr.WriteJSON(w, http.StatusUnauthorized, httperr.Body{Error: pe})
}
