package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/protocol"
)

// verifiers are JWTs configured the three ways the gateway can be.
type verifiers struct {
	both, jwksOnly, secretOnly *JWT
	logs                       *logBuffer
}

// newVerifiers returns verifiers whose JWKS file publishes the RSA key as
// "r1" and the EC key as "e1".
func newVerifiers(t testing.TB) verifiers {
	t.Helper()
	k := testKeys()
	path := writeFile(t, jwksOf(t, map[string]crypto.PublicKey{"r1": &k.rsa.PublicKey, "e1": &k.ec.PublicKey}))
	v := verifiers{logs: &logBuffer{}}
	log := testLogger(t, v.logs)
	for _, c := range []struct {
		dst  **JWT
		opts JWTOptions
	}{
		{&v.both, JWTOptions{Secret: testSecret, JWKS: path, Issuer: "https://issuer.test", Audience: "gateway", Leeway: 30 * time.Second}},
		{&v.jwksOnly, JWTOptions{JWKS: path}},
		{&v.secretOnly, JWTOptions{Secret: testSecret}},
	} {
		c.opts.Logger = log
		j, err := NewJWT(t.Context(), c.opts)
		if err != nil {
			t.Fatalf("NewJWT: %v", err)
		}
		*c.dst = j
	}
	return v
}

// with returns claimsFor("alice") changed by edit.
func with(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := claimsFor("alice")
	edit(c)
	return c
}

// wantUnauthorized checks that err is an unauthorized *protocol.Error with
// message msg that does not echo token.
func wantUnauthorized(t *testing.T, err error, msg, token string) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *protocol.Error", err)
	}
	if pe.Code != protocol.CodeUnauthorized || pe.Message != msg {
		t.Errorf("err = %q/%q, want unauthorized/%q", pe.Code, pe.Message, msg)
	}
	if token != "" && strings.Contains(err.Error(), token) {
		t.Errorf("the error echoes the token: %v", err)
	}
}

func TestJWTVerify(t *testing.T) {
	v := newVerifiers(t)
	k := testKeys()
	hs, rs, es := jwt.SigningMethodHS256, jwt.SigningMethodRS256, jwt.SigningMethodES256
	now := time.Now()
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&k.rsa.PublicKey))})
	valid := sign(t, hs, testSecret, "", claimsFor("alice"))

	tests := []struct {
		name    string
		v       *JWT
		token   string
		want    string // the user, or else
		wantMsg string // the refusal
	}{
		{name: "HS256", v: v.both, token: valid, want: "alice"},
		{name: "RS256 by kid", v: v.both, token: sign(t, rs, k.rsa, "r1", claimsFor("bob")), want: "bob"},
		{name: "ES256 by kid", v: v.both, token: sign(t, es, k.ec, "e1", claimsFor("carol")), want: "carol"},
		{name: "RS256 without iss and aud checks", v: v.jwksOnly, token: sign(t, rs, k.rsa, "r1", with(func(c jwt.MapClaims) { delete(c, "iss"); delete(c, "aud") })), want: "alice"},
		{name: "audience in a list", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { c["aud"] = []string{"other", "gateway"} })), want: "alice"},
		{name: "expired within leeway", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() })), want: "alice"},
		{name: "subject of 128 bytes", v: v.both, token: sign(t, hs, testSecret, "", claimsFor(strings.Repeat("s", 128))), want: strings.Repeat("s", 128)},

		{name: "expired", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), wantMsg: "token expired"},
		{name: "no expiry", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { delete(c, "exp") })), wantMsg: "token has no expiry"},
		{name: "not yet valid", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), wantMsg: "token not valid yet"},
		{name: "issued in the future", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() })), wantMsg: "token issued in the future"},
		{name: "wrong issuer", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), wantMsg: "token issuer not accepted"},
		{name: "no issuer", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { delete(c, "iss") })), wantMsg: "token issuer not accepted"},
		{name: "wrong audience", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { c["aud"] = "other" })), wantMsg: "token audience not accepted"},
		{name: "no audience", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { delete(c, "aud") })), wantMsg: "token audience not accepted"},
		{name: "no subject", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { delete(c, "sub") })), wantMsg: "token has no subject"},
		{name: "subject too long", v: v.both, token: sign(t, hs, testSecret, "", claimsFor(strings.Repeat("s", 129))), wantMsg: "token subject too long"},
		{name: "subject with a control character", v: v.both, token: sign(t, hs, testSecret, "", claimsFor("al\nice")), wantMsg: "token subject invalid"},

		{name: "HS256 with another secret", v: v.both, token: sign(t, hs, []byte("another secret, also 32 bytes long"), "", claimsFor("alice")), wantMsg: "token signature invalid"},
		{name: "RS256 by another key", v: v.both, token: sign(t, rs, k.rsa2, "r1", claimsFor("alice")), wantMsg: "token signature invalid"},
		{name: "payload changed after signing", v: v.both, token: swapPayload(valid, sign(t, hs, testSecret, "", claimsFor("mallory"))), wantMsg: "token signature invalid"},
		{name: "alg none", v: v.both, token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claimsFor("alice")), wantMsg: "token signing algorithm not accepted"},
		{name: "HS256 signed with the RSA public key, no secret", v: v.jwksOnly, token: sign(t, hs, pubPEM, "r1", claimsFor("alice")), wantMsg: "token signing algorithm not accepted"},
		{name: "HS256 signed with the RSA public key, with a secret", v: v.both, token: sign(t, hs, pubPEM, "r1", claimsFor("alice")), wantMsg: "token signature invalid"},
		{name: "RS256 without a JWKS", v: v.secretOnly, token: sign(t, rs, k.rsa, "r1", claimsFor("alice")), wantMsg: "token signing algorithm not accepted"},
		{name: "RS384", v: v.both, token: sign(t, jwt.SigningMethodRS384, k.rsa, "r1", claimsFor("alice")), wantMsg: "token signing algorithm not accepted"},
		{name: "RS256 naming the EC key", v: v.both, token: sign(t, rs, k.rsa, "e1", claimsFor("alice")), wantMsg: "token signing key does not fit its algorithm"},
		{name: "unknown kid", v: v.both, token: sign(t, es, k.ec, "nobody", claimsFor("alice")), wantMsg: "token signing key unknown"},
		{name: "no kid, the one ES256 key", v: v.both, token: sign(t, es, k.ec, "", claimsFor("dave")), want: "dave"},
		{name: "no kid, the wrong key", v: v.both, token: sign(t, es, must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)), "", claimsFor("alice")), wantMsg: "token signature invalid"},
		{name: "subject not a string", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { c["sub"] = 42 })), wantMsg: "token malformed"},
		{name: "expiry not a number", v: v.both, token: sign(t, hs, testSecret, "", with(func(c jwt.MapClaims) { c["exp"] = "soon" })), wantMsg: "token malformed"},
		{name: "two segments", v: v.both, token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0", wantMsg: "token malformed"},
		{name: "not base64", v: v.both, token: "a!.b!.c!", wantMsg: "token malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/ws", nil)
			r.Header.Set("Authorization", "Bearer "+tt.token)
			wantUser(t, tt.v, r, tt.want, tt.wantMsg, tt.token)
		})
	}
	logs := v.logs.String()
	for _, tt := range tests {
		if strings.Contains(logs, tt.token) {
			t.Errorf("%s: the token was logged", tt.name)
		}
	}
}

// wantUser checks that j names the caller of r want, or refuses r with
// wantMsg without echoing token.
func wantUser(t *testing.T, j *JWT, r *http.Request, want, wantMsg, token string) {
	t.Helper()
	c, err := j.Caller(r)
	if wantMsg != "" {
		wantUnauthorized(t, err, wantMsg, token)
		return
	}
	if err != nil || c.User != want || c.Claims["sub"] != want {
		t.Fatalf("Caller = %+v, %v; want %q", c, err, want)
	}
}

// swapPayload returns token with the payload of other: a valid signature
// over different claims.
func swapPayload(token, other string) string {
	p := strings.Split(token, ".")
	p[1] = strings.Split(other, ".")[1]
	return strings.Join(p, ".")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestJWTUserFindsToken(t *testing.T) {
	v := newVerifiers(t)
	alice := sign(t, jwt.SigningMethodHS256, testSecret, "", claimsFor("alice"))
	bob := sign(t, jwt.SigningMethodHS256, testSecret, "", claimsFor("bob"))
	tests := []struct {
		name          string
		header, query string
		want          string
		wantMsg       string
	}{
		{name: "header", header: "Bearer " + alice, want: "alice"},
		{name: "scheme in lower case", header: "bearer " + alice, want: "alice"},
		{name: "query parameter", query: alice, want: "alice"},
		{name: "header preferred over query", header: "Bearer " + alice, query: bob, want: "alice"},
		{name: "bad header not rescued by query", header: "Bearer x.y.z", query: bob, wantMsg: "token malformed"},
		{name: "missing", wantMsg: "missing bearer token"},
		{name: "empty bearer", header: "Bearer ", wantMsg: "missing bearer token"},
		{name: "basic scheme", header: "Basic YWxpY2U6cHc=", query: bob, wantMsg: "authorization header must use the Bearer scheme"},
		{name: "too long", query: strings.Repeat("a", maxTokenBytes+1), wantMsg: "token too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/ws?token="+tt.query, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			wantUser(t, v.both, r, tt.want, tt.wantMsg, tt.query)
		})
	}
}

func TestNewJWTRefuses(t *testing.T) {
	noUsableKey := writeFile(t, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	tests := []struct {
		name string
		opts JWTOptions
		want string
	}{
		{"nothing to verify with", JWTOptions{}, "needs a secret or a JWKS"},
		{"short secret", JWTOptions{Secret: testSecret[:31]}, "at least 32"},
		{"missing JWKS file", JWTOptions{JWKS: t.TempDir() + "/absent.json"}, "no such file"},
		{"JWKS without a usable key", JWTOptions{JWKS: noUsableKey}, "no usable key"},
		{"JWKS that is not JSON", JWTOptions{JWKS: writeFile(t, []byte("<html>"))}, "invalid character"},
		{"secret fine but JWKS broken", JWTOptions{Secret: testSecret, JWKS: noUsableKey}, "no usable key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger = testLogger(t, nil)
			j, err := NewJWT(t.Context(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewJWT = %v, %v; want an error containing %q", j, err, tt.want)
			}
		})
	}
}

// TestCallerClaims checks that the caller carries the token's claims as
// written: lists as lists, numbers as json.Number, for the agents' allow
// lists to compare.
func TestCallerClaims(t *testing.T) {
	v := newVerifiers(t)
	token := sign(t, jwt.SigningMethodHS256, testSecret, "", with(func(c jwt.MapClaims) {
		c["cognito:groups"] = []string{"sales", "support"}
		c["level"] = 3
	}))
	r := httptest.NewRequest("GET", "/v1/ws?token="+token, nil)
	c, err := v.both.Caller(r)
	if err != nil {
		t.Fatal(err)
	}
	groups, _ := c.Claims["cognito:groups"].([]any)
	if c.User != "alice" || len(groups) != 2 || groups[1] != "support" || c.Claims["level"] != json.Number("3") {
		t.Errorf("caller %+v", c)
	}
}

// TestJWTRefusalLogIsCut checks that a refused token's log line stays a
// few hundred bytes long when its header names a long algorithm or key
// id, which the refusal's cause quotes: a token takes up to
// maxTokenBytes.
func TestJWTRefusalLogIsCut(t *testing.T) {
	v := newVerifiers(t)
	k := testKeys()
	long := strings.Repeat("x", 5000)
	rs := jwt.SigningMethodRS256
	for _, tt := range []struct{ name, token, wantMsg string }{
		{"long alg", unsigned(t, map[string]any{"alg": long, "typ": "JWT"}), "token signing algorithm not accepted"},
		{"long kid", sign(t, rs, k.rsa, long, claimsFor("alice")), "token signing key unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/ws", nil)
			r.Header.Set("Authorization", "Bearer "+tt.token)
			wantUser(t, v.both, r, "", tt.wantMsg, tt.token)
		})
	}
	for line := range strings.Lines(v.logs.String()) {
		if len(line) > 4*limits.MaxEchoBytes {
			t.Errorf("a log line of %d bytes: %.300s", len(line), line)
		}
	}
}

// unsigned returns a token with header and claimsFor("alice"), and a
// signature of one byte.
func unsigned(t *testing.T, header map[string]any) string {
	t.Helper()
	part := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return part(header) + "." + part(claimsFor("alice")) + ".AA"
}
