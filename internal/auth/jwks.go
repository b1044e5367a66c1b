package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// minRSABits is the smallest RSA modulus accepted from a JWKS.
const minRSABits = 2048

// publicKey is one verification key of a JWKS and the only algorithm it
// may verify.
type publicKey struct {
	alg string // "RS256" or "ES256"
	key any    // *rsa.PublicKey or *ecdsa.PublicKey
}

// jwk is the JSON form of one key (RFC 7517, 7518 section 6).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a JSON Web Key Set into its usable keys by kid (a key
// without a kid is stored under "" and verifies tokens without one). Keys
// it cannot use (other types or curves, encryption keys, short RSA keys, a
// repeated kid) are left out and described in skipped; a set that is not
// JSON or has no usable key at all is an error.
func parseJWKS(data []byte) (keys map[string]publicKey, skipped []error, err error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, nil, fmt.Errorf("auth: jwks: %w", err)
	}
	keys = make(map[string]publicKey, len(set.Keys))
	for _, k := range set.Keys {
		pk, err := k.publicKey()
		if err == nil {
			if _, dup := keys[k.Kid]; dup {
				err = errors.New("kid repeated")
			}
		}
		if err != nil {
			skipped = append(skipped, fmt.Errorf("auth: jwks key %q: %w", k.Kid, err))
			continue
		}
		keys[k.Kid] = pk
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("auth: jwks holds no usable key (%d keys)", len(set.Keys))
	}
	return keys, skipped, nil
}

// publicKey decodes k if it is a signing key for RS256 or ES256.
func (k jwk) publicKey() (publicKey, error) {
	if k.Use != "" && k.Use != "sig" {
		return publicKey{}, fmt.Errorf("use %q is not sig", k.Use)
	}
	var pk publicKey
	var err error
	switch k.Kty {
	case "RSA":
		pk.alg = "RS256"
		pk.key, err = k.rsaKey()
	case "EC":
		pk.alg = "ES256"
		pk.key, err = k.ecKey()
	default:
		return publicKey{}, fmt.Errorf("kty %q not supported", k.Kty)
	}
	if err != nil {
		return publicKey{}, err
	}
	if k.Alg != "" && k.Alg != pk.alg {
		return publicKey{}, fmt.Errorf("alg %q not supported for kty %s", k.Alg, k.Kty)
	}
	return pk, nil
}

func (k jwk) rsaKey() (*rsa.PublicKey, error) {
	n, err := decodeBase64URL("n", k.N)
	if err != nil {
		return nil, err
	}
	e, err := decodeBase64URL("e", k.E)
	if err != nil {
		return nil, err
	}
	key := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
	if bits := key.N.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("rsa key has %d bits, want at least %d", bits, minRSABits)
	}
	exp := new(big.Int).SetBytes(e)
	if !exp.IsInt64() || exp.Int64() < 3 || exp.Int64() > 1<<31-1 || exp.Bit(0) == 0 {
		return nil, errors.New("rsa exponent out of range")
	}
	key.E = int(exp.Int64())
	return key, nil
}

func (k jwk) ecKey() (*ecdsa.PublicKey, error) {
	if k.Crv != "P-256" {
		return nil, fmt.Errorf("crv %q not supported", k.Crv)
	}
	x, err := decodeBase64URL("x", k.X)
	if err != nil {
		return nil, err
	}
	y, err := decodeBase64URL("y", k.Y)
	if err != nil {
		return nil, err
	}
	const size = 32 // P-256 coordinates, fixed length per RFC 7518 6.2.1.2
	if len(x) != size || len(y) != size {
		return nil, errors.New("ec coordinates are not 32 bytes")
	}
	point := append(append([]byte{4}, x...), y...)
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, fmt.Errorf("ec point: %w", err)
	}
	return key, nil
}

// decodeBase64URL decodes a base64url member, tolerating the padding that
// some issuers add although RFC 7515 leaves it out.
func decodeBase64URL(name, s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("member %q is not base64url", name)
	}
	return b, nil
}
