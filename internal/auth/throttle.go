package auth

import (
	"net/http"

	"github.com/chatgateway/gateway/internal/limits"
)

// Throttle returns user with the failures of each client address bounded
// by failures, keyed by proxies.ClientKey of the request (the TCP peer,
// or, behind one of proxies, the client it forwards for). Every request
// that user refuses takes a token; once an address has none left, its
// requests are refused with failures' rate_limited error before user is
// asked, so that a flood of bad tokens costs no signature checks, until
// the budget comes back. A request from an address that has not failed
// costs one map lookup more. With a nil failures, Throttle returns user.
func Throttle(user func(*http.Request) (Caller, error), failures *limits.Limiter, proxies *limits.TrustedProxies) func(*http.Request) (Caller, error) {
	if failures == nil {
		return user
	}
	return func(r *http.Request) (Caller, error) {
		key := proxies.ClientKey(r)
		if err := failures.Check(key); err != nil {
			return Caller{}, err
		}
		c, err := user(r)
		if err != nil {
			failures.Spend(key)
		}
		return c, err
	}
}
