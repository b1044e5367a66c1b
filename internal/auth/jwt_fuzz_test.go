package auth

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatgateway/gateway/protocol"
)

// FuzzCaller hands any Authorization header to the three verifiers of
// newVerifiers. Each must not panic, and must either name a caller the
// seeds signed for (no mutation forges a signature) or refuse with an
// unauthorized *protocol.Error whose message is one of the documented
// reasons and does not echo the token.
func FuzzCaller(f *testing.F) {
	v := newVerifiers(f)
	verifiers := []*JWT{v.both, v.jwksOnly, v.secretOnly}
	for _, j := range verifiers {
		// Not the test's log: the fuzzer refuses f.Log from its inputs.
		j.log = slog.New(slog.DiscardHandler)
	}
	k := testKeys()
	hs, rs, es := jwt.SigningMethodHS256, jwt.SigningMethodRS256, jwt.SigningMethodES256
	signed := map[string]bool{"alice": true, "bob": true, "carol": true}
	valid := sign(f, hs, testSecret, "", claimsFor("alice"))
	for _, seed := range []string{
		"Bearer " + valid,
		"Bearer " + sign(f, rs, k.rsa, "r1", claimsFor("bob")),
		"bearer " + sign(f, es, k.ec, "e1", claimsFor("carol")),
		"Bearer " + sign(f, hs, testSecret, "", with(func(c jwt.MapClaims) { c["sub"] = 42 })),
		"Bearer " + sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claimsFor("alice")),
		"Bearer " + swapPayload(valid, sign(f, hs, testSecret, "", claimsFor("mallory"))),
		"Bearer a.b.c", "Bearer ..", "Bearer ", "Basic YWxpY2U6eA==", "Bearer " + strings.Repeat("a", maxTokenBytes+1),
	} {
		f.Add(seed)
	}
	messages := map[string]bool{"token invalid": true}
	for _, r := range reasons {
		messages[r.msg] = true
	}
	f.Fuzz(func(t *testing.T, header string) {
		for _, j := range verifiers {
			r := httptest.NewRequest("GET", "/v1/ws", nil)
			r.Header["Authorization"] = []string{header}
			c, err := j.Caller(r)
			if err == nil {
				if !signed[c.User] || c.Claims["sub"] != c.User {
					t.Fatalf("caller %+v from %q", c, header)
				}
				continue
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != protocol.CodeUnauthorized || !messages[pe.Message] {
				t.Fatalf("refused with %v (%T)", err, err)
			}
			if _, token, _ := strings.Cut(header, " "); len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("the error echoes the token: %v", err)
			}
		}
	})
}
