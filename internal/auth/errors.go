package auth

import (
	"errors"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatgateway/gateway/protocol"
)

// Reasons a token is refused that the jwt package does not name itself.
var (
	errNoToken         = errors.New("auth: missing bearer token")
	errNotBearer       = errors.New("auth: authorization header is not a bearer token")
	errTokenTooLong    = errors.New("auth: token too long")
	errAlgNotAllowed   = errors.New("auth: signing algorithm not accepted")
	errUnknownKey      = errors.New("auth: unknown signing key")
	errKeyAlgMismatch  = errors.New("auth: signing key does not fit the algorithm")
	errKeyNotAccepted  = errors.New("auth: signing key not accepted")
	errNoSubject       = errors.New("auth: token has no subject")
	errSubjectTooLong  = errors.New("auth: token subject too long")
	errSubjectNotValid = errors.New("auth: token subject is not printable UTF-8")
)

// reasons maps the causes of a refusal, most specific first, to the message
// the client sees. Messages name the failed check and never carry token
// content. The jwt package may report several failed claims at once; the
// first match wins.
var reasons = []struct {
	err error
	msg string
}{
	{errNoToken, "missing bearer token"},
	{errNotBearer, "authorization header must use the Bearer scheme"},
	{errTokenTooLong, "token too long"},
	{errAlgNotAllowed, "token signing algorithm not accepted"},
	{errUnknownKey, "token signing key unknown"},
	{errKeyAlgMismatch, "token signing key does not fit its algorithm"},
	{errKeyNotAccepted, "token signing key not accepted"},
	{errNoSubject, "token has no subject"},
	{errSubjectTooLong, "token subject too long"},
	{errSubjectNotValid, "token subject invalid"},
	{jwt.ErrTokenMalformed, "token malformed"},
	{jwt.ErrInvalidType, "token malformed"}, // a registered claim of the wrong type
	{jwt.ErrTokenSignatureInvalid, "token signature invalid"},
	{jwt.ErrTokenUnverifiable, "token cannot be verified"},
	{jwt.ErrTokenExpired, "token expired"},
	{jwt.ErrTokenNotValidYet, "token not valid yet"},
	{jwt.ErrTokenUsedBeforeIssued, "token issued in the future"},
	{jwt.ErrTokenRequiredClaimMissing, "token has no expiry"},
	{jwt.ErrTokenInvalidIssuer, "token issuer not accepted"},
	{jwt.ErrTokenInvalidAudience, "token audience not accepted"},
}

// unauthorized turns the reason a token was refused into the wire error,
// keeping err in the chain for logs and errors.Is.
func unauthorized(err error) error {
	msg := "token invalid"
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			msg = r.msg
			break
		}
	}
	return &wireError{wire: protocol.Errorf(protocol.CodeUnauthorized, "%s", msg), cause: err}
}

// wireError is a *protocol.Error for the client that still unwraps to the
// detailed cause for the gateway's own logs.
type wireError struct {
	wire  *protocol.Error
	cause error
}

// Error gives the wire message and the cause, for logs; clients get only
// the wire message (protocol.AsError finds it).
func (e *wireError) Error() string { return e.wire.Error() + " (" + e.cause.Error() + ")" }

// Unwrap lets errors.As find the *protocol.Error and errors.Is the cause.
func (e *wireError) Unwrap() []error { return []error{e.wire, e.cause} }
