package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testSecret is an HS256 secret of exactly MinSecretBytes.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

// testKeys are the tests' signing keys, made once: RSA generation is slow
// under -race.
var testKeys = sync.OnceValue(func() struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
} {
	var k struct {
		rsa, rsa2 *rsa.PrivateKey
		ec        *ecdsa.PrivateKey
	}
	var err error
	for _, p := range []**rsa.PrivateKey{&k.rsa, &k.rsa2} {
		if *p, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// claimsFor returns valid claims for sub: issued now, expiring in an hour,
// from the issuer and for the audience that newVerifiers configures.
func claimsFor(sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub": sub,
		"iss": "https://issuer.test",
		"aud": "gateway",
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

// sign returns c signed with method and key, naming kid unless it is "".
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// jwksOf returns the JWKS JSON that publishes keys under their kids.
func jwksOf(t testing.TB, keys map[string]crypto.PublicKey) []byte {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	for kid, key := range keys {
		switch k := key.(type) {
		case *rsa.PublicKey:
			set.Keys = append(set.Keys, map[string]string{
				"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
				"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()),
			})
		case *ecdsa.PublicKey:
			point, err := k.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			set.Keys = append(set.Keys, map[string]string{
				"kty": "EC", "kid": kid, "crv": "P-256",
				"x": b64(point[1:33]), "y": b64(point[33:]),
			})
		default:
			t.Fatalf("jwksOf: unsupported key %T", key)
		}
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// writeFile writes data to a new file in a test directory and returns its path.
func writeFile(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// jwksServer serves a JWKS that tests can replace, counting downloads.
type jwksServer struct {
	mu      sync.Mutex
	body    []byte // guarded by mu
	status  int    // guarded by mu; 0 means 200
	fetches int    // guarded by mu
}

// set makes the server answer with status and body from now on.
func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// count returns how many times the JWKS was requested.
func (s *jwksServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetches++
	w.Header().Set("Content-Type", "application/jwk-set+json")
	if s.status != 0 {
		w.WriteHeader(s.status)
	}
	w.Write(s.body)
}

// handlerTransport carries HTTP requests straight to a handler: a network
// that lives inside a synctest bubble.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// logBuffer collects log output, safe for concurrent writers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// testLogger logs at debug level to t.Log and, if also is not nil, to also.
func testLogger(t testing.TB, also io.Writer) *slog.Logger {
	var w io.Writer = testWriter{t}
	if also != nil {
		w = io.MultiWriter(w, also)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
