package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatgateway/gateway/internal/limits"
)

// Limits on what a caller presents.
const (
	// MinSecretBytes is the shortest HS256 secret NewJWT accepts: the
	// size of the SHA-256 output, as RFC 7518 section 3.2 requires.
	MinSecretBytes = 32
	// MaxSubjectBytes bounds the "sub" claim, which becomes the user id.
	MaxSubjectBytes = 128
	// maxTokenBytes bounds a token before any parsing work is spent on it.
	maxTokenBytes = 8 << 10
)

// JWTOptions configures NewJWT. At least one of Secret and JWKS is needed.
type JWTOptions struct {
	// Secret verifies HS256 tokens (the gateway reads it from
	// GATEWAY_JWT_SECRET); at least MinSecretBytes long. Empty: HS256
	// tokens are refused.
	Secret []byte
	// JWKS is a file path or an http(s) URL of a JSON Web Key Set whose
	// RSA keys verify RS256 tokens and P-256 keys ES256 tokens, picked by
	// the token's "kid" (a token without one, only when the set holds a
	// single key of its algorithm). Empty: RS256 and ES256 tokens are
	// refused.
	JWKS string
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Audience, when set, must be one of the token's "aud".
	Audience string
	// Leeway is the clock skew tolerated when checking "exp", "nbf" and
	// "iat"; zero tolerates none.
	Leeway time.Duration
	// HTTPClient fetches a JWKS URL (default http.DefaultClient); each
	// fetch is bounded to 10 s (unless the client has its own Timeout)
	// and to 1 MiB.
	HTTPClient *http.Client
	// Logger receives key refreshes and refused tokens, never a token
	// itself (default slog.Default()).
	Logger *slog.Logger
}

// JWT verifies bearer tokens. Its Caller method is the gateway's user
// hook for "-auth jwt"; it is safe for concurrent use.
type JWT struct {
	secret   []byte
	keys     *keySource // nil without a JWKS
	issuer   string
	audience string
	methods  []string // the algorithms accepted
	parser   *jwt.Parser
	log      *slog.Logger
}

// NewJWT returns a JWT verifier for opts. A JWKS is loaded before NewJWT
// returns, and NewJWT fails if it cannot be loaded or holds no usable key;
// it is then reloaded every 10 minutes, and at once (at most once a
// minute) when a token names a key it does not hold, until ctx ends.
func NewJWT(ctx context.Context, opts JWTOptions) (*JWT, error) {
	if len(opts.Secret) == 0 && opts.JWKS == "" {
		return nil, errors.New("auth: jwt needs a secret or a JWKS")
	}
	if len(opts.Secret) > 0 && len(opts.Secret) < MinSecretBytes {
		return nil, fmt.Errorf("auth: the HS256 secret has %d bytes, want at least %d", len(opts.Secret), MinSecretBytes)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	j := &JWT{
		secret:   opts.Secret,
		issuer:   opts.Issuer,
		audience: opts.Audience,
		log:      opts.Logger,
	}
	if len(opts.Secret) > 0 {
		j.methods = append(j.methods, jwt.SigningMethodHS256.Alg())
	}
	if opts.JWKS != "" {
		ks, err := newKeySource(ctx, opts.JWKS, opts.HTTPClient, opts.Logger)
		if err != nil {
			return nil, err
		}
		j.keys = ks
		j.methods = append(j.methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
	}
	j.parser = jwt.NewParser(
		jwt.WithValidMethods(j.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithStrictDecoding(),
		// Numbers stay as written, so that an allow list's "level: 3"
		// matches a claim of 3, never 3.0 or 3e+00.
		jwt.WithJSONNumber(),
	)
	return j, nil
}

// Caller returns the caller of the request's token, taken from
// "Authorization: Bearer <token>" or else from the "token" query
// parameter: its "sub" as the user id, and its claims (numbers as
// json.Number). Any failure is an unauthorized *protocol.Error whose
// message names the failed check.
func (j *JWT) Caller(r *http.Request) (Caller, error) {
	token, err := bearer(r)
	if err == nil {
		var c Caller
		if c, err = j.verify(r.Context(), token); err == nil {
			return c, nil
		}
	}
	err = unauthorized(err)
	// The cause may quote the token's kid or alg: up to maxTokenBytes.
	j.log.Debug("token refused", "err", limits.Echo(err.Error()))
	return Caller{}, err
}

// bearer finds the request's token. A present Authorization header wins
// over the query parameter, even when it is unusable.
func bearer(r *http.Request) (string, error) {
	token := r.URL.Query().Get("token")
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", errNotBearer
		}
		token = strings.TrimSpace(rest)
	}
	switch {
	case token == "":
		return "", errNoToken
	case len(token) > maxTokenBytes:
		return "", errTokenTooLong
	}
	return token, nil
}

// verify checks token's signature and claims and returns its caller.
func (j *JWT) verify(ctx context.Context, token string) (Caller, error) {
	claims := jwt.MapClaims{}
	parsed, err := j.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		return j.key(ctx, t)
	})
	if err != nil {
		// The parser reports a refused algorithm as a bad signature; name
		// it properly, for the client and for whoever reads the logs.
		if parsed != nil && !errors.Is(err, jwt.ErrTokenMalformed) {
			if alg, _ := parsed.Header["alg"].(string); !slices.Contains(j.methods, alg) {
				return Caller{}, fmt.Errorf("%w: %q", errAlgNotAllowed, alg)
			}
		}
		return Caller{}, err
	}
	if err := j.checkClaims(claims); err != nil {
		return Caller{}, err
	}
	sub, _ := claims.GetSubject()
	return Caller{User: sub, Claims: claims}, nil
}

// checkClaims checks the issuer and audience, when configured, and the
// subject. A registered claim of the wrong type is jwt.ErrInvalidType.
func (j *JWT) checkClaims(claims jwt.MapClaims) error {
	iss, err := claims.GetIssuer()
	if err != nil {
		return err
	}
	aud, err := claims.GetAudience()
	if err != nil {
		return err
	}
	sub, err := claims.GetSubject()
	if err != nil {
		return err
	}
	switch {
	case j.issuer != "" && iss != j.issuer:
		return jwt.ErrTokenInvalidIssuer
	case j.audience != "" && !slices.Contains(aud, j.audience):
		return jwt.ErrTokenInvalidAudience
	}
	return checkSubject(sub)
}

// key returns the key that verifies t: the secret for HS256, the JWKS key
// named by "kid" for RS256 and ES256. The parser has already refused every
// other algorithm, and each branch hands back only the key type of its
// algorithm, so an HS256 token can never be checked against a public key.
func (j *JWT) key(ctx context.Context, t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		return j.secret, nil
	case *jwt.SigningMethodRSA, *jwt.SigningMethodECDSA:
		return j.keys.key(ctx, t)
	default:
		return nil, errAlgNotAllowed
	}
}

// checkSubject accepts a "sub" fit to be a user id: present, short, and
// printable UTF-8 (it reaches logs and storage keys).
func checkSubject(sub string) error {
	switch {
	case sub == "":
		return errNoSubject
	case len(sub) > MaxSubjectBytes:
		return errSubjectTooLong
	case !utf8.ValidString(sub) || strings.ContainsFunc(sub, unicode.IsControl):
		return errSubjectNotValid
	}
	return nil
}
