// Package limits bounds what one client may do to the gateway: token-bucket
// rate limits per key (a user id or a client address) and counted slots
// (open connections) in total and per key. TrustedProxies tells which
// client address a request counts against, behind reverse proxies.
//
// Memory stays bounded: a Limiter forgets a key once its bucket has been
// idle long enough to be full again, which changes no decision, and holds
// at most MaxKeys keys at once.
package limits
