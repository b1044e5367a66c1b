package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestJWKSPolicy loads sets with one spoiled key each through NewJWT and
// checks which kids verify a token: our policy on top of what jwkset
// parses, and where jwkset refuses a whole set.
func TestJWKSPolicy(t *testing.T) {
	k := testKeys()
	// rsaJWK and ecJWK are good keys as JSON objects, for the cases to spoil.
	jwkOf := func(kid string, key crypto.PublicKey) map[string]string {
		var set struct{ Keys []map[string]string }
		if err := json.Unmarshal(jwksOf(t, map[string]crypto.PublicKey{kid: key}), &set); err != nil {
			t.Fatal(err)
		}
		return set.Keys[0]
	}
	rsaJWK, ecJWK := jwkOf("r", &k.rsa.PublicKey), jwkOf("e", &k.ec.PublicKey)
	edit := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for key, v := range base {
			m[key] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	b64 := base64.RawURLEncoding.EncodeToString
	short := b64(new(big.Int).Lsh(big.NewInt(1), 1023).Bytes()) // a 1024-bit modulus
	p384 := must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	p384Point := must(p384.PublicKey.Bytes())
	p384JWK := map[string]string{"kty": "EC", "kid": "e", "crv": "P-384", "x": b64(p384Point[1:49]), "y": b64(p384Point[49:])}

	// A check signs a token with the test key of alg, naming kid.
	type check struct {
		alg     string // RS256 (k.rsa) or ES256 (k.ec)
		kid     string // "" for none
		wantMsg string // "" when the token verifies
	}
	const (
		rs, es      = "RS256", "ES256"
		notAccepted = "token signing key not accepted"
		unknown     = "token signing key unknown"
	)
	tests := []struct {
		name    string
		keys    []map[string]string
		checks  []check
		wantErr string // NewJWT fails
	}{
		{name: "RSA and EC", keys: []map[string]string{rsaJWK, ecJWK},
			checks: []check{{rs, "r", ""}, {es, "e", ""}, {rs, "e", "token signing key does not fit its algorithm"}}},
		{name: "no use, no alg", keys: []map[string]string{edit(rsaJWK, "use", "", "alg", "")}, checks: []check{{rs, "r", ""}}},
		{name: "padded base64", keys: []map[string]string{edit(rsaJWK, "e", "AQAB==")}, checks: []check{{rs, "r", ""}}},
		{name: "no kid, one key", keys: []map[string]string{edit(ecJWK, "kid", "")}, checks: []check{{es, "", ""}}},
		{name: "no kid, one key of the token's algorithm", keys: []map[string]string{rsaJWK, ecJWK},
			checks: []check{{es, "", ""}, {rs, "", ""}}},
		{name: "no kid, two keys of the token's algorithm", keys: []map[string]string{rsaJWK, edit(rsaJWK, "kid", "r2")},
			checks: []check{{rs, "", unknown}, {rs, "r", ""}}},
		{name: "no kid, no key of the token's algorithm", keys: []map[string]string{ecJWK}, checks: []check{{rs, "", unknown}}},
		{name: "unknown kid", keys: []map[string]string{rsaJWK}, checks: []check{{rs, "nobody", unknown}}},
		{name: "symmetric key not used", keys: []map[string]string{rsaJWK, {"kty": "oct", "kid": "o", "k": "c2VjcmV0"}},
			checks: []check{{rs, "r", ""}, {rs, "o", notAccepted}, {es, "o", notAccepted}}},
		{name: "encryption key not used", keys: []map[string]string{ecJWK, edit(rsaJWK, "use", "enc")},
			checks: []check{{es, "e", ""}, {rs, "r", notAccepted}}},
		{name: "unknown use not used, set kept", keys: []map[string]string{ecJWK, edit(rsaJWK, "use", "wrap")},
			checks: []check{{es, "e", ""}, {rs, "r", notAccepted}}},
		{name: "RSA key for RS384 not used", keys: []map[string]string{ecJWK, edit(rsaJWK, "alg", "RS384")},
			checks: []check{{es, "e", ""}, {rs, "r", notAccepted}}},
		{name: "RSA key claiming ES256 not used", keys: []map[string]string{ecJWK, edit(rsaJWK, "alg", "ES256")},
			checks: []check{{es, "e", ""}, {rs, "r", notAccepted}, {es, "r", "token signing key does not fit its algorithm"}}},
		{name: "short RSA key not used", keys: []map[string]string{ecJWK, edit(rsaJWK, "n", short)},
			checks: []check{{es, "e", ""}, {rs, "r", notAccepted}}},
		{name: "even exponent not used", keys: []map[string]string{ecJWK, edit(rsaJWK, "e", b64([]byte{1, 0, 0}))},
			checks: []check{{es, "e", ""}, {rs, "r", notAccepted}}},
		{name: "P-384 not used", keys: []map[string]string{rsaJWK, p384JWK},
			checks: []check{{rs, "r", ""}, {es, "e", notAccepted}}},
		{name: "repeated kid: the first wins", keys: []map[string]string{rsaJWK, edit(ecJWK, "kid", "r")},
			checks: []check{{rs, "r", ""}, {es, "r", notAccepted}}},
		// Key material that does not parse fails the whole set (jwkset).
		{name: "missing modulus", keys: []map[string]string{ecJWK, edit(rsaJWK, "n", "")}, wantErr: `requires parameters "n" and "e"`},
		{name: "point off the curve", keys: []map[string]string{rsaJWK, edit(ecJWK, "y", ecJWK["x"])}, wantErr: "failed to unmarshal"},
		{name: "not base64", keys: []map[string]string{rsaJWK, edit(ecJWK, "x", "!!")}, wantErr: `parameter "x"`},
		{name: "no usable key", keys: []map[string]string{{"kty": "oct", "kid": "o", "k": "c2VjcmV0"}}, wantErr: "no usable key"},
		{name: "empty set", keys: nil, wantErr: "no usable key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(map[string]any{"keys": tt.keys})
			if err != nil {
				t.Fatal(err)
			}
			j, err := NewJWT(t.Context(), JWTOptions{JWKS: writeFile(t, data), Logger: testLogger(t, nil)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewJWT: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewJWT: %v", err)
			}
			for _, c := range tt.checks {
				t.Run(fmt.Sprintf("%s kid %q", c.alg, c.kid), func(t *testing.T) {
					method, key := jwt.SigningMethod(jwt.SigningMethodRS256), any(k.rsa)
					if c.alg == es {
						method, key = jwt.SigningMethodES256, k.ec
					}
					err := verifyToken(j, sign(t, method, key, c.kid, claimsFor("alice")))
					if c.wantMsg == "" {
						if err != nil {
							t.Fatal(err)
						}
						return
					}
					wantUnauthorized(t, err, c.wantMsg, "")
				})
			}
		})
	}
}
