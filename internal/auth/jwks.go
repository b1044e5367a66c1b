package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// minRSABits is the smallest RSA modulus accepted from a JWKS.
const minRSABits = 2048

// Our policy on the keys of a JWKS, applied on top of what jwkset parses:
// an RSA key of at least minRSABits verifies RS256 only, a P-256 key ES256
// only, and nothing else verifies anything (jwkset also loads P-384,
// Ed25519 and symmetric "oct" keys, which must never meet a token).

// checkKey reports why key may not verify a token signed with alg, or nil.
func checkKey(alg string, key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if alg != jwt.SigningMethodRS256.Alg() {
			return fmt.Errorf("%w: an RSA key cannot verify %s", errKeyAlgMismatch, alg)
		}
		if bits := k.N.BitLen(); bits < minRSABits {
			return fmt.Errorf("%w: rsa key has %d bits, want at least %d", errKeyNotAccepted, bits, minRSABits)
		}
		// jwkset truncates an exponent to an int; refuse the ones no
		// issuer uses rather than reason about what crypto/rsa makes of them.
		if k.E < 3 || k.E > 1<<31-1 || k.E%2 == 0 {
			return fmt.Errorf("%w: rsa exponent out of range", errKeyNotAccepted)
		}
		return nil
	case *ecdsa.PublicKey:
		if alg != jwt.SigningMethodES256.Alg() {
			return fmt.Errorf("%w: an EC key cannot verify %s", errKeyAlgMismatch, alg)
		}
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("%w: curve %s, want P-256", errKeyNotAccepted, k.Curve.Params().Name)
		}
		return nil
	default:
		return fmt.Errorf("%w: key type %T not supported", errKeyNotAccepted, key)
	}
}

// checkJWK reports why j can verify no token at all, or nil: the checks
// keyfunc makes (use, alg) and checkKey's, for the algorithm j's type
// allows. It names the keys that NewJWT logs as unusable.
func checkJWK(j jwkset.JWK) error {
	m := j.Marshal()
	if m.USE != "" && m.USE != jwkset.UseSig {
		return fmt.Errorf("%w: use %q is not sig", errKeyNotAccepted, m.USE)
	}
	var alg string
	switch j.Key().(type) {
	case *rsa.PublicKey:
		alg = jwt.SigningMethodRS256.Alg()
	case *ecdsa.PublicKey:
		alg = jwt.SigningMethodES256.Alg()
	default:
		return fmt.Errorf("%w: kty %q (%T) not supported", errKeyNotAccepted, m.KTY, j.Key())
	}
	if m.ALG != "" && m.ALG.String() != alg {
		return fmt.Errorf("%w: alg %q for kty %s", errKeyNotAccepted, m.ALG, m.KTY)
	}
	return checkKey(alg, j.Key())
}

// pickKey applies checkKey to what keyfunc found for t: the key its kid
// names or, for a token without a kid, every key whose metadata allows
// t's algorithm. A token without a kid is verified only when exactly one
// key fits: trying each key of a large set would let one token cost many
// signature checks, and an issuer with several keys names them (Cognito
// always does).
func pickKey(alg string, found any) (any, error) {
	set, ok := found.(jwt.VerificationKeySet)
	if !ok {
		return found, checkKey(alg, found)
	}
	var fits []any
	for _, k := range set.Keys {
		if checkKey(alg, k) == nil {
			fits = append(fits, k)
		}
	}
	switch len(fits) {
	case 1:
		return fits[0], nil
	case 0:
		return nil, fmt.Errorf("%w: no kid, and no %s key in the JWKS", errUnknownKey, alg)
	default:
		return nil, fmt.Errorf("%w: no kid, and %d %s keys in the JWKS", errUnknownKey, len(fits), alg)
	}
}

// errJWKSTooLarge refuses a JWKS download over maxJWKSBytes.
var errJWKSTooLarge = errors.New("auth: jwks larger than 1 MiB")
