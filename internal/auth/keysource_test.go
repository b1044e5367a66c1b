package auth

import (
	"context"
	"crypto"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// rsaToken returns a valid RS256 token for alice naming kid, signed with
// the first or (second) the other RSA test key.
func rsaToken(t testing.TB, kid string, second bool) string {
	k := testKeys()
	key := k.rsa
	if second {
		key = k.rsa2
	}
	return sign(t, jwt.SigningMethodRS256, key, kid, claimsFor("alice"))
}

// verifyToken runs token through j's user hook.
func verifyToken(j *JWT, token string) error {
	r := httptest.NewRequest("GET", "/v1/conversations", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	_, err := j.Caller(r)
	return err
}

func TestJWKSURLRotation(t *testing.T) {
	k := testKeys()
	jwks := &jwksServer{}
	jwks.set(0, jwksOf(t, map[string]crypto.PublicKey{"r1": &k.rsa.PublicKey}))
	srv := httptest.NewTLSServer(jwks)
	t.Cleanup(srv.Close)

	j, err := NewJWT(t.Context(), JWTOptions{JWKS: srv.URL + "/jwks.json", HTTPClient: srv.Client(), Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	if n := jwks.count(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}
	if err := verifyToken(j, rsaToken(t, "r1", false)); err != nil {
		t.Fatalf("known key: %v", err)
	}

	// The issuer rotates to r2; tokens signed by it arrive at once, all
	// together, and cause one reload between them.
	jwks.set(0, jwksOf(t, map[string]crypto.PublicKey{"r2": &k.rsa2.PublicKey}))
	rotated := rsaToken(t, "r2", true)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = verifyToken(j, rotated) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("rotated key, caller %d: %v", i, err)
		}
	}
	if n := jwks.count(); n != 2 {
		t.Fatalf("%d fetches after the rotation, want 2", n)
	}

	// Another unknown kid within the minute is refused without a fetch.
	wantUnauthorized(t, verifyToken(j, rsaToken(t, "r3", false)), "token signing key unknown", "")
	if n := jwks.count(); n != 2 {
		t.Fatalf("%d fetches after a second unknown kid, want still 2", n)
	}
}

// TestUnknownKidLoggedOnce refuses two tokens naming kids the JWKS lacks:
// the first after a reload that does not find it either, the second
// because the reload limit allows none. Either refusal's log line names
// the kid once: jwkset quotes it in the one case, our KeyRead in the
// other, never both.
func TestUnknownKidLoggedOnce(t *testing.T) {
	jwks := &jwksServer{}
	jwks.set(0, jwksOf(t, map[string]crypto.PublicKey{"r1": &testKeys().rsa.PublicKey}))
	srv := httptest.NewTLSServer(jwks)
	t.Cleanup(srv.Close)
	logs := &logBuffer{}
	j, err := NewJWT(t.Context(), JWTOptions{JWKS: srv.URL, HTTPClient: srv.Client(), Logger: testLogger(t, logs)})
	if err != nil {
		t.Fatal(err)
	}
	for _, kid := range []string{"kid-reloaded-for", "kid-refused-a-reload"} {
		wantUnauthorized(t, verifyToken(j, rsaToken(t, kid, false)), "token signing key unknown", "")
		if n := strings.Count(logs.String(), kid); n != 1 {
			t.Errorf("kid %s named %d times in the log, want once:\n%s", kid, n, logs)
		}
	}
	if n := jwks.count(); n != 2 {
		t.Errorf("%d fetches, want 2: the load and one reload", n)
	}
}

func TestJWKSURLMustLoadAtStart(t *testing.T) {
	good := jwksOf(t, map[string]crypto.PublicKey{"r1": &testKeys().rsa.PublicKey})
	tests := []struct {
		name   string
		status int
		body   []byte
		want   string
	}{
		{"server error", http.StatusInternalServerError, []byte("oops"), "invalid HTTP status code: 500"},
		{"not JSON", 0, []byte("<html>"), "invalid character"},
		{"no keys", 0, []byte(`{"keys":[]}`), "no usable key"},
		{"over 1 MiB", 0, append(good[:len(good)-1:len(good)-1], strings.Repeat(" ", maxJWKSBytes)+"}"...), "larger than 1 MiB"},
		{"1 MiB", 0, append(good[:len(good)-1:len(good)-1], strings.Repeat(" ", maxJWKSBytes-len(good))+"}"...), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jwks := &jwksServer{}
			jwks.set(tt.status, tt.body)
			srv := httptest.NewServer(jwks)
			t.Cleanup(srv.Close)
			_, err := NewJWT(t.Context(), JWTOptions{JWKS: srv.URL, Logger: testLogger(t, nil)})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("NewJWT: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewJWT: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestJWKSRefreshTiming runs in a synctest bubble whose JWKS "server" is
// reached through handlerTransport, so the clock is fake and the scheduled
// and rate-limited reloads can be stepped through exactly.
func TestJWKSRefreshTiming(t *testing.T) {
	k := testKeys()
	first := jwksOf(t, map[string]crypto.PublicKey{"r1": &k.rsa.PublicKey})
	second := jwksOf(t, map[string]crypto.PublicKey{"r2": &k.rsa2.PublicKey})
	synctest.Test(t, func(t *testing.T) {
		jwks := &jwksServer{}
		jwks.set(0, first)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		j, err := NewJWT(ctx, JWTOptions{
			JWKS:       "https://issuer.test/jwks.json",
			HTTPClient: &http.Client{Transport: handlerTransport{jwks}},
			Logger:     testLogger(t, nil),
		})
		if err != nil {
			t.Fatalf("NewJWT: %v", err)
		}
		wantFetches := func(step string, want int) {
			t.Helper()
			synctest.Wait()
			if n := jwks.count(); n != want {
				t.Fatalf("%s: %d fetches, want %d", step, n, want)
			}
		}
		wantFetches("start", 1)

		time.Sleep(refreshInterval - time.Second)
		wantFetches("just before the interval", 1)
		time.Sleep(time.Second)
		wantFetches("at the interval", 2)

		// A failed refresh keeps the keys it had.
		jwks.set(http.StatusBadGateway, nil)
		time.Sleep(refreshInterval)
		wantFetches("failed refresh", 3)
		if err := verifyToken(j, rsaToken(t, "r1", false)); err != nil {
			t.Fatalf("after a failed refresh: %v", err)
		}

		// A scheduled refresh picks up a rotation without any refetch.
		jwks.set(0, second)
		time.Sleep(refreshInterval)
		wantFetches("rotated", 4)
		if err := verifyToken(j, rsaToken(t, "r2", true)); err != nil {
			t.Fatalf("after the rotation: %v", err)
		}
		wantFetches("known key after the rotation", 4)

		// Unknown kids reload at most once per refetchMinInterval.
		unknown := rsaToken(t, "r9", false)
		wantUnauthorized(t, verifyToken(j, unknown), "token signing key unknown", "")
		wantFetches("first unknown kid", 5)
		wantUnauthorized(t, verifyToken(j, unknown), "token signing key unknown", "")
		wantFetches("unknown kid again within the minute", 5)
		time.Sleep(refetchMinInterval)
		wantUnauthorized(t, verifyToken(j, unknown), "token signing key unknown", "")
		wantFetches("unknown kid after the minute", 6)

		// Ending ctx stops the refreshes.
		cancel()
		time.Sleep(3 * refreshInterval)
		wantFetches("after ctx ended", 6)
	})
}

// TestRefusedJWKSStopsRefreshing checks that a JWKS which loads but holds
// no usable key leaves no refresh behind when NewJWT fails, although the
// context it was given goes on.
func TestRefusedJWKSStopsRefreshing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		jwks := &jwksServer{}
		jwks.set(0, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, err := NewJWT(ctx, JWTOptions{
			JWKS:       "https://issuer.test/jwks.json",
			HTTPClient: &http.Client{Transport: handlerTransport{jwks}},
			Logger:     testLogger(t, nil),
		})
		if err == nil {
			t.Fatal("NewJWT succeeded without a usable key")
		}
		time.Sleep(3 * refreshInterval)
		synctest.Wait()
		if n := jwks.count(); n != 1 {
			t.Fatalf("%d fetches, want 1: the refused set is still refreshed", n)
		}
	})
}
