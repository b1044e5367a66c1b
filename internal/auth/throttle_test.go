package auth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/protocol"
)

// TestThrottle runs the real HS256 verifier behind Throttle with a burst
// of two failures at one a second: an address that failed twice is
// refused rate_limited, with its tokens, good or bad, not checked at all,
// until its budget comes back; other addresses, and good tokens, are not
// held back.
func TestThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newVerifiers(t)
		var checks atomic.Int64
		verify := func(r *http.Request) (Caller, error) {
			checks.Add(1)
			return v.secretOnly.Caller(r)
		}
		failures := limits.NewLimiter(limits.Rate{PerSecond: 1, Burst: 2}, limits.LimiterOptions{Message: "too many failures"})
		user := Throttle(verify, failures, nil)
		good := sign(t, jwt.SigningMethodHS256, testSecret, "", claimsFor("alice"))
		bad := good[:len(good)-4] + "AAAA"
		try := func(addr, token string) error {
			t.Helper()
			r := httptest.NewRequest("GET", "/v1/conversations", nil)
			r.RemoteAddr = addr
			r.Header.Set("Authorization", "Bearer "+token)
			_, err := user(r)
			return err
		}
		code := func(err error) string { return Refusal(err).Code }
		const attacker, other = "192.0.2.1:1000", "192.0.2.2:1000"

		for range 5 {
			if err := try(attacker, good); err != nil {
				t.Fatalf("a good token: %v", err)
			}
		}
		for i := range 2 {
			if err := try(attacker, bad); code(err) != protocol.CodeUnauthorized {
				t.Fatalf("bad token %d: %v, want unauthorized", i, err)
			}
		}
		before := checks.Load()
		for _, token := range []string{bad, good} {
			err := try(attacker, token)
			if pe := Refusal(err); pe.Code != protocol.CodeRateLimited || pe.RetryAfterMS != 1000 || pe.Message != "too many failures" {
				t.Errorf("after the burst: %v, want rate_limited, retry after 1000 ms", err)
			}
		}
		if n := checks.Load() - before; n != 0 {
			t.Errorf("%d tokens checked while the address was limited, want none", n)
		}
		if err := try(other, good); err != nil {
			t.Errorf("another address: %v", err)
		}
		time.Sleep(time.Second)
		if err := try(attacker, good); err != nil {
			t.Errorf("once a failure's budget came back: %v", err)
		}
	})
}

// TestRejectRateLimited checks the answer to a throttled caller: 429 with
// Retry-After and the rate_limited error, no WWW-Authenticate.
func TestRejectRateLimited(t *testing.T) {
	rec := httptest.NewRecorder()
	Reject(rec, &protocol.Error{Code: protocol.CodeRateLimited, Message: "slow", RetryAfterMS: 1500})
	var body struct{ Error *protocol.Error }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "2" || rec.Header().Get("WWW-Authenticate") != "" ||
		body.Error.Code != protocol.CodeRateLimited || body.Error.RetryAfterMS != 1500 || !strings.Contains(body.Error.Message, "slow") {
		t.Errorf("answered %d, Retry-After %q, WWW-Authenticate %q, %+v", rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("WWW-Authenticate"), body.Error)
	}
}
