package conntest

import (
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatgateway/gateway/internal/auth"
)

// Secret is an HS256 secret for test gateways that run with JWT auth.
var Secret = []byte("conntest-secret-0123456789abcdef")

// Token returns an HS256 token signed with Secret for user sub, valid
// for an hour.
func Token(t testing.TB, sub string) string {
	t.Helper()
	return TokenClaims(t, sub, nil)
}

// TokenClaims is Token with the claims of extra added (for the agents'
// allow lists, say).
func TokenClaims(t testing.TB, sub string, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	maps.Copy(claims, extra)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(Secret)
	if err != nil {
		t.Fatalf("signing a token: %v", err)
	}
	return tok
}

// JWTUser returns the user hook of the real JWT verifier accepting the
// tokens Token makes, for Config.Conn.User and Config.API.User.
func JWTUser(t testing.TB) func(*http.Request) (auth.Caller, error) {
	t.Helper()
	j, err := auth.NewJWT(Deadline(t), auth.JWTOptions{Secret: Secret, Logger: Logger(t)})
	if err != nil {
		t.Fatalf("auth.NewJWT: %v", err)
	}
	return j.Caller
}

// Bearer is the header that authenticates as user with a Token.
func Bearer(t testing.TB, user string) http.Header {
	t.Helper()
	return http.Header{"Authorization": {"Bearer " + Token(t, user)}}
}
