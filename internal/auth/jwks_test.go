package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
)

func TestParseJWKS(t *testing.T) {
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

	tests := []struct {
		name        string
		keys        []map[string]string
		wantKids    []string // the usable keys, in any order
		wantSkipped int
		wantErr     string
	}{
		{name: "RSA and EC", keys: []map[string]string{rsaJWK, ecJWK}, wantKids: []string{"r", "e"}},
		{name: "no use, no alg", keys: []map[string]string{edit(rsaJWK, "use", "", "alg", "")}, wantKids: []string{"r"}},
		{name: "no kid", keys: []map[string]string{edit(ecJWK, "kid", "")}, wantKids: []string{""}},
		{name: "padded base64", keys: []map[string]string{edit(rsaJWK, "e", "AQAB==")}, wantKids: []string{"r"}},
		{name: "symmetric key skipped", keys: []map[string]string{rsaJWK, {"kty": "oct", "kid": "o", "k": "c2VjcmV0"}}, wantKids: []string{"r"}, wantSkipped: 1},
		{name: "encryption key skipped", keys: []map[string]string{ecJWK, edit(rsaJWK, "use", "enc")}, wantKids: []string{"e"}, wantSkipped: 1},
		{name: "RSA key for RS384 skipped", keys: []map[string]string{ecJWK, edit(rsaJWK, "alg", "RS384")}, wantKids: []string{"e"}, wantSkipped: 1},
		{name: "RSA key claiming ES256 skipped", keys: []map[string]string{ecJWK, edit(rsaJWK, "alg", "ES256")}, wantKids: []string{"e"}, wantSkipped: 1},
		{name: "short RSA key skipped", keys: []map[string]string{ecJWK, edit(rsaJWK, "n", short)}, wantKids: []string{"e"}, wantSkipped: 1},
		{name: "even exponent skipped", keys: []map[string]string{ecJWK, edit(rsaJWK, "e", b64([]byte{1, 0, 0}))}, wantKids: []string{"e"}, wantSkipped: 1},
		{name: "missing modulus skipped", keys: []map[string]string{ecJWK, edit(rsaJWK, "n", "")}, wantKids: []string{"e"}, wantSkipped: 1},
		{name: "P-384 skipped", keys: []map[string]string{rsaJWK, edit(ecJWK, "crv", "P-384")}, wantKids: []string{"r"}, wantSkipped: 1},
		{name: "point off the curve skipped", keys: []map[string]string{rsaJWK, edit(ecJWK, "y", ecJWK["x"])}, wantKids: []string{"r"}, wantSkipped: 1},
		{name: "short coordinate skipped", keys: []map[string]string{rsaJWK, edit(ecJWK, "x", b64([]byte{1, 2, 3}))}, wantKids: []string{"r"}, wantSkipped: 1},
		{name: "not base64 skipped", keys: []map[string]string{rsaJWK, edit(ecJWK, "x", "!!")}, wantKids: []string{"r"}, wantSkipped: 1},
		{name: "repeated kid skipped", keys: []map[string]string{rsaJWK, edit(ecJWK, "kid", "r")}, wantKids: []string{"r"}, wantSkipped: 1},
		{name: "no usable key", keys: []map[string]string{edit(rsaJWK, "kty", "OKP")}, wantSkipped: 1, wantErr: "no usable key"},
		{name: "empty set", keys: nil, wantErr: "no usable key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(map[string]any{"keys": tt.keys})
			if err != nil {
				t.Fatal(err)
			}
			keys, skipped, err := parseJWKS(data)
			if len(skipped) != tt.wantSkipped {
				t.Errorf("skipped %v, want %d", skipped, tt.wantSkipped)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(tt.wantKids) {
				t.Errorf("%d keys, want %v", len(keys), tt.wantKids)
			}
			for _, kid := range tt.wantKids {
				pk, ok := keys[kid]
				switch {
				case !ok:
					t.Errorf("kid %q missing", kid)
				case pk.alg == "RS256" && !pk.key.(*rsa.PublicKey).Equal(&k.rsa.PublicKey),
					pk.alg == "ES256" && !pk.key.(*ecdsa.PublicKey).Equal(&k.ec.PublicKey):
					t.Errorf("kid %q decoded to a different key", kid)
				}
			}
		})
	}
}

func TestParseJWKSNotJSON(t *testing.T) {
	for _, data := range []string{"", "<html>", `{"keys":{}}`, `[1,2]`} {
		if _, _, err := parseJWKS([]byte(data)); err == nil {
			t.Errorf("parseJWKS(%q) succeeded", data)
		}
	}
}
